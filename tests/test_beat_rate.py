"""Beat-rate measurements (ECG R-R, PPG pulse intervals) on real BIDMC windows against the bedside monitor, and
the rate-aware vitals head built on them."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import shared_path


@pytest.fixture(scope="module")
def bidmc_windows():
    """10 s preprocessed windows (100 Hz, ECG leads + PPG) of three BIDMC recordings with their monitor HR."""
    from cardiofm.data.preprocess import PreprocessConfig, preprocess_record
    from cardiofm.data.readers.bidmc import bidmc_files, read_bidmc

    pre = PreprocessConfig(fs=100.0, window_s=10.0, stride_s=10.0)
    files = bidmc_files(str(shared_path("bidmc")))[:3]
    windows = [w for f in files for w in preprocess_record(read_bidmc(f), pre)]
    return [w for w in windows if w["vitals_mask"][0]], pre


def test_ecg_and_ppg_rates_match_the_monitor(bidmc_windows):
    from cardiofm.data.beats import RATE_FEATURES, beat_rate_features

    windows, pre = bidmc_windows
    feats = np.stack([beat_rate_features(w["signal"], w["channels"], pre.fs, w["channel_mask"]) for w in windows])
    hr = np.array([w["vitals"][0] for w in windows])
    assert feats.shape == (len(windows), len(RATE_FEATURES)) and len(windows) > 100
    assert feats[:, 2].all() and feats[:, 4].mean() > 0.95            # both sources measured nearly everywhere
    ecg_err, ppg_err = np.abs(feats[:, 0] - hr), np.abs(feats[:, 3] - hr)
    assert np.median(ecg_err) < 1.0 and np.mean(ecg_err) < 2.0, (np.median(ecg_err), np.mean(ecg_err))
    assert np.median(ppg_err[feats[:, 4] > 0]) < 1.5


def test_rate_features_flag_missing_sources(bidmc_windows):
    from cardiofm.data.beats import beat_rate_features

    windows, pre = bidmc_windows
    w = windows[0]
    no_ppg = np.array([c != "PPG" for c in w["channels"]]) & w["channel_mask"]
    f = beat_rate_features(w["signal"], w["channels"], pre.fs, no_ppg)
    assert f[2] == 1.0 and f[4] == 0.0 and f[3] == 0.0
    flat = beat_rate_features(np.zeros_like(w["signal"]), w["channels"], pre.fs, w["channel_mask"])
    assert flat[2] == 0.0 and flat[4] == 0.0 and np.isfinite(flat).all()   # nothing measured, no NaN


def test_untrained_rate_aware_head_returns_the_measured_rate(bidmc_windows):
    from cardiofm.data.collate import collate_samples
    from cardiofm.models import CardioFMForVitals, preset_config, vitals_config

    windows, pre = bidmc_windows
    torch.manual_seed(0)
    config = preset_config("tiny", patch_size=50, **vitals_config(["HR", "SpO2"], [80.0, 97.0], [12.0, 2.0],
                                                                  rate_prior=True, rate_residual_std=1.5))
    model = CardioFMForVitals(config).eval()
    batch = collate_samples(windows[:8])
    with torch.no_grad():
        out = model(**batch)
    prior, _ = model.rate_inputs(batch["signals"], batch["channel_ids"], batch["channel_mask"])
    assert torch.allclose(out.predictions[:, 0], prior)               # zero-initialised correction
    assert torch.allclose(out.predictions[:, 1], torch.full((8,), 97.0))
    hr = batch["vitals"][:, 0]
    assert float((out.predictions[:, 0] - hr).abs().mean()) < 2.0
    loss = model(**batch).loss
    loss.backward()
    assert model.rate_proj.weight.grad is not None and torch.isfinite(loss)


def test_rate_prior_needs_hr():
    from cardiofm.models import vitals_config

    with pytest.raises(ValueError, match="rate_prior needs HR"):
        vitals_config(["SpO2"], rate_prior=True)


def test_rate_features_from_the_collate_equal_those_measured_in_forward(bidmc_windows):
    """The data pipeline measures the rate features once (collate, in the loader workers); the vitals forward uses
    them as given, with the same predictions as when it measures them itself, and the collate in a finetuning
    recipe asks for them when the head is rate-aware."""
    from cardiofm.data.collate import collate_samples
    from cardiofm.models import CardioFMForVitals, preset_config, vitals_config

    windows, pre = bidmc_windows
    torch.manual_seed(0)
    cfg = preset_config("tiny", **vitals_config(["HR"], [80.0], [12.0], rate_prior=True, rate_residual_std=2.0))
    model = CardioFMForVitals(cfg).eval()
    batch = collate_samples(windows[:8], vocab=tuple(cfg.channel_vocab), rate_fs=pre.fs)
    assert batch["rate_features"].shape == (8, 6) and bool(batch["rate_features"][:, 2].all())
    with torch.no_grad():
        given = model(**batch).predictions
        measured = model(**{k: v for k, v in batch.items() if k != "rate_features"}).predictions
    torch.testing.assert_close(given, measured)
    assert (given[:, 0] - batch["vitals"][:, 0]).abs().median() < 3.0   # untrained head = the measured rate
