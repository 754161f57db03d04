"""Data splits that never put one subject on both sides: subject-grouped, PTB-XL strat_fold, and the source-aware,
label-stratified k-fold protocol (multi-label iterative stratification over subjects, optional leave-one-source-out)."""
from __future__ import annotations

from typing import Sequence

import numpy as np


def _groups(subject_ids: Sequence[str], sources: Sequence[str] | None = None) -> tuple[list[tuple], np.ndarray]:
    """Unique (source, subject) keys and each item's group index (ids are only unique within a source)."""
    keys = [(sources[i] if sources is not None else "", str(s)) for i, s in enumerate(subject_ids)]
    uniq = sorted(set(keys))
    index = {k: i for i, k in enumerate(uniq)}
    return uniq, np.array([index[k] for k in keys], dtype=np.int64)


def subject_split(subject_ids: Sequence[str], fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
                  seed: int = 0, sources: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Random train/val/test item indices with whole subjects on one side; sizes follow `fractions` of items."""
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"fractions {fractions} must be three non-negative numbers summing to 1")
    uniq, group = _groups(subject_ids, sources)
    sizes = np.bincount(group, minlength=len(uniq))
    order = np.random.default_rng(seed).permutation(len(uniq))
    bounds = np.cumsum(fractions)[:2] * len(group)
    side, filled = np.zeros(len(uniq), dtype=np.int64), 0
    for g in order:  # fill train, then val, then test, subject by subject
        side[g] = 0 if filled < bounds[0] else (1 if filled < bounds[1] else 2)
        filled += sizes[g]
    item_side = side[group]
    return {name: np.flatnonzero(item_side == k) for k, name in enumerate(("train", "val", "test"))}


def ptbxl_strat_fold_split(strat_folds: Sequence[int], val_fold: int = 9, test_fold: int = 10) -> dict[str, np.ndarray]:
    """PTB-XL's recommended split: folds 1-8 train, 9 validation, 10 test (folds already respect patients)."""
    folds = np.asarray(strat_folds, dtype=np.int64)
    return {"train": np.flatnonzero((folds != val_fold) & (folds != test_fold)),
            "val": np.flatnonzero(folds == val_fold), "test": np.flatnonzero(folds == test_fold)}


def iterative_stratification(labels: np.ndarray, n_folds: int = 5, groups: np.ndarray | None = None,
                             seed: int = 0) -> np.ndarray:
    """Fold index per item from multi-label iterative stratification (Sechidis et al., 2011) applied to groups.

    labels: (items, K) 0/1; groups: (items,) ints kept whole (e.g. subjects). Rarest labels are placed first, each
    group into the fold that most lacks that label, ties broken by the fold's remaining capacity, then at random."""
    y = np.asarray(labels, dtype=np.float64)
    n, k = y.shape
    groups = np.arange(n) if groups is None else np.asarray(groups)
    uniq, inv = np.unique(groups, return_inverse=True)
    g_labels = np.zeros((len(uniq), k))
    np.add.at(g_labels, inv, y)
    g_size = np.bincount(inv, minlength=len(uniq)).astype(np.float64)
    rng = np.random.default_rng(seed)
    want_label = np.tile(g_labels.sum(0) / n_folds, (n_folds, 1))   # (folds, K) label count still wanted
    want_size = np.full(n_folds, g_size.sum() / n_folds)             # items still wanted per fold
    fold_of = np.full(len(uniq), -1)
    remaining = g_labels.copy()
    while (fold_of < 0).any():
        open_ = fold_of < 0
        counts = remaining[open_].astype(bool).sum(0)
        if counts.max() == 0:  # only unlabelled groups left: fill by capacity
            for g in rng.permutation(np.flatnonzero(open_)):
                f = _argmax_tie(want_size, rng)
                fold_of[g], want_size[f] = f, want_size[f] - g_size[g]
            break
        lab = int(np.argmin(np.where(counts > 0, counts, np.inf)))
        for g in rng.permutation(np.flatnonzero(open_ & (remaining[:, lab] > 0))):
            best = np.flatnonzero(want_label[:, lab] == want_label[:, lab].max())
            f = best[_argmax_tie(want_size[best], rng)]
            fold_of[g] = f
            want_label[f] -= g_labels[g]
            want_size[f] -= g_size[g]
            remaining[g] = 0
    return fold_of[inv]


def _argmax_tie(values: np.ndarray, rng: np.random.Generator) -> int:
    top = np.flatnonzero(values == values.max())
    return int(top[0] if len(top) == 1 else rng.choice(top))


def multi_hot_labels(label_lists: Sequence[Sequence[str]], label_names: Sequence[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """Label lists -> ((items, K) 0/1 matrix, label names), names sorted when not given."""
    names = sorted({lab for labs in label_lists for lab in labs}) if label_names is None else list(label_names)
    index = {n: i for i, n in enumerate(names)}
    y = np.zeros((len(label_lists), len(names)), dtype=np.int8)
    for i, labs in enumerate(label_lists):
        for lab in labs:
            if lab in index:
                y[i, index[lab]] = 1
    return y, names


def source_aware_kfold(label_lists: Sequence[Sequence[str]], subject_ids: Sequence[str], sources: Sequence[str],
                       n_folds: int = 5, seed: int = 0, leave_source_out: bool = False) -> list[dict[str, np.ndarray]]:
    """Folds as [{'train': idx, 'test': idx}, ...]: stratified jointly on labels and source, subjects never split.

    With leave_source_out, fold i tests on source i (sorted names) and trains on all others instead."""
    n = len(subject_ids)
    if not (len(label_lists) == len(sources) == n):
        raise ValueError("label_lists, subject_ids and sources must have one entry per item")
    src = np.asarray([str(s) for s in sources])
    if leave_source_out:
        return [{"train": np.flatnonzero(src != s), "test": np.flatnonzero(src == s), "source": s}
                for s in sorted(set(src))]
    y, _ = multi_hot_labels(label_lists)
    src_names = sorted(set(src))
    src_onehot = (src[:, None] == np.asarray(src_names)[None]).astype(np.int8)  # sources stratified like labels
    _, group = _groups(subject_ids)  # by subject id alone: the same patient may appear in two sources
    fold = iterative_stratification(np.concatenate([y, src_onehot], axis=1), n_folds, group, seed)
    return [{"train": np.flatnonzero(fold != f), "test": np.flatnonzero(fold == f)} for f in range(n_folds)]


def fold_label_balance(label_lists: Sequence[Sequence[str]], folds: list[dict[str, np.ndarray]]) -> np.ndarray:
    """(folds, K) share of each label's positives in each test fold (ideal: 1/n_folds everywhere)."""
    y, _ = multi_hot_labels(label_lists)
    totals = np.maximum(y.sum(0), 1)
    return np.stack([y[f["test"]].sum(0) / totals for f in folds])


__all__ = ["subject_split", "ptbxl_strat_fold_split", "iterative_stratification", "multi_hot_labels",
           "source_aware_kfold", "fold_label_balance"]
