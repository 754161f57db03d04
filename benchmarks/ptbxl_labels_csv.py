"""Write the shared PTB-XL records as a user's labels CSV (record, the five diagnostic superclasses as 0/1 columns,
split from strat_fold: 1-6 train, 7 val, 8 test, subject = patient_id), to run the diagnosis benchmark through the
generic `--labels` path:

    python benchmarks/ptbxl_labels_csv.py runs/ptbxl_super_labels.csv
"""
from __future__ import annotations

import csv
import sys
from pathlib import Path

from cardiofm.data.readers.ptbxl import load_ptbxl_database, load_scp_statements, scp_superclasses

ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ptbxl"
SUPER = ["NORM", "MI", "STTC", "CD", "HYP"]


def split_of(fold: int) -> str:
    """The benchmark's PTB-XL split of a strat_fold."""
    return "test" if fold == 8 else "val" if fold == 7 else "train"


def main(out: str) -> None:
    """Rows of every shared record with a diagnostic superclass -> `out`."""
    db, st = load_ptbxl_database(str(ROOT)), load_scp_statements(str(ROOT))
    rows = []
    for _, r in db.iterrows():
        sup = scp_superclasses(r["scp_codes"], st)
        if sup and (ROOT / (r["filename_lr"] + ".hea")).exists():
            rows.append([r["filename_lr"].rsplit("/", 1)[-1]] + [int(c in sup) for c in SUPER]
                        + [split_of(int(r["strat_fold"])), int(r["patient_id"])])
    with open(out, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["record", *SUPER, "split", "subject"])
        writer.writerows(rows)
    print(f"{len(rows)} records -> {out}")


if __name__ == "__main__":
    main(sys.argv[1])
