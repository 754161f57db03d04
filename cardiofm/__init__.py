"""cardiofm: a multimodal masked-transformer foundation model for ECG, PPG and report text.

Importing it is cheap (no torch, no transformers): the torchvision guard and the Auto-class registration both wait
for the first import of the module they concern, and the public names below resolve on first use."""
from __future__ import annotations

import importlib

from . import _aliases
from .models.hub.auto import install_registration_hook

__version__ = "0.1.0"

try:  # declares torchvision's op schemas on CPU installs, only when torchvision is first imported
    import cardiofm_torchvision_guard  # noqa: F401
except ImportError:  # package copied without its top-level guard module: guard eagerly (imports torch)
    from . import _compat  # noqa: F401

_aliases.install()
install_registration_hook()

_LAZY = {"AutoCardioFM": "cardiofm.models.hub.auto", "CardioFMProcessor": "cardiofm.models.processor",
         "CardioFMFeatureExtractor": "cardiofm.models.processor", "CardioFMConfig": "cardiofm.models.configuration",
         "from_any": "cardiofm.models.factory", "create_model": "cardiofm.models.factory",
         "register_auto_classes": "cardiofm.models.hub.auto"}
__all__ = ["__version__", *sorted(_LAZY)]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'cardiofm' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)
