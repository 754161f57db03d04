"""Signal augmentations: STAR (beat-wise time-amplitude resampling between R peaks, `star`), the baseline
augmentations it is compared against (`baselines`), and their configs and pipeline (`pipeline`). May import
cardiofm.data and cardiofm.config; never models."""
from .baselines import (AmplitudeScale, Augmentation, BaselineWander, EqualSegmentResample, GaussianNoise, LeadMask,
                        RandomShift, TimeStretch)
from .pipeline import AUGMENTATIONS, AugmentConfig, AugmentationPipeline, build_augmentation
from .star import STAR, StarConfig

__all__ = ["STAR", "StarConfig", "Augmentation", "AmplitudeScale", "BaselineWander", "EqualSegmentResample",
           "GaussianNoise", "LeadMask", "RandomShift", "TimeStretch", "AUGMENTATIONS", "AugmentConfig",
           "AugmentationPipeline", "build_augmentation"]
