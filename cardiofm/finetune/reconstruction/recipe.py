"""Lead-reconstruction recipe: setup (PTB-XL 12-lead + optional BIDMC PPG windows, model) -> train with random
input subsets on the shared engine -> evaluate against the lagged linear baseline -> save model, JSON and PNGs."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ...config import ConfigError, save_config
from ...data.channels import CHANNEL_VOCAB, TWELVE_LEADS, channel_ids
from ...data.preprocess import PreprocessConfig, preprocess_record
from ...engine.config import TrainConfig

logger = logging.getLogger(__name__)

# input sets a wearable or monitor records; training draws them often, plus random subsets of 1-3 leads
NAMED_INPUT_SETS: list[list[str]] = [["I"], ["II"], ["II", "V1", "V5"], ["I", "II"], ["PPG"]]


@dataclass
class ReconstructionConfig:
    """One reconstruction run: data, model, input-subset sampling, evaluation and loop settings."""

    model: str = "tiny"                  # pretraining checkpoint dir / Hub id, or a preset (random init)
    model_overrides: dict[str, int] = field(default_factory=dict)   # preset size overrides, e.g. hidden_size: 96
    ptbxl: str = ""                      # PTB-XL root (ptbxl_database.csv, records100/)
    bidmc: str = ""                      # BIDMC root with *_Signals.csv(.gz): PPG -> ECG pairs ("" = none)
    train_folds: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5, 6, 7])
    test_folds: list[int] = field(default_factory=lambda: [8])
    bidmc_test_fraction: float = 0.3     # last recordings (by name) held out for PPG -> ECG evaluation
    max_records: int = 0                 # 0 = all; otherwise the first N PTB-XL records per split (tests)
    eval_sets: list[list[str]] = field(default_factory=lambda: [list(s) for s in NAMED_INPUT_SETS])
    named_set_prob: float = 0.6          # probability of drawing a named input set instead of a random subset
    max_random_leads: int = 3
    amplitude_jitter: float = 0.2        # ECG scaled by U(1-j, 1+j): the lead mapping is linear in amplitude
    max_lag_s: float = 0.05              # +-50 ms lags of the linear baseline
    model_lag_s: float = 0.4             # +-400 ms taps of the model's linear path: reaches a PPG pulse after its QRS
    lag_warmup_steps: int = 300          # stage 1: linear path alone (cheap); 0 skips it
    lag_warmup_lr: float = 3e-3
    lead_table: bool = True              # 12 x 12 single-lead input x output table (model and baseline)
    diagnostic_check: bool = True        # diagnosis AUROC on reconstructed vs real 12-lead
    diagnosis_model: str = ""            # a CardioFMForDiagnosis checkpoint; "" = ridge classifier fitted here
    n_figures: int = 2                   # PNGs of real vs reconstructed per input set
    output_dir: str = "runs/reconstruction"
    eval_batch_size: int = 64
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        max_steps=600, batch_size=32, checkpoint_every=0, log_every=50, trackers=["none"]))

    def validate(self) -> None:
        """Raise ConfigError on unusable settings."""
        for s in self.eval_sets:
            bad = [c for c in s if c not in CHANNEL_VOCAB]
            if bad or not s:
                raise ConfigError(f"eval_sets: unknown or empty input set {s}")
        if not 0 <= self.named_set_prob <= 1 or not 0 <= self.amplitude_jitter < 1:
            raise ConfigError("named_set_prob must be in [0, 1] and amplitude_jitter in [0, 1)")


@dataclass
class ReconData:
    """Preprocessed windows by split; `ptbxl_*` are 12-lead PTB-XL, `bidmc_*` PPG + II/aVR windows."""

    windows: dict[str, list[dict]]
    fs: float


def _windows(records, pre: PreprocessConfig) -> list[dict]:
    out = []
    for rec in records:
        for w in preprocess_record(rec, pre):
            w["meta"] = {"superclasses": rec.meta.get("superclasses", [])}
            out.append(w)
    return out


def load_reconstruction_data(cfg: ReconstructionConfig, pre: PreprocessConfig) -> ReconData:
    """PTB-XL windows split by strat_fold (+ BIDMC windows split by recording) in the checkpoint's layout."""
    from ...data.readers.ptbxl import ptbxl_ids, read_ptbxl

    if not cfg.ptbxl:
        raise ConfigError("ptbxl: the PTB-XL root is required")
    missing = [c for c in TWELVE_LEADS if c not in pre.channels]
    if missing:
        raise ConfigError(f"the checkpoint's channel layout lacks lead(s) {missing}")
    by_split: dict[str, list] = {"train": [], "test": []}
    for ecg_id in ptbxl_ids(cfg.ptbxl):
        rec = read_ptbxl(cfg.ptbxl, ecg_id)
        fold = rec.meta["strat_fold"]
        split = "train" if fold in cfg.train_folds else "test" if fold in cfg.test_folds else None
        if split and (not cfg.max_records or len(by_split[split]) < cfg.max_records):
            by_split[split].append(rec)
    windows = {f"ptbxl_{k}": _windows(v, pre) for k, v in by_split.items()}
    windows["bidmc_train"], windows["bidmc_test"] = [], []
    if cfg.bidmc:
        from ...data.readers.bidmc import bidmc_files, read_bidmc

        files = bidmc_files(cfg.bidmc)
        n_test = max(1, int(round(cfg.bidmc_test_fraction * len(files)))) if len(files) > 1 else 0
        for i, path in enumerate(files):
            rec = read_bidmc(path)
            keep = [c for c in rec.channels if c in pre.channels]
            windows["bidmc_test" if i >= len(files) - n_test else "bidmc_train"] += _windows([rec.select(keep)], pre)
    logger.info("reconstruction windows: %s", {k: len(v) for k, v in windows.items()})
    return ReconData(windows, pre.fs)


