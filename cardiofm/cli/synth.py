"""`cardiofm synth`: write synthetic 12-lead ECG + PPG records as WFDB files (a corpus to try the pipeline on)."""
from __future__ import annotations

import argparse

HELP = "write synthetic ECG+PPG records (with reports, labels, vitals) as WFDB files"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `cardiofm synth`."""
    parser.add_argument("--out", required=True, help="output folder for the WFDB records")
    parser.add_argument("--num-records", type=int, default=100, help="number of records")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first record")
    parser.add_argument("--fs", type=float, default=500.0, help="sampling rate, Hz")
    parser.add_argument("--duration", type=float, default=10.0, help="record length, seconds")


def write_wfdb_record(rec, out_dir: str) -> None:
    """Write one Record as WFDB (.hea + .dat, 16-bit, 1 uV resolution) with report/labels/vitals as comments."""
    import wfdb

    comments = [f"Report: {rec.text}", f"Labels: {','.join(rec.labels)}"]
    comments += [f"{k}: {v:.2f}" for k, v in rec.vitals.items()]
    wfdb.wrsamp(rec.record_id, fs=rec.fs, units=rec.units, sig_name=rec.channels, p_signal=rec.signal.T.astype("float64"),
                fmt=["16"] * len(rec.channels), adc_gain=[1000.0] * len(rec.channels), baseline=[0] * len(rec.channels),
                comments=comments, write_dir=out_dir)


def run(args: argparse.Namespace) -> int:
    """Generate and write the records."""
    import logging
    import os

    from tqdm import tqdm

    from ..data.synthetic import generate_record

    os.makedirs(args.out, exist_ok=True)
    for i in tqdm(range(args.num_records), desc="synthetic records", unit="rec"):
        write_wfdb_record(generate_record(args.seed + i, fs=args.fs, duration_s=args.duration), args.out)
    logging.getLogger("cardiofm").info("wrote %d WFDB records to %s", args.num_records, os.path.abspath(args.out))
    return 0
