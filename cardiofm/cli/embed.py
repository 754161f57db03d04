"""`cardiofm embed`: recordings -> per-window encoder embeddings (.npz), preprocessed as the checkpoint was trained;
windows are batched across records."""
from __future__ import annotations

HELP = "embed ECG/PPG recordings (WFDB, CSV, NumPy; files or folders) with a cardiofm checkpoint into an .npz"


def add_arguments(parser) -> None:
    """Checkpoint, inputs, input flags (channel names / rate of headerless files, unknown channels), output path."""
    from .predict import add_input_arguments

    parser.add_argument("--model", required=True, help="model directory, Hub id 'org/name' or preset (random weights)")
    parser.add_argument("inputs", nargs="+", help="folders or files of records: WFDB (.hea or base path), CSV, NumPy")
    parser.add_argument("--overlap", type=float, default=0.0, help="fraction of a window shared by the next one")
    parser.add_argument("--batch-size", type=int, default=64, help="windows per forward pass, across records")
    parser.add_argument("--out", required=True, help="output .npz: embeddings (W, H), record, start_s, channel_mask")
    add_input_arguments(parser)


def pooled_features(model, batch):
    """(B, H + C): pooled encoder features of a collated batch (any cardiofm model: its base encoder), then the
    window's channel mask as 0/1 columns (so both travel through the cross-record batching together)."""
    import torch

    from ..models.modeling import batch_beats

    device = next(model.parameters()).device
    keys = ("signals", "channel_ids", "channel_mask", "time_offsets")
    out = model.base_model(**{k: batch[k].to(device) for k in keys}, beats=batch_beats(batch))
    return torch.cat([out.pooled_output.float().cpu(), batch["channel_mask"].float()], 1)


def run(args) -> int:
    """Embed every window of every input; unreadable inputs are reported by name and skipped (exit code 1)."""
    import logging

    import numpy as np

    from ..finetune.inputs import discover_inputs
    from ..finetune.predict import PredictOptions, batched_outputs, model_forward, record_stream
    from ..models.factory import from_any
    from .predict import input_options

    log = logging.getLogger("cardiofm.embed")
    model = from_any(args.model, "auto").eval()  # any checkpoint: its encoder and its preprocessing
    pre = model.config.preprocess_config
    opts = input_options(args)
    items, failed = [], 0
    for path in args.inputs:  # a missing input is reported and skipped, the others embedded
        try:
            items += discover_inputs(path)
        except (FileNotFoundError, ValueError) as err:
            log.error("skipped %s", err)
            failed += 1
    stride = PredictOptions(overlap=args.overlap).stride_s(pre.window_s)
    stream = record_stream(items, opts, pre, stride)
    emb, names, starts, n_ch = [], [], [], len(pre.channels)
    for item, out, start in batched_outputs(stream, model_forward(model, pooled_features), args.batch_size):
        if isinstance(out, BaseException):
            log.error("skipped %s", out)
            failed += 1
            continue
        emb.append(out)
        names += [item.key] * len(out)
        starts += list(start)
    opts.warn_dropped()
    if not emb:
        log.error("no input could be embedded")
        return 1
    out = np.concatenate(emb)
    np.savez(args.out, embeddings=out[:, :-n_ch], record=np.array(names), start_s=np.array(starts),
             channel_mask=out[:, -n_ch:] > 0.5, channels=np.array(pre.channels))
    log.info("%d windows from %d records -> %s", len(names), len(set(names)), args.out)
    return 1 if failed else 0
