"""Evaluation metrics: challenge score on a hand-checked example, AUROC/F1/thresholds, Bland-Altman, bootstrap, plots."""
from __future__ import annotations

import numpy as np
import pytest

from cardiofm.finetune.challenge import (challenge_score, challenge_score_from_codes, codes_to_matrix,
                                         load_challenge_weights, to_scored_classes)
from cardiofm.finetune.metrics import (bland_altman, bootstrap_ci, classification_report, f1_scores, macro_auroc,
                                       micro_auroc, per_class_auroc, regression_report, tune_thresholds)

AF, AFL, NSR = "164889003", "164890007", "426783006"
RBBB, CRBBB, PVC, VPB = "59118001", "713427006", "427172004", "17338001"


def test_weights_table_is_the_published_one():
    groups, w = load_challenge_weights()
    assert len(groups) == 24 and w.shape == (24, 24)  # 27 scored codes, three equivalent pairs merged
    assert np.allclose(w, w.T) and np.all(np.diag(w) == 1.0)
    flat = [c for g in groups for c in g]
    assert len(flat) == 27 and (CRBBB, RBBB) in groups and (PVC, VPB) in groups
    k = {g[0]: i for i, g in enumerate(groups)}
    assert w[k[AF], k[AFL]] == 0.5 and w[k[AF], k[NSR]] == 0.25 and w[k[CRBBB], k[NSR]] == 0.35
    assert w[k["164917005"], k[NSR]] == 0.15  # Q wave abnormal vs sinus rhythm: the smallest weight


def test_challenge_score_hand_checked_example():
    # R1: AF called AFL (half credit); R2: sinus rhythm right; R3: RBBB + PVC called by their equivalent codes
    # CRBBB + VPB plus a false AF; the unscored code 251180001 is ignored.
    truth = [[AF], [NSR], [RBBB, PVC, "251180001"]]
    pred = [[AFL], [NSR], [CRBBB, VPB, AF]]
    # observed:  R1 0.5/2 + R2 1 + R3 (1 + .475 + .4 + .475 + 1 + .375)/3          = 2.491667
    # correct:   R1 1     + R2 1 + R3 (1 + .475 + .475 + 1)/2                       = 3.475
    # inactive:  R1 .25/2 + R2 1 + R3 (.35 + .375)/3                                = 1.366667
    expected = (2.491667 - 1.366667) / (3.475 - 1.366667)
    assert challenge_score_from_codes(truth, pred) == pytest.approx(expected, abs=1e-5)
    assert challenge_score_from_codes(truth, truth) == pytest.approx(1.0)
    assert challenge_score_from_codes(truth, [[NSR]] * 3) == pytest.approx(0.0)


def _loop_score(labels, outputs, weights, normal):
    """Record-by-record transcription of the scorer's definition (reference for the vectorised version)."""
    def total(out):
        s = 0.0
        for i in range(len(labels)):
            n = max(1, int(np.sum(labels[i] | out[i])))
            for j in np.flatnonzero(labels[i]):
                for k in np.flatnonzero(out[i]):
                    s += weights[j, k] / n
        return s
    inactive = np.zeros_like(labels)
    inactive[:, normal] = True
    obs, cor, ina = total(outputs), total(labels), total(inactive)
    return (obs - ina) / (cor - ina)


def test_challenge_score_matches_loop_definition_on_random_data():
    groups, w = load_challenge_weights()
    rng = np.random.default_rng(3)
    labels, outputs = rng.random((40, 24)) < 0.1, rng.random((40, 24)) < 0.15
    normal = [g[0] for g in groups].index(NSR)
    assert challenge_score(labels, outputs) == pytest.approx(_loop_score(labels, outputs, w, normal), rel=1e-12)


def test_to_scored_classes_merges_equivalent_codes():
    m = to_scored_classes(np.array([[1, 0, 0], [0, 1, 1]], bool), [RBBB, CRBBB, "999"])
    assert m.sum() == 2 and (m == codes_to_matrix([[RBBB], [CRBBB]])).all()


def test_auroc_and_thresholds():
    y = np.array([[1, 0], [1, 1], [0, 0], [0, 1], [1, 0]])
    s = np.array([[0.9, 0.2], [0.8, 0.7], [0.3, 0.1], [0.85, 0.6], [0.2, 0.65]])
    # class 0: positives .9 .8 .2 vs negatives .3 .85 -> pairs won 2 + 1 + 0 of 6
    assert per_class_auroc(y, s)[0] == pytest.approx(3 / 6)
    assert per_class_auroc(y, s)[1] == pytest.approx(5 / 6)
    assert macro_auroc(y, s) == pytest.approx((0.5 + 5 / 6) / 2)
    assert 0.5 < micro_auroc(y, s) < 1
    th = tune_thresholds(y, s)
    # class 1 at 0.6: both positives and the 0.65 negative -> F1 = 4/5 (0.7 alone gives 2/3)
    assert th[1] == pytest.approx(0.6)
    assert f1_scores(y > 0, s >= th)[1] == pytest.approx(0.8)
    rep = classification_report(y, s, ["a", "b"])
    assert rep["thresholds_tuned_on_test"] and rep["per_class"]["b"]["f1"] == pytest.approx(0.8)
    assert rep["per_class"]["a"]["support"] == 3


def test_single_outcome_class_is_undefined_not_nan_json():
    y = np.array([[1, 0], [1, 1], [1, 0]])
    rep = classification_report(y, np.random.default_rng(0).random((3, 2)), ["all", "some"], np.array([.5, .5]))
    assert rep["per_class"]["all"]["auroc"] is None and rep["macro_auroc"] == rep["per_class"]["some"]["auroc"]


def test_bland_altman_and_regression():
    t = np.array([60.0, 70, 80, 90])
    p = np.array([62.0, 71, 79, 94])  # differences 2, 1, -1, 4 -> mean 1.5, SD 2.0817
    ba = bland_altman(t, p)
    assert ba["bias"] == pytest.approx(1.5) and ba["sd"] == pytest.approx(2.081666, abs=1e-5)
    assert ba["loa_high"] == pytest.approx(1.5 + 1.96 * 2.081666, abs=1e-4)
    rep = regression_report(t, p)
    assert rep["mae"] == pytest.approx(2.0) and rep["rmse"] == pytest.approx(np.sqrt(22 / 4))
    with pytest.raises(ValueError, match="NaN"):
        regression_report(t, np.array([1, 2, np.nan, 4]))


def test_bootstrap_ci_brackets_estimate_and_narrows_with_n():
    rng = np.random.default_rng(0)
    def ci(n):
        y = rng.random(n) < 0.5
        s = y + rng.normal(0, 1.0, n)
        return macro_auroc(y[:, None], s[:, None]), bootstrap_ci(macro_auroc, [y[:, None], s[:, None]], 300)
    (a1, (lo1, hi1)), (a2, (lo2, hi2)) = ci(60), ci(600)
    assert lo1 < a1 < hi1 and lo2 < a2 < hi2
    assert (hi2 - lo2) < (hi1 - lo1)


def test_plots_write_png(tmp_path):
    from cardiofm.finetune.plots import plot_bland_altman, plot_roc_curves

    rng = np.random.default_rng(1)
    y = rng.random((50, 3)) < 0.4
    roc = plot_roc_curves(y, y + rng.normal(0, 0.7, y.shape), ["NORM", "MI", "STTC"], tmp_path / "roc.png")
    ba = plot_bland_altman(rng.normal(80, 10, 40), rng.normal(80, 10, 40), "HR", "bpm", tmp_path / "ba_hr.png")
    for p in (roc, ba):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000
