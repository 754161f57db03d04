"""The cached-filter preprocessing path gives scipy's numbers: resample == resample_poly, band-pass == sosfiltfilt,
on real PTB-XL (500 Hz), MIT-BIH (360 Hz) and BIDMC (125 Hz) recordings."""
import glob
from fractions import Fraction

import numpy as np
import pytest
from scipy import signal as sps

from cardiofm.data import PreprocessConfig, read_wfdb
from cardiofm.data import preprocess as P
from tests.conftest import shared_path


def _ptbxl_records(n=8):
    folder = shared_path("ptbxl", "records500", "00000")
    heads = sorted(glob.glob(str(folder / "*_hr.hea")))[:n]
    assert len(heads) == n
    return [read_wfdb(h[:-4]) for h in heads]


def _scipy_layout(x, fs, channels, cfg):
    """The preprocessing numbers as scipy's own functions give them (the reference the fast path must match)."""
    r = Fraction(cfg.fs / fs).limit_denominator(1000)
    y = sps.resample_poly(x.astype(np.float32), r.numerator, r.denominator, axis=-1).astype(np.float32)
    out = np.empty_like(y)
    for i, name in enumerate(channels):
        lo, hi = P._band_for(name, cfg)
        sos = P._bandpass_sos(lo, hi, cfg.fs, cfg.filter_order)
        out[i] = sps.sosfiltfilt(sos, y[i], padlen=min(3 * (2 * len(sos) + 1), y.shape[1] - 1))
    return out


def test_resample_equals_resample_poly_on_ptbxl():
    for rec in _ptbxl_records():
        assert rec.fs == 500 and rec.signal.shape == (12, 5000)
        ours = P.resample(rec.signal, rec.fs, 100.0)
        ref = sps.resample_poly(rec.signal, 1, 5, axis=-1).astype(np.float32)
        assert ours.dtype == np.float32 and ours.shape == ref.shape == (12, 1000)
        assert np.abs(ours - ref).max() <= 1e-5
        assert np.abs(ref).max() > 0.1  # real millivolt signal, not an empty comparison


@pytest.mark.parametrize("fs_out", [100.0, 250.0, 360.0, 128.0, 499.0])
def test_resample_equals_resample_poly_for_other_ratios_and_lengths(fs_out):
    rec = _ptbxl_records(1)[0]
    for n in (5000, 4999, 1237):  # the tail padding depends on the input length
        x = rec.signal[:, :n]
        r = Fraction(fs_out / 500.0).limit_denominator(1000)
        ref = sps.resample_poly(x, r.numerator, r.denominator, axis=-1).astype(np.float32)
        ours = P.resample(x, 500.0, fs_out)
        assert ours.shape == ref.shape and np.abs(ours - ref).max() <= 1e-5


def test_filter_channels_equals_sosfiltfilt_per_band():
    cfg = PreprocessConfig()
    rec = _ptbxl_records(1)[0]
    x = P.resample(rec.signal, rec.fs, cfg.fs)
    # 12 ECG leads plus a PPG-named row: two bands filtered group-wise must equal per-row sosfiltfilt
    names = list(rec.channels[:11]) + ["PPG"]
    ours = P.filter_channels(x, names, cfg.fs, cfg)
    assert np.abs(ours - _scipy_layout(x, cfg.fs, names, cfg)).max() <= 1e-5
    short = x[:, :9]  # shorter than sosfiltfilt's default padding: the padding shrinks, as before
    assert np.abs(P.filter_channels(short, names, cfg.fs, cfg) - _scipy_layout(short, cfg.fs, names, cfg)).max() <= 1e-5


def test_to_layout_matches_scipy_on_mitdb_and_bidmc():
    cfg = PreprocessConfig()
    mit = read_wfdb(str(shared_path("mitdb", "100.hea"))[:-4])
    x = mit.signal[:, : int(60 * mit.fs)]
    ours, present = P.to_layout(x, mit.fs, mit.channels, cfg)
    ref = _scipy_layout(x, mit.fs, mit.channels, cfg)
    rows = [cfg.channels.index(c) for c in mit.channels]
    assert present.sum() == len(mit.channels) and np.abs(ours[rows] - ref).max() <= 1e-5

    from cardiofm.data.readers import read_bidmc
    from cardiofm.data.readers import bidmc_files
    b = read_bidmc(bidmc_files(str(shared_path("bidmc")))[0])
    keep = [i for i, c in enumerate(b.channels) if c in cfg.channels]
    names = [b.channels[i] for i in keep]
    ours, present = P.to_layout(b.signal, b.fs, b.channels, cfg)
    ref = _scipy_layout(b.signal[keep], b.fs, names, cfg)
    assert b.fs == 125 and "PPG" in names
    assert np.abs(ours[[cfg.channels.index(c) for c in names]] - ref).max() <= 1e-5
