"""cardiofm.models: config, encoder, pretraining and task models, processor, tokenizer and factory.

Names resolve on first use (PEP 562), so `import cardiofm.models` costs nothing until a class is asked for; Auto-class
registration happens when transformers' auto modules load (see models/hub/auto.py)."""
from __future__ import annotations

import importlib

_EXPORTS = {
    ".configuration": ["CardioFMConfig"],
    ".factory": ["create_model", "from_any", "resolve_config", "list_presets", "preset_config", "is_preset"],
    ".hub": ["register_auto_classes", "AutoCardioFM"],
    ".modeling": ["CardioFMModel", "CardioFMModelOutput", "CardioFMPreTrainedModel", "EncodedContext",
                  "check_loading_info", "CheckpointMismatchError"],
    ".pretraining": ["CardioFMForPretraining", "CardioFMPretrainingOutput"],
    ".processor": ["CardioFMProcessor", "CardioFMFeatureExtractor"],
    ".tasks.diagnosis": ["CardioFMForDiagnosis", "DiagnosisOutput", "label_config"],
    ".tasks.target": ["CardioFMForTarget", "TargetOutput", "target_config"],
    ".tasks.vitals": ["CardioFMForVitals", "VitalsOutput", "vitals_config"],
    ".tasks.reconstruction": ["CardioFMForReconstruction", "ReconstructionOutput"],
    ".tasks.qa": ["CardioFMForQuestionAnswering", "QAOutput", "qa_config"],
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'cardiofm.models' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name], __name__), name)
    globals()[name] = value  # resolved once
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