class InputSubsetSampler:
    """Training transform: picks which present channels are the input (named sets often, else random 1-3 leads)
    and jitters ECG amplitude; the engine seeds it per sample, so runs and resumes are reproducible."""

    def __init__(self, cfg: ReconstructionConfig):
        self.cfg = cfg

    def __call__(self, sample: dict, fs: float | None = None) -> dict:
        """sample -> copy with `input_mask` (C,) bool and scaled ECG."""
        chans, present = list(sample["channels"]), np.asarray(sample["channel_mask"], bool)
        avail = {c for c, p in zip(chans, present) if p}
        named = [s for s in NAMED_INPUT_SETS if set(s) <= avail and len(s) < len(avail)]
        if named and np.random.rand() < self.cfg.named_set_prob:
            chosen = named[np.random.randint(len(named))]
        else:
            pool = sorted(avail - {"PPG"}) if len(avail - {"PPG"}) > 1 else sorted(avail)
            k = np.random.randint(1, min(self.cfg.max_random_leads, max(1, len(pool) - 1)) + 1)
            chosen = list(np.random.choice(pool, size=k, replace=False))
        out = dict(sample)
        out["input_mask"] = np.array([c in chosen for c in chans])
        scale = 1.0 + np.random.uniform(-self.cfg.amplitude_jitter, self.cfg.amplitude_jitter)
        ecg = np.array([c != "PPG" for c in chans])[:, None]
        out["signal"] = np.where(ecg, sample["signal"] * scale, sample["signal"]).astype(np.float32)
        return out


def reconstruction_collate(samples: list[dict], targets: list[str] = TWELVE_LEADS,
                           vocab: tuple[str, ...] = CHANNEL_VOCAB) -> dict[str, torch.Tensor]:
    """Window samples with `input_mask` -> batch: inputs zeroed outside the mask, targets (B, Ct, T) + mask."""
    chans = list(samples[0]["channels"])
    x = torch.from_numpy(np.stack([s["signal"] for s in samples]).astype(np.float32))
    present = torch.from_numpy(np.stack([np.asarray(s["channel_mask"], bool) for s in samples]))
    inp = torch.from_numpy(np.stack([np.asarray(s["input_mask"], bool) for s in samples])) & present
    idx = [chans.index(t) for t in targets]
    ids = torch.tensor(channel_ids(chans, vocab))
    return {"signals": x * inp[..., None], "channel_ids": ids[None].expand(len(samples), -1).clone(),
            "channel_mask": inp, "target_ids": torch.tensor(channel_ids(list(targets), vocab))[None].expand(
                len(samples), -1).clone(), "targets": x[:, idx], "target_mask": present[:, idx]}


