"""PhysioNet/CinC Challenge 2021 score: weighted multi-label confusion credit, normalised between the
always-"sinus rhythm" classifier (0) and a perfect one (1).

The weights table `cardiofm/data/resources/cinc2021_weights.csv` is the challenge's published `weights.csv`
(github.com/physionetchallenges/evaluation-2021, the scoring repository named on physionetchallenges.org/2021);
rows and columns are SNOMED-CT codes, and a cell holding several codes joined by `|` is one class: the
challenge's equivalent-class rule (CRBBB = RBBB, PAC = SVPB, PVC = VPB). The scorer logic implemented here:

- labels and binary outputs are mapped to the representative (first) code of their equivalence group; a record's
  output for a group is positive if any of its equivalent codes is positive; unscored codes are ignored;
- per recording, credit weights[label j, output k] / n is added for every true class j and every predicted class k,
  where n = number of classes positive in the labels OR the outputs (at least 1);
- score = (observed - inactive) / (correct - inactive), where "inactive" predicts only the normal class
  426783006 (sinus rhythm) and "correct" predicts the labels; 0 when correct == inactive.
"""
from __future__ import annotations

import csv
from functools import lru_cache
from importlib import resources
from typing import Sequence

import numpy as np

NORMAL_CLASS = "426783006"  # sinus rhythm: the challenge's "inactive" reference prediction


@lru_cache(maxsize=1)
def load_challenge_weights() -> tuple[tuple[tuple[str, ...], ...], np.ndarray]:
    """(classes: equivalence groups of SNOMED codes, first = representative; weights (K, K)) from the packaged table."""
    text = resources.files("cardiofm.data").joinpath("resources/cinc2021_weights.csv").read_text(encoding="utf-8")
    rows = list(csv.reader(text.strip().splitlines()))
    header = [c.strip() for c in rows[0][1:]]
    if [r[0].strip() for r in rows[1:]] != header:
        raise ValueError("cinc2021_weights.csv: row and column classes differ")
    weights = np.array([[float(v) for v in r[1:]] for r in rows[1:]], dtype=np.float64)
    groups = tuple(tuple(c.split("|")) for c in header)
    return groups, weights


def _code_index(groups) -> dict[str, int]:
    return {code: k for k, group in enumerate(groups) for code in group}


def codes_to_matrix(records: Sequence[Sequence[str]], groups=None) -> np.ndarray:
    """Per-record SNOMED code lists -> (N, K) bool over scored classes (equivalents merged, unscored dropped)."""
    groups = groups if groups is not None else load_challenge_weights()[0]
    index = _code_index(groups)
    out = np.zeros((len(records), len(groups)), dtype=bool)
    for i, codes in enumerate(records):
        for code in codes:
            k = index.get(str(code).strip())
            if k is not None:
                out[i, k] = True
    return out


def to_scored_classes(matrix: np.ndarray, codes: Sequence[str], groups=None) -> np.ndarray:
    """(N, C) bool over SNOMED `codes` -> (N, K) over scored classes; positive if any equivalent code is."""
    groups = groups if groups is not None else load_challenge_weights()[0]
    index = _code_index(groups)
    matrix = np.asarray(matrix).astype(bool)
    out = np.zeros((matrix.shape[0], len(groups)), dtype=bool)
    for c, code in enumerate(codes):
        k = index.get(str(code))
        if k is not None:
            out[:, k] |= matrix[:, c]
    return out


def modified_confusion(labels: np.ndarray, outputs: np.ndarray) -> np.ndarray:
    """(K, K) credit matrix: A[j, k] = sum over recordings of labels_j * outputs_k / max(1, |labels OR outputs|)."""
    labels, outputs = np.asarray(labels, dtype=np.float64), np.asarray(outputs, dtype=np.float64)
    norm = np.maximum(np.logical_or(labels > 0, outputs > 0).sum(1), 1).astype(np.float64)
    return (labels / norm[:, None]).T @ outputs


def challenge_score(labels: np.ndarray, outputs: np.ndarray, groups=None, weights: np.ndarray | None = None,
                    normal_class: str = NORMAL_CLASS) -> float:
    """CinC 2021 challenge metric for (N, K) bool labels and binary outputs over the scored classes."""
    if groups is None or weights is None:
        groups, weights = load_challenge_weights()
    labels, outputs = np.asarray(labels, bool), np.asarray(outputs, bool)
    if labels.shape != outputs.shape or labels.shape[1] != len(groups):
        raise ValueError(f"labels {labels.shape} and outputs {outputs.shape} must be (N, {len(groups)})")
    normal = _code_index(groups)[normal_class]
    inactive = np.zeros_like(labels)
    inactive[:, normal] = True
    observed = float(np.nansum(weights * modified_confusion(labels, outputs)))
    correct = float(np.nansum(weights * modified_confusion(labels, labels)))
    baseline = float(np.nansum(weights * modified_confusion(labels, inactive)))
    return (observed - baseline) / (correct - baseline) if correct != baseline else 0.0


def challenge_score_from_codes(true_codes: Sequence[Sequence[str]], predicted_codes: Sequence[Sequence[str]]) -> float:
    """Challenge metric from per-record SNOMED code lists (labels, predicted positives)."""
    groups, weights = load_challenge_weights()
    labels, outputs = codes_to_matrix(true_codes, groups), codes_to_matrix(predicted_codes, groups)
    return challenge_score(labels, outputs, groups, weights)
