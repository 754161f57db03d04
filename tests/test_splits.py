"""Splits on the real PTB-XL table: subjects never cross sides, strat_fold split, stratified folds beat random."""
import numpy as np
import pytest

from cardiofm.data import ptbxl_strat_fold_split, source_aware_kfold, subject_split
from cardiofm.data.readers.ptbxl import load_ptbxl_database
from cardiofm.data.splits import fold_label_balance, iterative_stratification, multi_hot_labels
from tests.conftest import shared_path


@pytest.fixture(scope="module")
def ptbxl():
    df = load_ptbxl_database(str(shared_path("ptbxl")))
    return {"labels": [sorted(c) for c in df["scp_codes"]], "subjects": [str(int(p)) for p in df["patient_id"]],
            "folds": df["strat_fold"].to_numpy()}


def test_subject_split_keeps_subjects_whole_and_follows_fractions(ptbxl):
    subj = np.asarray(ptbxl["subjects"])
    sp = subject_split(subj, (0.8, 0.1, 0.1), seed=3)
    assert sum(len(v) for v in sp.values()) == len(subj)
    sides = [set(subj[sp[k]]) for k in ("train", "val", "test")]
    assert not (sides[0] & sides[1] or sides[0] & sides[2] or sides[1] & sides[2])
    assert abs(len(sp["train"]) / len(subj) - 0.8) < 0.03 and abs(len(sp["test"]) / len(subj) - 0.1) < 0.03
    assert np.array_equal(subject_split(subj, seed=3)["test"], subject_split(subj, seed=3)["test"])


def test_ptbxl_strat_fold_split(ptbxl):
    sp = ptbxl_strat_fold_split(ptbxl["folds"])
    assert len(sp["train"]) == len(ptbxl["folds"]) and len(sp["test"]) == 0  # this sample holds folds 1-8 only
    sp = ptbxl_strat_fold_split(ptbxl["folds"], val_fold=7, test_fold=8)
    assert set(ptbxl["folds"][sp["test"]]) == {8} and set(ptbxl["folds"][sp["val"]]) == {7}


def test_source_aware_kfold_is_stratified_and_never_splits_a_subject(ptbxl):
    labels, subj = ptbxl["labels"], np.asarray(ptbxl["subjects"])
    sources = np.where(np.arange(len(subj)) % 3 == 0, "ptbxl", "cinc")  # pretend two sources
    sources = np.asarray([sources[np.flatnonzero(subj == s)[0]] for s in subj])  # one source per subject
    folds = source_aware_kfold(labels, subj, sources, n_folds=5, seed=0)
    assert sorted(np.concatenate([f["test"] for f in folds]).tolist()) == list(range(len(subj)))
    for f in folds:
        assert not set(subj[f["train"]]) & set(subj[f["test"]])
    y, _ = multi_hot_labels(labels)
    frequent = y.sum(0) >= 20
    err = np.abs(fold_label_balance(labels, folds)[:, frequent] - 0.2).max()
    rng = np.random.default_rng(0).integers(0, 5, len(subj))
    rand = [{"train": np.flatnonzero(rng != k), "test": np.flatnonzero(rng == k)} for k in range(5)]
    rand_err = np.abs(fold_label_balance(labels, rand)[:, frequent] - 0.2).max()
    assert err < 0.08 and err < rand_err / 1.5
    share = [np.mean(sources[f["test"]] == "ptbxl") for f in folds]
    assert max(share) - min(share) < 0.08  # every fold holds each source in proportion


def test_leave_one_source_out_and_iterative_stratification_on_groups():
    folds = source_aware_kfold([["A"]] * 6, list("aabbcc"), ["x", "x", "y", "y", "z", "z"], leave_source_out=True)
    assert [f["source"] for f in folds] == ["x", "y", "z"] and folds[1]["test"].tolist() == [2, 3]
    y = np.array([[1, 0]] * 8 + [[0, 1]] * 8)
    fold = iterative_stratification(y, n_folds=2, groups=np.repeat(np.arange(8), 2), seed=1)
    assert (fold[::2] == fold[1::2]).all()  # a group's two items share a fold
    assert y[fold == 0].sum(0).tolist() == [4, 4]
