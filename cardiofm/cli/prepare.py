"""`cardiofm prepare <source>`: build a sharded Arrow corpus from raw recordings (parallel, resumable, splittable)."""
from __future__ import annotations

import argparse

HELP = "build a preprocessed Arrow corpus from WFDB/PTB-XL/CinC/MIMIC/CODE-15%/BIDMC/CSV/NumPy recordings"

SOURCE_NAMES = ("wfdb", "ptbxl", "cinc2021", "mimic-iv-ecg", "mimic-wdb", "code15", "bidmc", "csv", "numpy")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `cardiofm prepare`."""
    parser.add_argument("source", choices=SOURCE_NAMES, help="input format / named source")
    parser.add_argument("--root", required=True, help="folder holding the source as downloaded")
    parser.add_argument("--out", required=True, help="corpus folder (shards/, corpus.json, quarantine.jsonl)")
    parser.add_argument("--num-proc", type=int, default=1, help="worker processes")
    parser.add_argument("--shard-index", type=int, default=0, help="this machine's index when splitting the work")
    parser.add_argument("--num-shards", type=int, default=1, help="number of machines splitting the work")
    parser.add_argument("--records-per-shard", type=int, default=1000, help="input records per output shard")
    parser.add_argument("--config", default=None, help="YAML file with PreprocessConfig fields")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="PreprocessConfig overrides, e.g. fs=250 window_s=5 stride_s=2.5")
    parser.add_argument("--high-rate", action="store_true", help="PTB-XL: read records500 instead of records100")
    parser.add_argument("--channels", default=None, help="csv/numpy: comma-separated channel names, e.g. II,PPG")
    parser.add_argument("--fs", type=float, default=None, help="csv/numpy: sampling rate in Hz")
    parser.add_argument("--keep-empty-text", action="store_true",
                        help="keep records whose report is empty or not UTF-8 (text '') instead of quarantining")
    parser.add_argument("--label-map", default=None, help="CSV whose first column lists the allowed label codes")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Build or resume the corpus; prints the summary."""
    import json
    import logging

    from ..config import load_config
    from ..data.corpus import prepare_corpus
    from ..data.preprocess import PreprocessConfig
    from ..data.corpus.sources import SourceOptions

    cfg = load_config(PreprocessConfig, args.config, list(args.set))
    opts = SourceOptions(root=args.root, high_rate=args.high_rate, fs=args.fs,
                         channels=[c.strip() for c in args.channels.split(",")] if args.channels else None,
                         require_text=not args.keep_empty_text, label_map=args.label_map)
    corpus = prepare_corpus(args.source, opts, args.out, cfg, num_proc=args.num_proc, shard_index=args.shard_index,
                            num_shards=args.num_shards, records_per_shard=args.records_per_shard,
                            progress=not args.no_progress)
    logging.getLogger("cardiofm.corpus").info("summary: %s", json.dumps(corpus["summary"]))
    return 0
