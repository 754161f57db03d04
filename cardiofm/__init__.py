"""cardiofm: a multimodal masked-transformer foundation model for ECG, PPG and report text."""
from . import _aliases, _compat  # noqa: F401  (_compat must run before transformers/timm import torchvision)

__version__ = "0.1.0"
_aliases.install()
