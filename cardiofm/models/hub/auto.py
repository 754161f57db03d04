"""Auto-class registration: model_type "cardiofm" known to transformers' AutoConfig / AutoModel* after `import cardiofm`."""
from __future__ import annotations


def register_auto_classes() -> None:
    """Register model_type "cardiofm" with AutoConfig, AutoModel and AutoModelForPreTraining (idempotent)."""
    from transformers import AutoConfig, AutoModel, AutoModelForPreTraining

    from ..configuration import CardioFMConfig
    from ..modeling import CardioFMModel
    from ..pretraining import CardioFMForPretraining

    for auto, cls in ((AutoModel, CardioFMModel), (AutoModelForPreTraining, CardioFMForPretraining)):
        try:
            auto.register(CardioFMConfig, cls, exist_ok=True)
        except TypeError:  # older signature without exist_ok
            auto.register(CardioFMConfig, cls)
    try:
        AutoConfig.register("cardiofm", CardioFMConfig, exist_ok=True)
    except TypeError:
        AutoConfig.register("cardiofm", CardioFMConfig)
