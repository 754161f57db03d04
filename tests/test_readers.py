"""Readers on the real files in ../shared/data, and on small files written in the published MIMIC-IV-ECG and
CODE-15% layouts: channel names, units (mV), metadata, and clear errors naming file and reason."""
import os
import shutil

import numpy as np
import pytest
import wfdb

from cardiofm.data import TWELVE_LEADS, RecordError, read_wfdb
from cardiofm.data.readers import (read_bidmc, read_cinc2021, read_code15, read_csv_signal, read_mimic_iv_ecg,
                                   read_mimic_wdb, read_numpy_signal, read_ptbxl)
from cardiofm.data.readers.code15 import code15_index
from cardiofm.data.readers.mimic_iv_ecg import mimic_iv_ecg_ids
from tests.conftest import shared_path


def test_ptbxl_record_matches_wfdb_in_mv_with_report_and_labels():
    root = str(shared_path("ptbxl"))
    rec = read_ptbxl(root, 1)
    ref = wfdb.rdrecord(os.path.join(root, "records100/00000/00001_lr"))
    assert rec.channels == list(TWELVE_LEADS) and rec.fs == 100.0 and rec.signal.shape == (12, 1000)
    assert np.abs(rec.signal - ref.p_signal.T).max() < 1e-6  # header says 1000/mV: already mV
    assert rec.text == "sinusrhythmus periphere niederspannung"
    assert rec.labels == ["NORM", "LVOLT", "SR"] and rec.meta["scp_likelihoods"]["NORM"] == 100.0
    assert rec.meta["superclasses"] == ["NORM"] and rec.meta["strat_fold"] == 3
    assert rec.subject_id == "15709" and rec.label_names["SR"] == "sinus rhythm"
    hr = read_ptbxl(root, 1, high_rate=True)
    assert hr.fs == 500.0 and hr.signal.shape == (12, 5000)


def test_ptbxl_empty_report_is_flagged_or_refused():
    root = str(shared_path("ptbxl"))
    rec = read_ptbxl(root, 443)  # this release's record 443 has an empty report
    assert rec.text == "" and rec.meta["text_issue"] == "empty report"
    with pytest.raises(RecordError, match="00443_lr.hea: empty report"):
        read_ptbxl(root, 443, require_report=True)


def test_cinc2021_snomed_labels_age_sex_and_lowercase_units():
    d = shared_path("torch_ecg_sample", "cinc2021")
    rec = read_cinc2021(str(d / "HR06002.hea"))  # header units are written 'mv'
    assert rec.labels == ["426177001", "426783006", "713426002"]
    assert rec.label_names == {"426177001": "SB", "426783006": "NSR", "713426002": "IRBBB"}
    assert rec.meta["age"] == 29.0 and rec.meta["sex"] == "M" and rec.meta["database"] == "PTB-XL"
    assert rec.units == ["mV"] * 12 and rec.signal.shape == (12, 5000)
    ref = wfdb.rdrecord(str(d / "HR06002"))
    assert np.abs(rec.signal - ref.p_signal.T).max() < 1e-5


def test_mitdb_mlii_maps_to_lead_ii_and_format_212_decodes():
    rec = read_wfdb(str(shared_path("mitdb", "100.hea")))
    assert rec.channels == ["II", "V5"] and rec.fs == 360.0 and rec.signal.shape == (2, 650000)
    assert -3.0 < rec.signal.min() and rec.signal.max() < 3.0  # mV range of a normal ECG


def test_multisegment_mimic2_record_with_layout_gaps_and_numerics():
    base = shared_path("wfdb_python_sample", "mimic2wdb_s25047") / "s25047-2704-05-04-10-44"
    rec = read_mimic_wdb(str(base))
    assert rec.channels == ["II", "ECG", "ABP"] and rec.signal.shape == (3, 543240) and rec.fs == 125.0
    assert np.isfinite(rec.signal).all()  # gaps are zero and listed in runs, never NaN
    runs = rec.meta["runs"]
    assert runs[0][0] == 25740  # the leading '~' gap segment of 25740 samples
    assert all("ABP" not in r[2] for r in runs if r[1] <= 3525 * 0 + 450000)  # ABP appears only in late segments
    assert rec.subject_id == "s25047" and rec.vital_fs == pytest.approx(1 / 60, rel=1e-3)
    assert 40 < np.nanmedian(rec.vital_series["HR"]) < 140 and set(rec.vital_series) >= {"HR", "RR", "SpO2"}


