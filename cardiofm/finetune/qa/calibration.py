"""Decision rules chosen on training data only: noise-answer thresholds from a calibration split of the training
patients, and, per numeric feature, whether comparison answers follow the measured intervals or the training
questions' per-template prior (cross-validated over the training comparison questions).

Why both exist: the noise heads rank held-out leads (AUROC 0.6-0.8) but their probabilities sit below 0.5, so a
fixed 0.5 answers every noise question "no"; and the PR interval as measured agrees with ECG-QA's comparison answers
less often than the per-template prior does (the answers mention each feature in about half of the questions, so
an unreliable measurement is worse than the prior).
"""
from __future__ import annotations

import logging
from collections import defaultdict

import numpy as np

from ...data.attributes import NUMERIC_FEATURES
from .attributes import _CHANGE_TEMPLATES, fit_normal_ranges
from .composer import MEASURED, noise_probability, threshold_key
from .questions import parse_question

logger = logging.getLogger(__name__)
# A threshold moves off 0.5 only with >= 15 calibration questions for its key and >= 2 more of them right: on 6
# questions the most accurate cut of one seed answered "yes" to nearly every held-out static-noise question.
MIN_CALIBRATION_QUESTIONS = 15
MIN_GAIN_QUESTIONS = 2
RULE_FOLDS = 5                  # cross-validation folds over the training comparison questions


def choose_noise_thresholds(items, evidence: list[dict]) -> tuple[dict[str, float], dict]:
    """Threshold per noise key (composer.threshold_key): "yes" when the probability is > threshold; the value that
    answers most calibration questions correctly (ties: the highest, i.e. nearest the majority "no"), kept only with
    enough questions and gain (else 0.5); returns the thresholds and a per-key report."""
    if len(items) != len(evidence):
        raise ValueError(f"{len(items)} calibration questions but {len(evidence)} evidence dicts")
    by_key: dict[str, list[tuple[float, bool]]] = defaultdict(list)
    for it, ev in zip(items, evidence):
        intent = parse_question(it.question)
        if intent.kind == "verify":
            by_key[threshold_key(intent)].append((noise_probability(ev, intent), it.answer == ["yes"]))
    thresholds, report = {}, {}
    for key, rows in sorted(by_key.items()):
        p = np.array([r[0] for r in rows])
        yes = np.array([r[1] for r in rows])
        at_half = float(np.mean((p > 0.5) == yes))
        if len(rows) < MIN_CALIBRATION_QUESTIONS:
            report[key] = {"n": len(rows), "accuracy_at_0.5": at_half, "threshold": 0.5, "reason": "too few"}
            continue
        # candidates: every observed probability (answer "yes" above it) and 1.0 ("no" to all)
        candidates = np.unique(np.concatenate([p, [1.0]]))
        accuracy = np.array([np.mean((p > t) == yes) for t in candidates])
        best = candidates[np.flatnonzero(accuracy == accuracy.max())[-1]]
        if (accuracy.max() - at_half) * len(rows) < MIN_GAIN_QUESTIONS - 1e-9:
            report[key] = {"n": len(rows), "accuracy_at_0.5": at_half, "threshold": 0.5,
                           "reason": f"best cut {best:.3f} gains < {MIN_GAIN_QUESTIONS} questions"}
            continue
        thresholds[key] = float(best)
        report[key] = {"n": len(rows), "accuracy_at_0.5": at_half, "threshold": float(best),
                       "accuracy_at_threshold": float(accuracy.max())}
    return thresholds, report


def _prior_rule(items, feature: str) -> dict[str, int]:
    """comparison -> 1 when most training questions of that template name the feature, else 0."""
    rule = {}
    for tid, comparison in _CHANGE_TEMPLATES.items():
        asked = [feature in it.answer for it in items if it.template_id == tid]
        rule[comparison] = int(bool(asked) and np.mean(asked) > 0.5)
    return rule


def _measured_hits(items, records, ranges, feature: str) -> np.ndarray:
    k = NUMERIC_FEATURES.index(feature)
    lo, hi = ranges[feature]
    hits = []
    for it in items:
        abnormal = [not (records[e].numeric_found[k] and lo <= records[e].numeric_ms[k] <= hi) for e in it.ecg_ids]
        member = {68: abnormal[0] and not abnormal[1], 69: not abnormal[0] and abnormal[1],
                  70: abnormal[0] and abnormal[1]}[it.template_id]
        hits.append(member == (feature in it.answer))
    return np.array(hits)


def choose_feature_rules(items, records, seed: int = 0) -> tuple[dict[str, dict[str, int]], dict]:
    """Per numeric feature: {comparison: MEASURED} when the measured intervals with ranges fitted on the other folds
    agree with held-out training comparison questions at least as often as the per-template prior, else the prior
    {comparison: 0 or 1} (1 = always named); returns the rules and the cross-validated agreement of both."""
    compare = [it for it in items if it.template_id in _CHANGE_TEMPLATES]
    if len(compare) < 2 * RULE_FOLDS:   # each fold needs a few held-out questions; keep the measurements
        logger.warning("%d training comparison questions: every feature answers from its measurement", len(compare))
        reason = {"rule": "measured", "reason": f"{len(compare)} training comparison questions (< {2 * RULE_FOLDS})"}
        return {f: {c: MEASURED for c in _CHANGE_TEMPLATES.values()} for f in NUMERIC_FEATURES}, \
            {f: dict(reason) for f in NUMERIC_FEATURES}
    fold = np.random.default_rng(seed).permutation(len(compare)) % RULE_FOLDS
    measured = {f: [] for f in NUMERIC_FEATURES}
    prior = {f: [] for f in NUMERIC_FEATURES}
    for k in range(RULE_FOLDS):
        fit_on = [it for it, f in zip(compare, fold) if f != k]
        held = [it for it, f in zip(compare, fold) if f == k]
        ranges, _ = fit_normal_ranges(fit_on, records)
        for feature in NUMERIC_FEATURES:
            measured[feature].extend(_measured_hits(held, records, ranges, feature))
            rule = _prior_rule(fit_on, feature)
            prior[feature].extend(bool(rule[_CHANGE_TEMPLATES[it.template_id]]) == (feature in it.answer)
                                  for it in held)
    rules, report = {}, {}
    for feature in NUMERIC_FEATURES:
        m, p = float(np.mean(measured[feature])), float(np.mean(prior[feature]))
        use_measured = m >= p
        rules[feature] = ({c: MEASURED for c in _CHANGE_TEMPLATES.values()} if use_measured
                          else _prior_rule(compare, feature))
        report[feature] = {"cv_measured_agreement": m, "cv_prior_agreement": p,
                           "rule": "measured" if use_measured else "prior"}
    return rules, report
