"""`cardiofm train-tokenizer`: train the sentencepiece report tokenizer from report text files."""
from __future__ import annotations

HELP = "train the sentencepiece report tokenizer (German + English reports) into a model directory"


def add_arguments(parser) -> None:
    """Inputs: CSV columns and/or plain-text files (one report per line); output: a model directory."""
    parser.add_argument("--csv", action="append", default=[], metavar="PATH",
                        help="CSV with a report column (e.g. PTB-XL ptbxl_database.csv); repeatable")
    parser.add_argument("--column", default="report", help="report column name in every --csv file")
    parser.add_argument("--text-file", action="append", default=[], metavar="PATH",
                        help="UTF-8 text file, one report per line; repeatable")
    parser.add_argument("--vocab-size", type=int, default=4000,
                        help="upper bound on the vocabulary (a small corpus yields fewer pieces)")
    parser.add_argument("--out", required=True, help="directory receiving report_tokenizer.model/.json")


def read_reports(csv_paths: list[str], column: str, text_paths: list[str]) -> list[str]:
    """Collect non-empty report strings; a missing column or file raises naming it."""
    import pandas as pd

    texts: list[str] = []
    for path in csv_paths:
        df = pd.read_csv(path, usecols=lambda c: c == column, dtype=str)
        if column not in df.columns:
            raise ValueError(f"{path}: no column {column!r}")
        texts += [t for t in df[column].dropna().tolist() if t.strip()]
    for path in text_paths:
        with open(path, encoding="utf-8") as fh:
            texts += [line.strip() for line in fh if line.strip()]
    return texts


def run(args) -> int:
    """Train and save; logs where the tokenizer went and its vocabulary size."""
    import logging

    from ..models.tokenizer import ReportTokenizer

    log = logging.getLogger("cardiofm.tokenizer")
    if not args.csv and not args.text_file:
        log.error("give at least one --csv or --text-file")
        return 2
    texts = read_reports(args.csv, args.column, args.text_file)
    if not texts:
        log.error("no report text found in %s", args.csv + args.text_file)
        return 1
    tok = ReportTokenizer().train(texts, args.vocab_size)
    path = tok.save_pretrained(args.out)
    log.info("trained on %d reports: vocabulary %d -> %s", len(texts), tok.vocab_size, path)
    return 0
