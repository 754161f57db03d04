"""One home for "a preset name, a config JSON, a checkpoint directory or a Hub id -> config / model".

`resolve_config(name_or_path)` gives the CardioFMConfig, `from_any(name_or_path, cls, **values)` the model: presets
and JSON files build a fresh (randomly initialised) model, directories and Hub ids load saved weights with a loading
report, refusing checkpoints of another architecture. `create_model` is `from_any` for pretraining.
"""
from __future__ import annotations

import json
from pathlib import Path

PRESET_DIR = Path(__file__).parent / "presets"


def list_presets() -> list[str]:
    """Names of the packaged size presets (tiny, small, base, large)."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.json"))


def is_preset(name) -> bool:
    """True when `name` is a packaged preset name (not a path or Hub id)."""
    return str(name) in list_presets()


def _preset_values(name: str) -> dict:
    path = PRESET_DIR / f"{name}.json"
    if not path.exists():
        raise ValueError(f"unknown preset {name!r}; available: {list_presets()}")
    return json.loads(path.read_text())


def preset_config(name: str, **overrides):
    """CardioFMConfig of a packaged preset, with keyword overrides (e.g. contrastive_loss_weight=0.1)."""
    from .configuration import CardioFMConfig

    return CardioFMConfig(**{**_preset_values(name), **overrides})


def preset_name(config) -> str | None:
    """The preset whose sizes `config` has (every value of the preset file equal), or None."""
    for name in list_presets():
        if all(getattr(config, k, None) == v for k, v in _preset_values(name).items()):
            return name
    return None


def _kind(name_or_path) -> str:
    """'preset' | 'json' | 'checkpoint' (directory or Hub id 'org/name'); raises ValueError for anything else."""
    text, path = str(name_or_path), Path(str(name_or_path))
    if is_preset(text):
        return "preset"
    if path.is_file() and path.suffix == ".json":
        return "json"
    if path.is_dir():
        return "checkpoint"
    if text.count("/") == 1 and not path.exists() and not text.startswith((".", "/")):
        return "checkpoint"  # a Hub id; a missing one fails with OSError when it is fetched
    raise ValueError(f"{text!r} is neither a preset {list_presets()}, a config .json, a model directory nor a "
                            "Hub id 'org/name'")


def resolve_config(name_or_path, **values):
    """CardioFMConfig of a preset, config JSON, checkpoint directory or Hub id, with `values` set on it."""
    from .configuration import CardioFMConfig

    kind = _kind(name_or_path)
    if kind == "preset":
        return preset_config(str(name_or_path), **values)
    if kind == "json":
        return CardioFMConfig(**{**json.loads(Path(name_or_path).read_text()), **values})
    config = CardioFMConfig.from_pretrained(str(name_or_path))
    config.update(values)
    return config


def from_any(name_or_path, cls=None, tokenizer=None, **values):
    """Model of class `cls` (default CardioFMForPretraining) from a preset / config JSON (fresh weights) or a
    checkpoint directory / Hub id (saved weights; only `cls`'s head keys may be missing, only pretraining-only keys
    ignored; an architecture that differs from the checkpoint raises CheckpointMismatchError).

    `values` are config values (head settings such as label names, or preset overrides); `tokenizer` replaces the
    checkpoint's report tokenizer. cls "auto": the checkpoint's saved architecture (pretraining for presets)."""
    config = resolve_config(name_or_path, **values)
    if cls == "auto":
        from .hub.auto import model_classes

        cls = model_classes()[(config.architectures or ["CardioFMForPretraining"])[0]]
    if cls is None:
        from .pretraining import CardioFMForPretraining as cls
    if _kind(name_or_path) == "checkpoint":
        model = cls.from_pretrained_checked(str(name_or_path), config=config)
    else:
        model = cls(config)
    if tokenizer is not None:
        model.report_tokenizer = tokenizer
    return model


def create_model(name_or_path: str, tokenizer=None, **overrides):
    """A CardioFMForPretraining from a preset name, a config JSON, a saved model directory or a Hub repo id."""
    return from_any(name_or_path, None, tokenizer, **overrides)
