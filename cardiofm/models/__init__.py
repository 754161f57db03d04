"""cardiofm.models: config, encoder, pretraining model, tokenizer and factory."""
from .configuration import CardioFMConfig
from .factory import create_model, list_presets, preset_config
from .hub import register_auto_classes
from .modeling import CardioFMModel, CardioFMModelOutput, CardioFMPreTrainedModel, EncodedContext, check_loading_info
from .pretraining import CardioFMForPretraining, CardioFMPretrainingOutput
from .tasks.diagnosis import CardioFMForDiagnosis, DiagnosisOutput, label_config
from .tasks.target import CardioFMForTarget, TargetOutput, target_config
from .tasks.vitals import CardioFMForVitals, VitalsOutput, vitals_config
from .tasks.reconstruction import CardioFMForReconstruction, ReconstructionOutput
from .tasks.qa import CardioFMForQuestionAnswering, QAOutput, qa_config

register_auto_classes()

__all__ = [
    "CardioFMConfig", "CardioFMModel", "CardioFMForPretraining", "CardioFMPreTrainedModel", "CardioFMModelOutput",
    "CardioFMPretrainingOutput", "EncodedContext", "create_model", "list_presets", "preset_config",
    "check_loading_info", "register_auto_classes",
    "CardioFMForDiagnosis", "DiagnosisOutput", "label_config", "CardioFMForVitals", "VitalsOutput", "vitals_config",
    "CardioFMForTarget", "TargetOutput", "target_config",
    "CardioFMForReconstruction", "ReconstructionOutput", "CardioFMForQuestionAnswering", "QAOutput", "qa_config",
]
