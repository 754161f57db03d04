"""Hugging Face Hub integration: Auto-class registration (`auto`) and the generated model card (`card`)."""
from .auto import register_auto_classes
from .card import CARD_NAME, model_card, write_model_card

__all__ = ["register_auto_classes", "CARD_NAME", "model_card", "write_model_card"]