def test_mimicdb_multisegment_pleth_and_units():
    rec = read_wfdb(str(shared_path("wfdb_python_sample", "mimicdb_041s") / "041s"))
    assert rec.channels == ["III", "I", "ECG", "ABP", "PAP", "PPG", "RESP"] and rec.signal.shape == (7, 2000)
    assert rec.units[3] == "mmHg" and "runs" not in rec.meta


def test_mimic3_single_segment_record():
    rec = read_mimic_wdb(str(shared_path("wfdb_python_sample", "mimic3wdb_3000003") / "3000003_0003"))
    assert rec.channels == ["II", "ECG"] and rec.subject_id == "3000003" and rec.signal.shape[1] == 1028


def test_bidmc_columns_with_leading_spaces_and_numerics():
    rec = read_bidmc(str(shared_path("bidmc", "bidmc_csv", "bidmc_01_Signals.csv.gz")))
    assert rec.channels == ["RESP", "PPG", "ECG", "aVR", "II"] and rec.fs == 125.0
    assert rec.signal.shape == (5, 60001) and rec.vital_fs == 1.0
    assert len(rec.vital_series["HR"]) == 481 and np.isnan(rec.vital_series["SpO2"]).sum() == 13
    assert rec.meta["age"] == 88.0 and rec.meta["sex"] == "M" and rec.subject_id == "s01182"


def test_heartpy_csv_fs_from_millisecond_timer():
    rec = read_csv_signal(str(shared_path("heartpy_ppg", "data2.csv")), channels=["PPG"])
    assert rec.channels == ["PPG"] and 110 < rec.fs < 125 and rec.signal.shape == (1, 15000)


def _write_mimic_iv_ecg(root, study=40689238, subject=10000032, report=("Sinus rhythm", "Normal ECG")):
    rel = f"files/p1000/p{subject}/s{study}/{study}"
    os.makedirs(os.path.join(root, os.path.dirname(rel)))
    t = np.arange(5000) / 500.0
    sig = np.stack([0.5 * np.sin(2 * np.pi * 1.2 * t + k) for k in range(12)], 1)
    names = ["I", "II", "III", "aVR", "aVF", "aVL", "V1", "V2", "V3", "V4", "V5", "V6"]  # the release's lead order
    wfdb.wrsamp(str(study), fs=500, units=["mV"] * 12, sig_name=names, p_signal=sig, fmt=["16"] * 12,
                adc_gain=[200.0] * 12, baseline=[0] * 12, write_dir=os.path.join(root, os.path.dirname(rel)))
    with open(os.path.join(root, "record_list.csv"), "w") as f:
        f.write("subject_id,study_id,file_name,ecg_time,path\n")
        f.write(f"{subject},{study},{study},2180-07-23 08:44:00,{rel}\n")
    cols = ["subject_id", "study_id", "cart_id", "ecg_time"] + [f"report_{i}" for i in range(18)] + [
        "bandwidth", "filtering", "rr_interval", "p_onset", "p_end", "qrs_onset", "qrs_end", "t_end", "p_axis",
        "qrs_axis", "t_axis"]
    vals = [str(subject), str(study), "6848296", "2180-07-23 08:44:00"] + list(report) + [""] * (18 - len(report)) + [
        "0.005-150 Hz", "60 Hz  notch Baseline filter", "659", "40", "128", "170", "258", "518", "81", "77", "79"]
    with open(os.path.join(root, "machine_measurements.csv"), "w") as f:
        f.write(",".join(cols) + "\n" + ",".join(vals) + "\n")
    return sig


def test_mimic_iv_ecg_published_layout(tmp_path):
    sig = _write_mimic_iv_ecg(str(tmp_path))
    assert mimic_iv_ecg_ids(str(tmp_path)) == [40689238]
    rec = read_mimic_iv_ecg(str(tmp_path), 40689238)
    assert rec.text == "Sinus rhythm; Normal ECG" and rec.subject_id == "10000032" and rec.record_id == "40689238"
    assert rec.channels[4] == "aVF" and rec.vitals["HR"] == pytest.approx(60000 / 659)
    assert np.abs(rec.signal - sig.T).max() < 0.006  # 200 adu/mV quantisation
    assert rec.meta["measurements"]["qrs_axis"] == 77.0


