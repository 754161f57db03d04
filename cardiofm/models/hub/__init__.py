"""Hugging Face Hub integration: lazy Auto-class registration and AutoCardioFM (`auto`), the model card generated
from the run (`card`) and the run summary stored in the config (`summary`). Importing this package stays cheap."""
from .auto import AutoCardioFM, install_registration_hook, register_auto_classes
from .card import CARD_NAME, model_card, write_model_card

__all__ = ["AutoCardioFM", "install_registration_hook", "register_auto_classes", "CARD_NAME", "model_card",
           "write_model_card"]
