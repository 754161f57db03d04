"""Auto-class registration and `AutoCardioFM`.

`import cardiofm` must stay cheap (the CLI's --help imports it), yet `AutoConfig/AutoModel/AutoProcessor` must know
model_type "cardiofm" afterwards. So `install_registration_hook()` (run by `import cardiofm`) puts a finder on
sys.meta_path that waits for transformers' own auto modules: when `configuration_auto`, `modeling_auto`,
`feature_extraction_auto` or `processing_auto` finishes executing, the matching cardiofm classes are registered.
Nothing of transformers or torch is imported until the user imports them. Loaded already? Registered at once.

Registered: CardioFMConfig -> AutoConfig; CardioFMModel -> AutoModel; CardioFMForPretraining ->
AutoModelForPreTraining; CardioFMForDiagnosis -> AutoModelForSequenceClassification; CardioFMForQuestionAnswering ->
AutoModelForQuestionAnswering; CardioFMFeatureExtractor -> AutoFeatureExtractor; CardioFMProcessor -> AutoProcessor.
Vitals, target and reconstruction heads have no matching Auto class: `AutoCardioFM` loads any checkpoint as the
class named in its saved `config.architectures`.
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys

_AUTO = "transformers.models.auto."


def _register(auto, key, value) -> None:
    auto.register(key, value, exist_ok=True)


def register_config() -> None:
    """CardioFMConfig under model_type "cardiofm" in AutoConfig."""
    from transformers.models.auto.configuration_auto import AutoConfig

    from ..configuration import CardioFMConfig

    _register(AutoConfig, "cardiofm", CardioFMConfig)


def model_classes() -> dict:
    """Architecture name (as saved in config.architectures) -> cardiofm model class."""
    from ..modeling import CardioFMModel
    from ..pretraining import CardioFMForPretraining
    from ..tasks.diagnosis import CardioFMForDiagnosis
    from ..tasks.qa import CardioFMForQuestionAnswering
    from ..tasks.reconstruction import CardioFMForReconstruction
    from ..tasks.target import CardioFMForTarget
    from ..tasks.vitals import CardioFMForVitals

    classes = (CardioFMModel, CardioFMForPretraining, CardioFMForDiagnosis, CardioFMForVitals, CardioFMForTarget,
               CardioFMForReconstruction, CardioFMForQuestionAnswering)
    return {c.__name__: c for c in classes}


def register_models() -> None:
    """Encoder, pretraining, diagnosis and QA classes in their closest transformers Auto classes."""
    from transformers.models.auto import modeling_auto as m

    from ..configuration import CardioFMConfig

    classes = model_classes()
    for auto, name in ((m.AutoModel, "CardioFMModel"), (m.AutoModelForPreTraining, "CardioFMForPretraining"),
                       (m.AutoModelForSequenceClassification, "CardioFMForDiagnosis"),
                       (m.AutoModelForQuestionAnswering, "CardioFMForQuestionAnswering")):
        _register(auto, CardioFMConfig, classes[name])


def register_feature_extractor() -> None:
    """CardioFMFeatureExtractor in AutoFeatureExtractor."""
    from transformers.models.auto.feature_extraction_auto import AutoFeatureExtractor

    from ..configuration import CardioFMConfig
    from ..processor import CardioFMFeatureExtractor

    _register(AutoFeatureExtractor, CardioFMConfig, CardioFMFeatureExtractor)


def register_processor() -> None:
    """CardioFMProcessor in AutoProcessor."""
    from transformers.models.auto.processing_auto import AutoProcessor

    from ..configuration import CardioFMConfig
    from ..processor import CardioFMProcessor

    _register(AutoProcessor, CardioFMConfig, CardioFMProcessor)


# transformers module -> registration to run once it has executed
_ACTIONS = {_AUTO + "configuration_auto": register_config, _AUTO + "modeling_auto": register_models,
            _AUTO + "feature_extraction_auto": register_feature_extractor,
            _AUTO + "processing_auto": register_processor}


def register_auto_classes() -> None:
    """Register every cardiofm class with its Auto class now (imports transformers and torch; idempotent)."""
    for action in _ACTIONS.values():
        action()


class _RegisterAfterImport(importlib.abc.MetaPathFinder):
    """Finds transformers' auto modules through the normal path finder and runs a registration after each loads."""

    def find_spec(self, fullname, path=None, target=None):
        action = _ACTIONS.get(fullname)
        if action is None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not hasattr(spec.loader, "exec_module"):
            return None
        original = spec.loader.exec_module

        def exec_module(module):
            original(module)
            action()

        spec.loader.exec_module = exec_module  # this loader object serves this one module only
        return spec


def install_registration_hook() -> None:
    """Register lazily: now for auto modules already imported, on first import for the others (idempotent)."""
    if any(isinstance(f, _RegisterAfterImport) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _RegisterAfterImport())
    for name, action in _ACTIONS.items():
        if name in sys.modules:
            action()


class AutoCardioFM:
    """Loads any cardiofm checkpoint (directory or Hub id) as the class its config.architectures names."""

    def __init__(self):
        raise TypeError("AutoCardioFM is not instantiated: use AutoCardioFM.from_pretrained(name_or_path)")

    @classmethod
    def from_pretrained(cls, name_or_path, **kwargs):
        """The saved architecture (CardioFMForDiagnosis, ...) with its weights, processor and tokenizer."""
        from ..configuration import CardioFMConfig

        config = kwargs.pop("config", None) or CardioFMConfig.from_pretrained(name_or_path)
        arch = (config.architectures or ["CardioFMForPretraining"])[0]
        classes = model_classes()
        if arch not in classes:
            raise ValueError(f"{name_or_path}: architecture {arch!r} is not a cardiofm model ({sorted(classes)})")
        return classes[arch].from_pretrained(name_or_path, config=config, **kwargs)
