"""cardiofm: a multimodal masked-transformer foundation model for ECG, PPG and report text."""
from . import _compat  # noqa: F401  (must run before transformers/timm import torchvision)

__version__ = "0.1.0"
