"""Readers: one small module per source format, each returning `Record`s (ECG in mV, canonical channel names)."""
from .bidmc import bidmc_files, read_bidmc
from .cinc2021 import read_cinc2021, snomed_ct_map
from .code15 import code15_index, read_code15
from .mimic_iv_ecg import mimic_iv_ecg_ids, read_mimic_iv_ecg
from .mimic_wdb import read_mimic_wdb
from .ptbxl import load_ptbxl_database, load_scp_statements, ptbxl_ids, read_ptbxl, scp_superclasses
from .tabular import read_csv_signal, read_numpy_signal
from .wfdb import contiguous_pieces, read_wfdb

__all__ = ["bidmc_files", "read_bidmc", "read_cinc2021", "snomed_ct_map", "code15_index", "read_code15",
           "mimic_iv_ecg_ids", "read_mimic_iv_ecg", "read_mimic_wdb", "load_ptbxl_database", "load_scp_statements",
           "ptbxl_ids", "read_ptbxl", "scp_superclasses", "read_csv_signal", "read_numpy_signal",
           "contiguous_pieces", "read_wfdb"]
