"""Short masked-signal pretraining on real recordings (PTB-XL 12-lead + reports, BIDMC ECG + PPG).

Reports held-out masked-reconstruction MSE against three baselines on the very same masks:
copy-the-mean (predict the training mean of each channel), visible-mean (predict the mean of the channel's
visible patches in that window; training mean for fully hidden channels) and linear interpolation between the nearest
visible samples of the channel. The long pretraining of every task (benchmarks/bench_finetune_quality.py --stage
pretrain) logs the same held-out numbers as learning curves.

    python benchmarks/bench_pretrain_real.py --preset tiny --steps 300 --plot docs/figures/pretrain_recon.png
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

import cardiofm  # noqa: F401  (torchvision guard before transformers)
from cardiofm.data.collate import collate_samples
from cardiofm.data.preprocess import PreprocessConfig, preprocess_record
from cardiofm.data.readers import bidmc_files, ptbxl_ids, read_bidmc, read_ptbxl
from cardiofm.models import create_model
from cardiofm.models.tokenizer import ReportTokenizer

DEFAULT_DATA = Path(os.environ.get("CARDIOFM_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


def load_real_windows(root: Path, max_ptbxl: int | None = None, max_bidmc: int | None = None,
                      cfg: PreprocessConfig | None = None) -> tuple[list[dict], list[dict]]:
    """(train, test) window samples: PTB-XL split by strat_fold (8 = test), BIDMC by recording (09, 10 = test)."""
    cfg = cfg or PreprocessConfig()
    train, test = [], []
    for ecg_id in ptbxl_ids(str(root / "ptbxl"))[:max_ptbxl]:
        rec = read_ptbxl(str(root / "ptbxl"), ecg_id)
        (test if rec.meta["strat_fold"] == 8 else train).extend(preprocess_record(rec, cfg))
    for path in bidmc_files(str(root / "bidmc"))[:max_bidmc]:
        rec = read_bidmc(path)
        (test if rec.record_id.endswith(("_09", "_10")) else train).extend(preprocess_record(rec, cfg))
    return train, test


def channel_means(samples: list[dict]) -> torch.Tensor:
    """(C,) training mean of each layout channel over the windows where it is present."""
    sig = np.stack([s["signal"] for s in samples]).astype(np.float64)
    mask = np.stack([s["channel_mask"] for s in samples])
    tot = (sig.sum(-1) * mask).sum(0)
    cnt = mask.sum(0) * sig.shape[-1]
    return torch.tensor(np.where(cnt > 0, tot / np.maximum(cnt, 1), 0.0), dtype=torch.float32)


def interpolation_baseline(targets: torch.Tensor, visible: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
    """(B, C, P, L) prediction of hidden patches by linear interpolation between the nearest visible samples of the
    same channel (edge values held beyond the first/last visible patch); training mean for fully hidden channels."""
    b, c, p, l = targets.shape
    flat = targets.reshape(b, c, p * l).numpy()
    seen = visible.repeat_interleave(l, dim=-1).numpy()
    out = np.broadcast_to(means.numpy()[None, :, None], flat.shape).copy()
    grid = np.arange(p * l)
    for i in range(b):
        for j in range(c):
            known = np.flatnonzero(seen[i, j])
            if len(known):
                out[i, j] = np.interp(grid, known, flat[i, j, known])
    return torch.from_numpy(out.reshape(b, c, p, l)).to(targets.dtype)


@torch.no_grad()
def evaluate(model, samples: list[dict], means: torch.Tensor, tokenizer=None, batch_size: int = 64,
             seed: int = 1234, collate=None) -> dict[str, float]:
    """Held-out masked-reconstruction MSE of the model and of three baselines (copy-the-mean, visible-mean, linear
    interpolation) on identical seeded masks, plus the mean held-out value of every pretraining objective."""
    was_training = model.training
    model.eval()
    collate = collate or (lambda b: collate_samples(b, tokenizer, max_text_len=64))
    gen = torch.Generator().manual_seed(seed)
    sums = {"model": 0.0, "copy_mean": 0.0, "visible_mean": 0.0, "linear_interp": 0.0}
    objectives: dict[str, float] = {}
    n, batches = 0.0, 0
    for i in range(0, len(samples), batch_size):
        out = model(**collate(samples[i:i + batch_size]), generator=gen)
        m, tgt = out.loss_mask, out.targets.float()
        vis = out.visible_mask.float()[..., None]
        vis_mean = (tgt * vis).sum((2, 3)) / (vis.sum((2, 3)) * tgt.shape[-1]).clamp_min(1)
        has_vis = out.visible_mask.any(-1)
        vis_mean = torch.where(has_vis, vis_mean, means[None].expand_as(vis_mean))
        interp = interpolation_baseline(tgt, out.visible_mask, means)
        count = float(m.sum()) * tgt.shape[-1]
        sums["model"] += float(((out.predictions.float() - tgt) ** 2)[m].sum())
        sums["copy_mean"] += float(((tgt - means[None, :, None, None]) ** 2)[m].sum())
        sums["visible_mean"] += float(((tgt - vis_mean[..., None, None]) ** 2)[m].sum())
        sums["linear_interp"] += float(((tgt - interp) ** 2)[m].sum())
        for name, value in (out.losses or {}).items():
            objectives[name] = objectives.get(name, 0.0) + float(value)
        n += count
        batches += 1
    model.train(was_training)
    result = {k: v / max(n, 1.0) for k, v in sums.items()}
    result.update({f"loss_{k}": v / batches for k, v in objectives.items()})
    return result


def pretrain(model, samples: list[dict], steps: int, batch_size: int = 32, lr: float = 1e-3, tokenizer=None,
             seed: int = 0, log_every: int = 0) -> list[float]:
    """AdamW with linear warm-up over 10 % of the steps; returns the per-step training losses."""
    rng = np.random.default_rng(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05, betas=(0.9, 0.95))
    warm = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warm))
    gen = torch.Generator().manual_seed(seed)
    losses = []
    model.train()
    for step in range(steps):
        idx = rng.choice(len(samples), size=min(batch_size, len(samples)), replace=False)
        batch = collate_samples([samples[j] for j in idx], tokenizer, max_text_len=64)
        out = model(**batch, generator=gen)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(out.loss.item())
        if log_every and step % log_every == 0:
            print(f"step {step:4d} loss {out.loss.item():.4f} " +
                  " ".join(f"{k} {v.item():.4f}" for k, v in out.losses.items()), flush=True)
    return losses


def plot_reconstruction(model, sample: dict, path: Path, tokenizer=None) -> None:
    """Plot a held-out window: input, visible patches and reconstruction of hidden patches for 4 channels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model.eval()
    with torch.no_grad():
        out = model(**collate_samples([sample], tokenizer, 64), generator=torch.Generator().manual_seed(7))
    model.train()
    chans = [i for i, c in enumerate(sample["channels"]) if sample["channel_mask"][i]][:4]
    fs = 100.0
    fig, axes = plt.subplots(len(chans), 1, figsize=(10, 2 * len(chans)), sharex=True)
    for ax, c in zip(np.atleast_1d(axes), chans):
        tgt = out.targets[0, c].reshape(-1).numpy()
        pred = np.where(out.loss_mask[0, c].repeat_interleave(out.targets.shape[-1]).numpy(),
                        out.predictions[0, c].reshape(-1).numpy(), np.nan)
        t = np.arange(len(tgt)) / fs
        ax.plot(t, tgt, color="0.6", lw=0.8, label="signal")
        ax.plot(t, pred, color="C3", lw=0.9, label="reconstruction of hidden patches")
        dropped = " (whole channel hidden)" if out.dropped_channels[0, c] else ""
        ax.set_ylabel(sample["channels"][c] + dropped)
    np.atleast_1d(axes)[0].legend(loc="upper right", fontsize=7)
    np.atleast_1d(axes)[-1].set_xlabel("time (s)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    """Load data, train, evaluate, print the comparison (and optionally plot)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--plot", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    t0 = time.time()
    train, test = load_real_windows(args.data)
    tok = ReportTokenizer().train([s["text"] for s in train], vocab_size=1000)
    print(f"data: {len(train)} train / {len(test)} held-out windows ({time.time() - t0:.1f} s to load); "
          f"tokenizer vocabulary {tok.vocab_size}")
    model = create_model(args.preset, tokenizer=tok)
    means = channel_means(train)
    before = evaluate(model, test, means, tok)
    t1 = time.time()
    losses = pretrain(model, train, args.steps, args.batch_size, args.lr, tok, log_every=max(1, args.steps // 10))
    secs = time.time() - t1
    after = evaluate(model, test, means, tok)
    print(f"trained {args.steps} steps x {args.batch_size} windows in {secs:.1f} s "
          f"({args.steps * args.batch_size / secs:.1f} windows/s, {torch.get_num_threads()} threads)")
    print(f"held-out masked-reconstruction MSE: untrained {before['model']:.4f} -> trained {after['model']:.4f}; "
          f"copy-the-mean {after['copy_mean']:.4f}; visible-mean {after['visible_mean']:.4f}; "
          f"linear interpolation {after['linear_interp']:.4f}")
    print(f"ratio trained / copy-the-mean = {after['model'] / after['copy_mean']:.3f}; "
          f"trained / visible-mean = {after['model'] / after['visible_mean']:.3f}; last train loss {losses[-1]:.4f}")
    if args.plot:
        plot_reconstruction(model, test[0], args.plot, tok)
        print(f"reconstruction plot -> {args.plot}")


if __name__ == "__main__":
    main()
