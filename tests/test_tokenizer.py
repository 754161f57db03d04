"""Report tokenizer: training on real PTB-XL reports (German) plus English, specials, save/load, CLI."""
from __future__ import annotations

import pandas as pd
import pytest
import torch

from cardiofm.cli import main
from cardiofm.models.tokenizer import CLS_ID, MASK_ID, PAD_ID, SEP_ID, ReportTokenizer
from tests.conftest import shared_path

ENGLISH = ["sinus rhythm. normal ecg.", "atrial fibrillation with rapid ventricular response",
           "left bundle branch block", "sinus bradycardia, otherwise normal ecg", "inferior myocardial infarction, age undetermined"]


@pytest.fixture(scope="module")
def ptbxl_reports():
    csv = shared_path("ptbxl", "ptbxl_database.csv")
    return [t for t in pd.read_csv(csv, usecols=["report"])["report"].dropna() if t.strip()]


def test_train_encode_roundtrip(ptbxl_reports, tmp_path):
    tok = ReportTokenizer().train(ptbxl_reports + ENGLISH * 5, vocab_size=600)
    assert 100 < tok.vocab_size <= 600
    ids, mask = tok.encode_batch(["sinusrhythmus linkstyp sonst normales ekg", "Sinus rhythm. Normal ECG.", ""], 12)
    assert ids.dtype == torch.long and mask.dtype == torch.bool and ids.shape[0] == 3 and ids.shape[1] <= 12
    assert ids[0, 0] == CLS_ID and SEP_ID in ids[0] and ids[1, 0] == CLS_ID
    assert not mask[2].any() and (ids[~mask] == PAD_ID).all()
    assert MASK_ID not in ids[mask] and int(ids.max()) < tok.vocab_size
    # German umlauts and case-folded English survive the round trip
    assert tok.decode(tok.encode("vorhofflimmern, überdrehter linkstyp")) == "vorhofflimmern, überdrehter linkstyp"
    assert tok.decode(ids[1][mask[1]].tolist()) == "sinus rhythm. normal ecg."
    long_ids, _ = tok.encode_batch([" ".join(ptbxl_reports[:20])], 16)
    assert long_ids.shape == (1, 16) and long_ids[0, -1] == SEP_ID
    tok.save_pretrained(tmp_path)
    again = ReportTokenizer.from_pretrained(tmp_path)
    assert torch.equal(again.encode_batch(ptbxl_reports[:8], 32)[0], tok.encode_batch(ptbxl_reports[:8], 32)[0])


def test_cli_train_tokenizer(tmp_path):
    csv = shared_path("ptbxl", "ptbxl_database.csv")
    extra = tmp_path / "english.txt"
    extra.write_text("\n".join(ENGLISH), encoding="utf-8")
    rc = main(["train-tokenizer", "--csv", str(csv), "--text-file", str(extra), "--vocab-size", "500",
               "--out", str(tmp_path / "model")])
    assert rc == 0 and ReportTokenizer.from_pretrained(tmp_path / "model").vocab_size <= 500


def test_untrained_and_missing_raise(tmp_path):
    with pytest.raises(RuntimeError, match="untrained"):
        ReportTokenizer().encode_batch(["x"], 8)
    with pytest.raises(FileNotFoundError, match="no report tokenizer"):
        ReportTokenizer.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="no non-empty report"):
        ReportTokenizer().train(["", "  "], 100)
