"""Augmentation configs (YAML section `augment`), the name -> class registry and the on-the-fly pipeline applying
the enabled augmentations, in order, to sample dicts."""
from __future__ import annotations

from dataclasses import dataclass, field, fields

from ...config import ConfigError
from .baselines import (AmplitudeScale, BaselineWander, EqualSegmentResample, GaussianNoise, LeadMask, RandomShift,
                        TimeStretch)
from .star import STAR, StarConfig


@dataclass
class CropShiftConfig:
    """Random shift, seconds."""
    p: float = 0.5
    max_shift_s: float = 1.0


@dataclass
class TimeStretchConfig:
    """Global stretch factor range."""
    p: float = 0.5
    factor_range: tuple[float, float] = (0.9, 1.1)


@dataclass
class GaussianNoiseConfig:
    """White noise SNR range, dB."""
    p: float = 0.5
    snr_db_range: tuple[float, float] = (15.0, 30.0)


@dataclass
class BaselineWanderConfig:
    """Wander frequency (Hz) and amplitude (fraction of channel RMS) ranges."""
    p: float = 0.5
    freq_hz_range: tuple[float, float] = (0.05, 0.5)
    amplitude_range: tuple[float, float] = (0.1, 0.5)


@dataclass
class AmplitudeScaleConfig:
    """Global gain range."""
    p: float = 0.5
    scale_range: tuple[float, float] = (0.8, 1.2)


@dataclass
class LeadMaskConfig:
    """Largest fraction of present channels masked."""
    p: float = 0.5
    max_fraction: float = 0.5


@dataclass
class EqualSegmentConfig:
    """Reference equal-length segment resampler (baseline) gain range."""
    p: float = 0.5
    amplitude_range: tuple[float, float] = (0.8, 1.3)


# name -> (class, config field); the config section's fields are the class's keyword parameters
AUGMENTATIONS = {
    "star": STAR, "crop_shift": RandomShift, "time_stretch": TimeStretch, "gaussian_noise": GaussianNoise,
    "baseline_wander": BaselineWander, "amplitude_scale": AmplitudeScale, "lead_mask": LeadMask,
    "equal_segment": EqualSegmentResample,
}


@dataclass
class AugmentConfig:
    """On-the-fly augmentation (YAML section `augment`): `enabled` names are applied in order to each sample."""

    enabled: list[str] = field(default_factory=list)
    seed: int = 0
    star: StarConfig = field(default_factory=StarConfig)
    crop_shift: CropShiftConfig = field(default_factory=CropShiftConfig)
    time_stretch: TimeStretchConfig = field(default_factory=TimeStretchConfig)
    gaussian_noise: GaussianNoiseConfig = field(default_factory=GaussianNoiseConfig)
    baseline_wander: BaselineWanderConfig = field(default_factory=BaselineWanderConfig)
    amplitude_scale: AmplitudeScaleConfig = field(default_factory=AmplitudeScaleConfig)
    lead_mask: LeadMaskConfig = field(default_factory=LeadMaskConfig)
    equal_segment: EqualSegmentConfig = field(default_factory=EqualSegmentConfig)

    def validate(self) -> None:
        """Raise ConfigError naming an unknown augmentation or a bad probability."""
        unknown = [n for n in self.enabled if n not in AUGMENTATIONS]
        if unknown:
            raise ConfigError(f"augment.enabled: unknown augmentation {unknown[0]!r}; known: {sorted(AUGMENTATIONS)}")
        for name in AUGMENTATIONS:
            p = getattr(self, name).p
            if not 0.0 <= p <= 1.0:
                raise ConfigError(f"augment.{name}.p must be in [0, 1], got {p}")


class AugmentationPipeline:
    """Applies augmentations in order to a sample dict: `pipeline(sample, fs) -> sample` (input not modified)."""

    def __init__(self, augmentations: list, seed: int = 0):
        self.augmentations = list(augmentations)
        self.reseed(seed)

    def reseed(self, seed: int) -> None:
        """Restart every random stream from `seed` (distinct per augmentation); use a per-worker seed."""
        for i, aug in enumerate(self.augmentations):
            aug.reseed(None if seed is None else seed * 1009 + i)

    @property
    def stats(self) -> dict:
        """Per-augmentation call/application counters."""
        return {type(a).__name__: dict(a.stats) for a in self.augmentations}

    def __call__(self, sample: dict, fs: float) -> dict:
        for aug in self.augmentations:
            sample = aug.apply(sample, fs)
        return sample


def build_augmentation(cfg: AugmentConfig) -> AugmentationPipeline:
    """The configured augmentations as one callable `(sample, fs) -> sample`; an empty list is the identity."""
    cfg.validate()
    augs = []
    for name in cfg.enabled:
        section = getattr(cfg, name)
        kwargs = {f.name: getattr(section, f.name) for f in fields(section)}
        augs.append(AUGMENTATIONS[name](seed=0, **kwargs))
    return AugmentationPipeline(augs, seed=cfg.seed)
