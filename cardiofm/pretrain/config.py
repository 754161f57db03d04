"""PretrainConfig: YAML sections model / data / tokenizer / train (engine TrainConfig) with key=value overrides."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..config import ConfigError
from ..engine.config import OptimConfig, TrainConfig


@dataclass
class ModelSection:
    """Which model to pretrain: a preset (tiny/small/base/large), a config JSON, a saved directory or a Hub id."""

    name: str = "tiny"
    overrides: dict[str, Any] = field(default_factory=dict)   # CardioFMConfig values, e.g. {mask_ratio: 0.6}


@dataclass
class DataSection:
    """Training data: corpus folders built by `cardiofm prepare` (streamed mixture), else embedded synthetic data."""

    corpus_dirs: list[str] = field(default_factory=list)       # empty: synthetic ECG + PPG + reports
    weights: list[float] | None = None                         # mixture weights per corpus (default equal)
    eval_dirs: list[str] = field(default_factory=list)         # held-out corpora for eval loss (default: synthetic)
    shuffle_buffer: int = 1000                                 # streaming shuffle buffer, samples
    synthetic_size: int = 4096                                 # synthetic training windows
    synthetic_seed: int = 0
    eval_size: int = 64                                        # evaluation windows
    eval_batches_seed: int = 1234                              # masking seed of the eval loss (comparable over steps)
    augment: dict[str, Any] | None = None                      # AugmentConfig values; None: no augmentation

    def validate(self) -> None:
        """Raise ConfigError on inconsistent sizes or weights."""
        if self.weights is not None and len(self.weights) != len(self.corpus_dirs):
            raise ConfigError(f"data.weights has {len(self.weights)} entries for {len(self.corpus_dirs)} corpus_dirs")
        if self.synthetic_size < 1 or self.eval_size < 0:
            raise ConfigError("data.synthetic_size must be >= 1 and data.eval_size >= 0")


@dataclass
class TokenizerSection:
    """Report tokenizer: load from `path`, else train on report text at setup (saved beside the model)."""

    path: str | None = None
    vocab_size: int = 500
    train_texts: int = 2000               # reports read from the training data to train it
    max_text_len: int = 64                # tokens per report, [CLS] and [SEP] included


@dataclass
class PretrainOptimConfig(OptimConfig):
    """OptimConfig with defaults for the short default run (overriding one key keeps the others)."""

    lr: float = 1e-3
    warmup_steps: int = 10


@dataclass
class PretrainTrainConfig(TrainConfig):
    """TrainConfig with defaults for the short CPU run of `cardiofm pretrain` without --config."""

    max_steps: int = 60
    batch_size: int = 8
    log_every: int = 10
    checkpoint_every: int = 30
    eval_every: int = 30
    plot_every: int = 30
    optim: PretrainOptimConfig = field(default_factory=PretrainOptimConfig)


@dataclass
class PretrainConfig:
    """Everything `cardiofm pretrain` needs; `output_dir` receives checkpoints, logs, plots and model/."""

    output_dir: str = "runs/pretrain"
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    tokenizer: TokenizerSection = field(default_factory=TokenizerSection)
    train: PretrainTrainConfig = field(default_factory=PretrainTrainConfig)