def test_code15_published_layout_trims_padding(tmp_path):
    import h5py

    x = np.zeros((3, 4096, 12), dtype=np.float32)
    x[0, 48:4048] = np.cos(np.linspace(0, 60, 4000))[:, None]      # 10 s exam, 48 zeros each side
    x[1, 648:3448] = 0.3 * np.cos(np.linspace(0, 40, 2800))[:, None]  # 7 s exam, 648 zeros each side
    with h5py.File(tmp_path / "exams_part0.hdf5", "w") as f:
        f["tracings"] = x
        f["exam_id"] = np.array([101, 102, 0])  # the last row is padding
    with open(tmp_path / "exams.csv", "w") as f:
        f.write("exam_id,age,is_male,nn_predicted_age,1dAVb,RBBB,LBBB,SB,ST,AF,patient_id,death,timey,normal_ecg,"
                "trace_file\n101,57,True,60.1,False,True,False,False,False,True,7,False,,False,exams_part0.hdf5\n"
                "102,30,False,28.0,False,False,False,False,False,False,8,False,,True,exams_part0.hdf5\n")
    assert code15_index(str(tmp_path)) == [(str(tmp_path / "exams_part0.hdf5"), 0), (str(tmp_path / "exams_part0.hdf5"), 1)]
    a = read_code15(str(tmp_path / "exams_part0.hdf5"), 0)
    b = read_code15(str(tmp_path / "exams_part0.hdf5"), 1)
    assert a.signal.shape == (12, 4000) and b.signal.shape == (12, 2800) and a.fs == 400.0
    assert a.labels == ["RBBB", "AF"] and a.subject_id == "7" and a.meta["sex"] == "M" and b.labels == []


def test_numpy_with_sidecar_and_uv_units(tmp_path):
    np.save(tmp_path / "rec.npy", np.full((2, 1000), 1000.0, dtype=np.float32))
    (tmp_path / "rec.json").write_text('{"fs": 250, "channels": ["MLII", "pleth"], "units": ["uV", "NU"]}')
    rec = read_numpy_signal(str(tmp_path / "rec.npy"))
    assert rec.channels == ["II", "PPG"] and rec.fs == 250.0 and rec.signal[0, 0] == pytest.approx(1.0)


def _copy_ptbxl(tmp_path, name="bad"):
    src = shared_path("ptbxl", "records100", "00000")
    for ext in (".hea", ".dat"):
        shutil.copy(src / f"00001_lr{ext}", tmp_path / f"{name}{ext}")
        os.chmod(tmp_path / f"{name}{ext}", 0o644)
    hea = tmp_path / f"{name}.hea"
    hea.write_text(hea.read_text().replace("00001_lr", name))
    return tmp_path / name


@pytest.mark.parametrize("damage, reason", [
    (lambda p: p.with_suffix(".dat").write_bytes(p.with_suffix(".dat").read_bytes()[:5001]), "truncated"),
    (lambda p: p.with_suffix(".hea").write_text(p.with_suffix(".hea").read_text().replace("12 100 1000", "12 100 1200")),
     "header/data length mismatch"),
    (lambda p: p.with_suffix(".hea").write_text(p.with_suffix(".hea").read_text().replace("12 100 1000", "12 0 1000")),
     "invalid sampling rate"),
    (lambda p: p.with_suffix(".hea").write_text(p.with_suffix(".hea").read_text().replace("12 100 1000", "12")),
     "missing sampling rate"),
    (lambda p: p.with_suffix(".dat").unlink(), "signal file bad.dat is missing"),
    (lambda p: open(p.with_suffix(".hea"), "ab").write(b"# Report: caf\xe9\n"), "not valid UTF-8"),
    (lambda p: p.with_suffix(".hea").write_text(p.with_suffix(".hea").read_text().replace(" V1\n", " V2\n")),
     "duplicated channel"),
])
def test_broken_wfdb_raises_naming_file_and_reason(tmp_path, damage, reason):
    base = _copy_ptbxl(tmp_path)
    damage(base)
    with pytest.raises(RecordError, match=reason) as err:
        read_wfdb(str(base))
    assert err.value.path.endswith("bad.hea")
