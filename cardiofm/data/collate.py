"""Window samples (dicts from preprocessing, corpus or synthetic data) -> model batches of tensors."""
from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np
import torch

from .channels import CHANNEL_VOCAB, channel_ids


class TextEncoder(Protocol):
    """What collation needs from a tokenizer: texts -> (ids (B, L) long, mask (B, L) bool)."""

    def encode_batch(self, texts: Sequence[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]: ...


def multi_hot(labels: Sequence[Sequence[str]], label_names: Sequence[str]) -> torch.Tensor:
    """Label lists -> (B, K) float multi-hot over `label_names`; labels outside the map are ignored."""
    index = {name: i for i, name in enumerate(label_names)}
    out = torch.zeros(len(labels), len(label_names))
    for b, labs in enumerate(labels):
        for lab in labs:
            if lab in index:
                out[b, index[lab]] = 1.0
    return out


def collate_samples(samples: Sequence[dict], tokenizer: TextEncoder | None = None, max_text_len: int = 64,
                    label_names: Sequence[str] | None = None,
                    vocab: Sequence[str] = CHANNEL_VOCAB,
                    beat_window: tuple[float, int, int] | None = None,
                    rate_fs: float | None = None) -> dict[str, torch.Tensor]:
    """Stack samples into a batch: signals (B, C, T), channel_ids/channel_mask/time_offsets (B, C), text, targets.

    beat_window (a model config's `beat_window`): also precompute the median beats of its beat tokens, here in the
    DataLoader workers rather than in the model's forward on the training process. rate_fs (the windows' Hz): also
    `rate_features` (B, 6) in RATE_FEATURES order. Samples carrying `with_beat_info` results reuse their R peaks."""
    channels = list(samples[0]["channels"])
    if any(list(s["channels"]) != channels for s in samples):
        raise ValueError("samples in one batch must share the channel layout (one PreprocessConfig)")
    ids = torch.tensor(channel_ids(channels, tuple(vocab)), dtype=torch.long)
    batch = {
        "signals": torch.from_numpy(np.stack([np.asarray(s["signal"], dtype=np.float32) for s in samples])),
        "channel_ids": ids.unsqueeze(0).expand(len(samples), -1).clone(),
        "channel_mask": torch.from_numpy(np.stack([np.asarray(s["channel_mask"], dtype=bool) for s in samples])),
        "time_offsets": torch.from_numpy(np.stack([
            np.asarray(s.get("time_offsets", np.zeros(len(channels))), dtype=np.float32) for s in samples])),
    }
    if beat_window is not None:
        from .beats import median_beat_batch

        batch.update(median_beat_batch(batch["signals"], batch["channel_ids"], batch["channel_mask"], vocab,
                                       *beat_window, rpeaks=_cached(samples, "rpeaks")))
    if rate_fs is not None:
        batch["rate_features"] = torch.from_numpy(_rate_features(samples, rate_fs))
    if "vitals" in samples[0]:
        batch["vitals"] = torch.from_numpy(np.stack([np.asarray(s["vitals"], dtype=np.float32) for s in samples]))
        batch["vitals_mask"] = torch.from_numpy(np.stack([np.asarray(s["vitals_mask"], dtype=bool) for s in samples]))
    if tokenizer is not None:
        texts = [s.get("text") or "" for s in samples]
        batch["input_ids"], batch["text_mask"] = tokenizer.encode_batch(texts, max_text_len)
    if label_names is not None:
        batch["labels"] = multi_hot([s.get("labels", []) for s in samples], label_names)
    return batch


def _cached(samples: Sequence[dict], key: str) -> list | None:
    """Every sample's precomputed `key`, or None when any sample lacks it."""
    values = [s.get(key) for s in samples]
    return None if any(v is None for v in values) else values


def _rate_features(samples: Sequence[dict], fs: float) -> np.ndarray:
    """(B, 6) float32 rate features: cached per sample, else measured here (reusing cached R peaks)."""
    from .beats import beat_rate_features

    cached = _cached(samples, "rate_features")
    if cached is not None:
        return np.stack([np.asarray(f, np.float32) for f in cached])
    return np.stack([beat_rate_features(s["signal"], s["channels"], fs, s["channel_mask"], s.get("rpeaks"))
                     for s in samples])