def build_reconstruction_model(cfg: ReconstructionConfig):
    """CardioFMForReconstruction from a checkpoint (only the lag filter may be missing) or a fresh preset."""
    from ...models import from_any, list_presets
    from ...models.tasks.reconstruction import CardioFMForReconstruction

    head = {"recon_max_lag_s": cfg.model_lag_s, "recon_targets": list(TWELVE_LEADS)}
    if cfg.model in list_presets():
        logger.warning("model %r is a preset: encoder and decoder start from random weights", cfg.model)
    elif cfg.model_overrides:
        raise ConfigError("model_overrides apply to presets only")
    return from_any(cfg.model, CardioFMForReconstruction, **cfg.model_overrides, **head)


def _preprocess_of(cfg: ReconstructionConfig) -> PreprocessConfig:
    """The preprocessing of the model the run starts from (a preset's default or the checkpoint's saved one)."""
    from ...models import resolve_config

    return resolve_config(cfg.model).preprocess_config


def run_reconstruction(cfg: ReconstructionConfig, resume: bool = False) -> dict:
    """setup -> train -> evaluate vs the lagged baseline -> save; returns the results written to results.json."""
    from ...engine.trainer import Trainer, seed_everything
    from .report import evaluate_reconstruction

    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "reconstruction_config.yaml")
    seed_everything(cfg.train.seed)
    data = load_reconstruction_data(cfg, _preprocess_of(cfg))
    model = build_reconstruction_model(cfg)
    train = data.windows["ptbxl_train"] + data.windows["bidmc_train"]
    np.random.seed(cfg.train.seed)
    warm_up_lag_filter(model, train, cfg)
    trainer = Trainer(model, cfg.train, train, reconstruction_collate, None, output_dir=out,
                      transform=InputSubsetSampler(cfg), fs=data.fs)
    result = trainer.train(resume=resume)
    model = trainer.unwrapped_model()
    model.save_pretrained(str(out / "model"))
    results = evaluate_reconstruction(cfg, model, data, out)
    results["training"] = {"steps": result.step, "stopped": result.stopped, "model": cfg.model,
                           "parameters": sum(p.numel() for p in model.parameters())}
    (out / "results.json").write_text(json.dumps(results, indent=1, default=float))
    logger.info("reconstruction model in %s, results in %s, figures in %s", out / "model", out / "results.json",
                out / "figures")
    return results


def warm_up_lag_filter(model, windows: list[dict], cfg: ReconstructionConfig) -> float:
    """Stage 1: fit only the subset-conditioned linear path (no encoder/decoder: ~100x cheaper per step), so that
    stage 2 starts at the lagged-regression optimum and the decoder learns the residual. Returns the last loss."""
    if cfg.lag_warmup_steps <= 0 or not windows:
        return float("nan")
    rng = np.random.default_rng(cfg.train.seed)
    sampler = InputSubsetSampler(cfg)
    params = list(model.lag_filter.parameters())
    opt = torch.optim.Adam(params, lr=cfg.lag_warmup_lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.lag_warmup_steps)
    loss = torch.tensor(float("nan"))
    model.train()
    for _ in range(cfg.lag_warmup_steps):
        idx = rng.integers(0, len(windows), cfg.train.batch_size)
        batch = reconstruction_collate([sampler(windows[i]) for i in idx])
        loss = model(**batch, use_decoder=False).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    loss = loss.detach()
    if not torch.isfinite(loss):
        raise FloatingPointError("lag-filter warm-up diverged (non-finite loss)")
    logger.info("lag-filter warm-up: %d steps, final loss %.4f", cfg.lag_warmup_steps, float(loss))
    return float(loss)
