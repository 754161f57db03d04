"""Answer composition: parsed intent + per-ECG attribute evidence -> ECG-QA answer set (and the evidence used).

Evidence per ECG is a dict as returned by CardioFMForQuestionAnswering.attributes (probabilities and ms), or built
from the database columns and measured intervals (`oracle_evidence`) for the upper bound. A numeric feature is
abnormal when it lies outside its normal range [lo, hi] ms or when the delineator found no value for it. Noise
answers are "yes" above a threshold per noise key and feature rules may replace a feature's measured comparison by
the training prior (both chosen on training data: finetune.qa.calibration).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ...data.attributes import NOISE_TYPES, NUMERIC_FEATURES
from ...data.channels import TWELVE_LEADS
from .questions import ANY_NOISE, Intent

YES_THRESHOLD = 0.5   # default: a noise probability above it answers a verify question "yes"
MEASURED = -1         # feature rule: named when the measured intervals say so (0 / 1: never / always named)


def threshold_key(intent: Intent) -> str:
    """Key of a verify question's noise threshold: '<noise type or any kind of noises>/<lead or record>'."""
    return f"{intent.attribute}/{'lead' if intent.lead is not None else 'record'}"


def oracle_evidence(lead_flags: np.ndarray, record_flags: np.ndarray, numeric_ms: np.ndarray,
                    numeric_found: np.ndarray) -> dict:
    """True attributes in evidence form: lead flags (4, 12) and record flags (4,) as 0/1, numeric (6,) ms (a
    feature the delineator did not find is NaN, which the composer counts as outside the normal range)."""
    values = np.where(np.asarray(numeric_found, bool), np.asarray(numeric_ms, float), np.nan)
    return {"noise_lead": {kind: dict(zip(TWELVE_LEADS, map(float, lead_flags[k])))
                           for k, kind in enumerate(NOISE_TYPES)},
            "noise_record": dict(zip(NOISE_TYPES, map(float, record_flags))),
            "numeric_ms": dict(zip(NUMERIC_FEATURES, map(float, values)))}


def abnormal_features(evidence: dict, ranges: dict[str, Sequence[float]]) -> dict[str, bool]:
    """feature -> True when its value (ms) is outside [lo, hi] or missing (NaN)."""
    out = {}
    for feature in NUMERIC_FEATURES:
        value = evidence["numeric_ms"][feature]
        lo, hi = ranges[feature]
        out[feature] = not (np.isfinite(value) and lo <= value <= hi)
    return out


def noise_probability(evidence: dict, intent: Intent) -> float:
    """Probability that the noise a verify question asks about is present (any type in a lead: noisy-OR)."""
    if intent.attribute == ANY_NOISE:
        absent = np.prod([1.0 - evidence["noise_lead"][kind][intent.lead] for kind in NOISE_TYPES])
        return float(1.0 - absent)
    if intent.lead is None:
        return float(evidence["noise_record"][intent.attribute])
    return float(evidence["noise_lead"][intent.attribute][intent.lead])


def compose(intent: Intent, evidence: Sequence[dict], ranges: dict[str, Sequence[float]],
            options: Sequence[str], thresholds: dict[str, float] | None = None,
            feature_rules: dict[str, dict[str, int]] | None = None) -> tuple[list[str], dict]:
    """Answer set (within the template's options) and the evidence it rests on, for one question; thresholds
    (threshold_key -> probability, missing keys YES_THRESHOLD) and feature_rules (feature -> comparison -> MEASURED,
    0 or 1; None: all measured) as chosen on training data."""
    if len(evidence) != intent.n_ecgs:
        raise ValueError(f"intent {intent.kind}/{intent.attribute} needs {intent.n_ecgs} ECG(s), got {len(evidence)}")
    if intent.kind == "verify":
        p = noise_probability(evidence[0], intent)
        threshold = (thresholds or {}).get(threshold_key(intent), YES_THRESHOLD)
        answer = ["yes" if p > threshold else "no"]
        used = {"attribute": intent.attribute, "lead": intent.lead, "probability": p, "threshold": threshold}
    elif intent.kind == "compare":
        first, second = (abnormal_features(e, ranges) for e in evidence)
        rule = {"became normal": lambda a, b: a and not b, "became abnormal": lambda a, b: not a and b,
                "still abnormal": lambda a, b: a and b}[intent.comparison]
        how = {f: (feature_rules or {}).get(f, {}).get(intent.comparison, MEASURED) for f in NUMERIC_FEATURES}
        answer = [f for f in NUMERIC_FEATURES
                  if (rule(first[f], second[f]) if how[f] == MEASURED else bool(how[f]))] or ["none"]
        used = {"comparison": intent.comparison, "from_prior": [f for f in NUMERIC_FEATURES if how[f] != MEASURED],
                "normal_ranges_ms": {f: list(ranges[f]) for f in NUMERIC_FEATURES},
                "first_ms": dict(evidence[0]["numeric_ms"]), "second_ms": dict(evidence[1]["numeric_ms"]),
                "first_abnormal": first, "second_abnormal": second}
    else:
        raise ValueError(f"unknown intent kind {intent.kind!r}")
    outside = [a for a in answer if a not in set(options)]
    if outside:
        raise ValueError(f"composed answer {outside} is not among template {intent.template_id}'s options")
    return answer, used
