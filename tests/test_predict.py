"""The predict path (records read ahead in a thread, windows batched across records, the vectorised plausibility
gate) gives, to float32 rounding, the numbers of scoring each real PTB-XL record on its own, with the same order,
reasons and window counts; the vectorised gate checks equal the per-row loops they replaced."""
import shutil

import numpy as np
import pytest
import torch

from cardiofm.data import quality as Q
from cardiofm.finetune import predict as P
from cardiofm.finetune.inputs import InputItem, InputOptions, discover_inputs, read_input, record_windows
from cardiofm.models import CardioFMForDiagnosis, label_config, preset_config
from tests.conftest import shared_path

LABELS = ["NORM", "MI", "STTC", "CD", "HYP"]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return CardioFMForDiagnosis(preset_config("tiny", **label_config(LABELS))).eval()


def _one_by_one(model, items, opts: P.PredictOptions) -> list[dict]:
    """Reference rows: each record read, windowed, collated and scored alone, in this process."""
    pre = model.config.preprocess_config
    forward = P.model_forward(model)
    names, headers, kind = P.output_columns(model, "diagnosis")
    rows = []
    for item in items:
        try:
            samples = record_windows(read_input(item, InputOptions()), pre, opts.stride_s(pre.window_s))
        except (ValueError, OSError) as err:
            rows.append({"record": item.key, "status": getattr(err, "reason", str(err)), "windows": 0,
                         "aggregation": "mean"})
            continue
        out = forward(samples).numpy()
        rows.append(P.record_row(item.key, out, np.array([s["start_s"] for s in samples]), "mean", kind, names,
                                 headers, pre.window_s, None))
    return rows


def test_predict_rows_equal_scoring_each_record_alone(model, tmp_path):
    items = discover_inputs(str(shared_path("ptbxl", "records100", "00000")))[:12]
    # a truncated copy of a real record: scored as not readable, with its reason, in its place
    src, name = items[0].path, items[0].path.rsplit("/", 1)[-1]
    shutil.copy(src + ".hea", tmp_path / f"{name}.hea")
    (tmp_path / f"{name}.dat").write_bytes(open(src + ".dat", "rb").read()[:1000])
    items = items[:6] + [InputItem("broken", str(tmp_path / name))] + items[6:]
    opts = P.PredictOptions(overlap=0.5, batch_size=5)   # 3 windows per 10 s record at 5 s hops: batches straddle
    reference = _one_by_one(model, items, opts)
    assert reference[6]["status"] != "ok" and "length mismatch" in reference[6]["status"]
    assert sum(r["status"] == "ok" for r in reference) == 12
    rows = P.predict_records(model, "diagnosis", items, InputOptions(), opts)
    assert [{k: v for k, v in r.items() if not k.startswith("prob_")} for r in rows] == \
        [{k: v for k, v in r.items() if not k.startswith("prob_")} for r in reference]  # order, reasons, windows
    for row, ref in zip(rows, reference):
        # batches of windows from several records: GEMM blocking differs from a record alone in the last bits
        assert all(abs(row[k] - ref[k]) < 1e-6 for k in ref if k.startswith("prob_"))


def test_dropped_channels_are_counted_through_the_reading_thread(model, tmp_path):
    rec = read_input(discover_inputs(str(shared_path("ptbxl", "records100", "00000")))[0], InputOptions())
    for name in ("a", "b"):
        np.save(tmp_path / f"{name}.npy", rec.signal[:3])
    items = discover_inputs(str(tmp_path))
    in_opts = InputOptions(channels=["I", "II", "NOT_A_LEAD"], fs=rec.fs, ignore_unknown_channels=True)
    rows = P.predict_records(model, "diagnosis", items, in_opts, P.PredictOptions())
    assert [r["status"] for r in rows] == ["ok", "ok"]
    assert in_opts.dropped == {"NOT_A_LEAD": 2}


def _saturated_loop(x):
    """The per-row loop the vectorised saturated_fraction replaced."""
    out = np.zeros(x.shape[0])
    for i, row in enumerate(x):
        lo, hi = row.min(), row.max()
        if hi - lo <= 0:
            continue
        rail = (row >= hi - 1e-6 * (hi - lo)) | (row <= lo + 1e-6 * (hi - lo))
        edges = np.flatnonzero(np.diff(np.concatenate(([0], rail.view(np.int8), [0]))))
        lengths = edges[1::2] - edges[::2]
        out[i] = lengths[lengths >= Q.SATURATION_RUN].sum() / row.size
    return out


def _polarity_loop(x, channels):
    """The np.corrcoef loop the vectorised _polarity replaced."""
    idx = {c: i for i, c in enumerate(channels)}
    bad, corr = [], {}
    for lead, (a, wa), (b, wb) in Q._EINTHOVEN:
        if lead in idx and a in idx and b in idx:
            derived = wa * x[idx[a]] + wb * x[idx[b]]
            ok = derived.std() > 0 and x[idx[lead]].std() > 0
            r = np.corrcoef(x[idx[lead]], derived)[0, 1] if ok else np.nan
            if np.isfinite(r):
                corr[lead] = round(float(r), 3)
                bad += [lead] if r < Q.POLARITY_CORR_MIN else []
    return bad, corr


def test_vectorised_quality_checks_equal_the_loops_on_ptbxl():
    items = discover_inputs(str(shared_path("ptbxl", "records100", "00000")))[:60]
    flip = np.ones((12, 1))
    flip[1] = -1.0                      # lead II upside down
    for item in items:
        rec = read_input(item, InputOptions())
        x = np.asarray(rec.signal, np.float64)
        clipped = np.clip(x, np.percentile(x, 5), np.percentile(x, 95))   # real rails: runs at both extremes
        for variant in (x, clipped, x * flip):
            assert np.array_equal(Q.saturated_fraction(variant), _saturated_loop(variant))
            assert Q._polarity(variant, rec.channels) == _polarity_loop(variant, rec.channels)
    assert "III" in Q._polarity(x * flip, rec.channels)[0]    # the check fires: III = II - I no longer holds
    flat = np.zeros((3, 50))
    assert np.array_equal(Q.saturated_fraction(flat), np.zeros(3))
    assert Q._polarity(flat, ["I", "II", "III"]) == ([], {})
