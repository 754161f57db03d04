"""create_model: one entry point for size presets, local checkpoints/config files and Hub ids."""
from __future__ import annotations

import json
from pathlib import Path

PRESET_DIR = Path(__file__).parent / "presets"


def list_presets() -> list[str]:
    """Names of the packaged size presets (tiny, small, base, large)."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.json"))


def preset_config(name: str, **overrides):
    """CardioFMConfig of a packaged preset, with keyword overrides (e.g. contrastive_loss_weight=0.1)."""
    from .configuration import CardioFMConfig

    path = PRESET_DIR / f"{name}.json"
    if not path.exists():
        raise ValueError(f"unknown preset {name!r}; available: {list_presets()}")
    values = json.loads(path.read_text())
    values.update(overrides)
    return CardioFMConfig(**values)


def create_model(name_or_path: str, tokenizer=None, **overrides):
    """A CardioFMForPretraining from a preset name, a config JSON, a saved model directory or a Hub repo id.

    Presets and JSON files give a freshly initialised model (overrides change config values); a directory or Hub id
    loads the saved weights (and its report tokenizer, if saved, as `model.report_tokenizer`).
    """
    from .configuration import CardioFMConfig
    from .pretraining import CardioFMForPretraining

    path = Path(name_or_path)
    if str(name_or_path) in list_presets():
        model = CardioFMForPretraining(preset_config(str(name_or_path), **overrides))
    elif path.is_file() and path.suffix == ".json":
        values = json.loads(path.read_text())
        values.update(overrides)
        model = CardioFMForPretraining(CardioFMConfig(**values))
    else:
        if overrides:
            raise ValueError("config overrides apply to presets and config files, not to saved checkpoints")
        if not path.is_dir() and str(name_or_path).count("/") != 1:
            raise ValueError(f"{name_or_path!r} is neither a preset {list_presets()}, a config .json, a model "
                             "directory nor a Hub id 'org/name'")
        model = CardioFMForPretraining.from_pretrained_checked(str(name_or_path))
        if tokenizer is None:
            from .tokenizer import ReportTokenizer

            tokenizer = ReportTokenizer.from_pretrained_optional(str(name_or_path))
    if tokenizer is not None:
        if tokenizer.vocab_size > model.config.text_vocab_size:
            raise ValueError(f"tokenizer vocabulary {tokenizer.vocab_size} exceeds the model's text_vocab_size "
                             f"{model.config.text_vocab_size}")
        model.report_tokenizer = tokenizer
    return model
