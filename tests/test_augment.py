"""Baseline augmentations, the YAML-configured pipeline on sample dicts, and the equal-segment reference flaw."""
from __future__ import annotations

import ast
import csv

import numpy as np
import pytest

from cardiofm.config import ConfigError, load_config
from cardiofm.data import STAR, detect_rpeaks
from cardiofm.data.augment import (AUGMENTATIONS, AugmentConfig, EqualSegmentResample, LeadMask, TimeStretch,
                                   build_augmentation)
from conftest import shared_path

wfdb = pytest.importorskip("wfdb")
LEADS = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]


@pytest.fixture(scope="module")
def af_record() -> tuple[np.ndarray, float]:
    """One PTB-XL atrial fibrillation record (12 leads, 100 Hz, mV)."""
    root = shared_path("ptbxl")
    with open(root / "ptbxl_database.csv", newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if "AFIB" in ast.literal_eval(row["scp_codes"]) and (root / (row["filename_lr"] + ".hea")).exists():
                rec = wfdb.rdrecord(str(root / row["filename_lr"]))
                return rec.p_signal.T.astype(np.float32), float(rec.fs)
    pytest.skip("no AFIB record in the PTB-XL sample")


def sample_of(x: np.ndarray) -> dict:
    names = LEADS + ["PPG"]
    sig = np.concatenate([x, np.sin(np.linspace(0, 40, x.shape[1]))[None].astype(x.dtype)])
    return {"signal": sig, "channel_mask": np.ones(len(names), dtype=bool), "channels": names, "labels": ["AF"]}


@pytest.mark.parametrize("name", sorted(AUGMENTATIONS))
def test_each_augmentation_shape_dtype_seed_and_purity(name, af_record):
    x, fs = af_record
    cls = AUGMENTATIONS[name]
    a = cls(p=1.0, seed=3)(x, fs)
    b = cls(p=1.0, seed=3)(x, fs)
    assert a.shape == x.shape and a.dtype == x.dtype and np.isfinite(a).all()
    assert np.array_equal(a, b)                                   # seeded
    assert np.array_equal(cls(p=0.0, seed=3)(x, fs), x)           # probability 0 is the identity
    sample = sample_of(x)
    before = sample["signal"].copy()
    out = cls(p=1.0, seed=3).apply(sample, fs)
    assert np.array_equal(sample["signal"], before) and out["signal"].shape == before.shape
    if name != "lead_mask":
        assert not np.array_equal(out["signal"], before)


def test_lead_mask_updates_channel_mask(af_record):
    x, fs = af_record
    aug = LeadMask(p=1.0, seed=0, max_fraction=0.5)
    seen = set()
    for _ in range(30):
        sample = sample_of(x)
        sample["channel_mask"][3] = False
        out = aug.apply(sample, fs)
        mask = out["channel_mask"]
        assert not mask[3] and 1 <= mask.sum() <= 12
        assert np.all(out["signal"][~mask] == 0) and np.array_equal(out["signal"][mask], sample["signal"][mask])
        seen.add(int(mask.sum()))
    assert len(seen) > 3 and min(seen) >= 6                       # at most half of the 12 present channels


def test_time_stretch_scales_rr(af_record):
    x, fs = af_record
    aug = TimeStretch(p=1.0, seed=0, factor_range=(1.2, 1.2))
    r, r2 = detect_rpeaks(x, fs), detect_rpeaks(aug(x, fs), fs)
    assert abs(np.median(np.diff(r2)) / np.median(np.diff(r)) - 1.2) < 0.05


def test_equal_segment_baseline_flattens_af_but_star_does_not(af_record):
    x, fs = af_record
    r = detect_rpeaks(x, fs)
    cv = lambda p: np.std(np.diff(p)) / np.mean(np.diff(p))  # noqa: E731
    y_ref = EqualSegmentResample(p=1.0, seed=0)(x, fs)
    y_star = STAR(p=1.0, seed=0)(x, fs, rpeaks=r)
    assert cv(r) > 0.08                                          # AF: irregular
    assert cv(detect_rpeaks(y_ref, fs)[1:-1]) < 0.5 * cv(r)      # the reference makes it look regular (its flaw)
    assert abs(cv(detect_rpeaks(y_star, fs)) - cv(r)) < 0.01     # STAR keeps it
    odd = EqualSegmentResample(p=1.0, seed=0)(x[:, :617], fs)    # lengths that do not add up: never empty
    assert odd.shape == (12, 617)


def test_config_from_yaml_and_pipeline(tmp_path, af_record):
    x, fs = af_record
    path = tmp_path / "aug.yaml"
    path.write_text("enabled: [star, lead_mask, gaussian_noise]\nseed: 5\nstar:\n  p: 1.0\n  max_shift_s: 0.03\n"
                    "  amplitude_range: [0.9, 1.2]\nlead_mask:\n  p: 1.0\n", encoding="utf-8")
    cfg = load_config(AugmentConfig, path)
    assert cfg.star.amplitude_range == (0.9, 1.2) and cfg.enabled[0] == "star"
    pipe = build_augmentation(cfg)
    outs = [pipe(sample_of(x), fs) for _ in range(3)]
    assert all(o["signal"].shape == (13, x.shape[1]) and o["signal"].dtype == np.float32 for o in outs)
    assert all(o["channel_mask"].sum() < 13 or np.array_equal(o["signal"][12], sample_of(x)["signal"][12])
               for o in outs)
    assert pipe.stats["STAR"]["applied"] == 3
    pipe.reseed(5)
    again = pipe(sample_of(x), fs)
    assert np.array_equal(again["signal"], outs[0]["signal"])     # reseeding restarts the stream
    assert build_augmentation(AugmentConfig())(sample_of(x), fs)["signal"] is not None   # empty list: identity
    with pytest.raises(ConfigError, match="unknown augmentation"):
        load_config(AugmentConfig, None, ["enabled=[mixup]"])
    with pytest.raises(ConfigError, match="p must be"):
        load_config(AugmentConfig, None, ["star.p=1.5"])


def test_study_folds_scores_and_arms():
    from cardiofm.finetune.study import StudyConfig, arm_augmentation, load_study_data, score_fold
    from cardiofm.models import preset_config

    cfg = StudyConfig(root=str(shared_path("torch_ecg_sample", "cinc2021")), min_label_count=4)
    cfg.validate()
    data = load_study_data(cfg, preset_config("tiny").preprocess_config)
    n = len(data.windows)
    assert n >= 45 and len(set(data.sources)) == 3 and len(data.folds) == 5
    tests = np.concatenate([f["test"] for f in data.folds])
    assert sorted(tests.tolist()) == list(range(n))                       # every record tested exactly once
    assert all(len({data.sources[i] for i in f["test"]}) >= 2 for f in data.folds)   # sources spread over folds
    y = np.array([[c in codes for c in data.label_names] for codes in data.codes], dtype=float)
    perfect = score_fold(y, y, data.codes, data.label_names, np.full(len(data.label_names), 0.5),
                         rare=[data.label_names[0]])
    assert perfect["macro_auroc"] == 1.0 and perfect["micro_auroc"] == 1.0 and perfect["challenge_score"] > 0.5
    assert arm_augmentation(cfg, "none") is None
    pipe = arm_augmentation(cfg, "star")
    assert [type(a).__name__ for a in pipe.augmentations] == ["STAR"] and pipe.augmentations[0].cfg.p == cfg.arm_p
    with pytest.raises(ConfigError, match="unknown augmentation"):
        StudyConfig(arms=["mixup"]).validate()
