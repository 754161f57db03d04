"""`cardiofm embed`: recordings -> per-window encoder embeddings (.npz), preprocessed as the checkpoint was trained."""
from __future__ import annotations

HELP = "embed ECG/PPG recordings (WFDB, CSV, NumPy) with a cardiofm checkpoint into an .npz of window vectors"


def add_arguments(parser) -> None:
    """Checkpoint, input files, optional channel names / sampling rate for headerless files, output path."""
    parser.add_argument("--model", required=True, help="model directory, Hub id 'org/name' or preset (random weights)")
    parser.add_argument("inputs", nargs="+", help="WFDB record (.hea or base path), .csv, .npy or .npz files")
    parser.add_argument("--channels", default=None, help="comma-separated channel names for CSV/NumPy without sidecar")
    parser.add_argument("--fs", type=float, default=None, help="sampling rate in Hz for CSV/NumPy without sidecar")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--out", required=True, help="output .npz: embeddings (W, H), record, start_s, channel_mask")


def read_any(path: str, channels, fs):
    """Dispatch a file to the data layer's reader by extension -> Record."""
    from ..data.readers import read_csv_signal, read_numpy_signal, read_wfdb

    if path.endswith(".csv") or path.endswith(".csv.gz"):
        return read_csv_signal(path, channels, fs)
    if path.endswith((".npy", ".npz")):
        return read_numpy_signal(path, channels, fs)
    return read_wfdb(path)


def run(args) -> int:
    """Embed every window of every input; unreadable files are reported by name and skipped (exit code 1)."""
    import logging

    import numpy as np
    from tqdm import tqdm

    from ..data.record import RecordError
    from ..models.factory import from_any

    log = logging.getLogger("cardiofm.embed")
    model = from_any(args.model, "auto").eval()  # any checkpoint: its encoder and its processor
    features = model.processor.feature_extractor
    chans = args.channels.split(",") if args.channels else None
    emb, names, starts, masks, failed = [], [], [], [], 0
    for path in tqdm(args.inputs, desc="embed", unit="record"):
        try:
            rec = read_any(path, chans, args.fs)
            batch = features(rec.signal, rec.fs, rec.channels)
        except (RecordError, OSError, ValueError) as err:
            log.error("skipped %s: %s", path, err)
            failed += 1
            continue
        emb.append(model.embed_batch(batch, args.batch_size).float().numpy())
        names += [path] * len(batch["signals"])
        starts += batch["start_s"].tolist()
        masks.append(batch["channel_mask"].numpy())
    if not emb:
        log.error("no input could be embedded")
        return 1
    np.savez(args.out, embeddings=np.concatenate(emb), record=np.array(names), start_s=np.array(starts),
             channel_mask=np.concatenate(masks), channels=np.array(features.preprocess["channels"]))
    log.info("%d windows from %d records -> %s", len(names), len(args.inputs) - failed, args.out)
    return 1 if failed else 0
