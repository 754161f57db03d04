"""CardioFMProcessor: the checkpoint's signal feature extractor + its report/question tokenizer, saved with the model.

The feature extractor wraps the one preprocessing path (`cardiofm.data.preprocess.prepare_input`: channel names ->
canonical leads, resampling, band-pass filtering, windowing, normalisation) with the settings stored in the
checkpoint; it does not re-implement any of it. Files: `preprocessor_config.json` (feature extractor),
`processor_config.json` (processor), `report_tokenizer.model/.json` (tokenizer, when the checkpoint has one).
`AutoProcessor.from_pretrained(dir)` returns a CardioFMProcessor after `import cardiofm`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
from transformers.feature_extraction_utils import BatchFeature, FeatureExtractionMixin

from ..data.channels import CHANNEL_VOCAB, channel_ids
from ..data.preprocess import PreprocessConfig, prepare_input
from .tokenizer import MODEL_FILE, ReportTokenizer

FEATURE_EXTRACTOR_FILE = "preprocessor_config.json"
PROCESSOR_FILE = "processor_config.json"
_HUB_KWARGS = ("cache_dir", "revision", "token", "local_files_only", "force_download", "subfolder")


def _hub_file(name_or_path, filename: str, required: bool = True, **kwargs) -> Path | None:
    """A file of a model directory or Hub repo; None when absent and not required, else FileNotFoundError."""
    path = Path(name_or_path)
    if path.is_dir():
        file = path / filename
        if file.is_file():
            return file
        if required:
            raise FileNotFoundError(f"{file}: missing from the model directory")
        return None
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    hub = {k: v for k, v in kwargs.items() if k in _HUB_KWARGS and v is not None}
    try:
        return Path(hf_hub_download(str(name_or_path), filename, **hub))
    except (OSError, EntryNotFoundError) as err:  # missing entry (not an OSError), or not cached when offline
        if required:
            raise FileNotFoundError(f"{name_or_path}: no {filename} ({type(err).__name__})") from err
        return None


class CardioFMFeatureExtractor(FeatureExtractionMixin):
    """Raw (channels, samples) array at any rate -> model-ready windows, with the checkpoint's PreprocessConfig.

    Saved as preprocessor_config.json: `preprocess` (PreprocessConfig fields) and `channel_vocab` (channel names in
    embedding order)."""

    model_input_names = ["signals", "channel_ids", "channel_mask"]

    def __init__(self, preprocess: dict | None = None, channel_vocab: Sequence[str] | None = None, **kwargs):
        kwargs.pop("feature_extractor_type", None)
        kwargs.pop("processor_class", None)
        if kwargs:
            raise ValueError(f"unknown CardioFMFeatureExtractor setting(s): {sorted(kwargs)}")
        super().__init__()
        self.preprocess = PreprocessConfig.from_dict(dict(preprocess or {})).to_dict()  # validates the keys
        self.channel_vocab = list(channel_vocab or CHANNEL_VOCAB)

    @classmethod
    def from_config(cls, config) -> "CardioFMFeatureExtractor":
        """The feature extractor of a CardioFMConfig (its preprocess settings and channel vocabulary)."""
        return cls(preprocess=config.preprocess, channel_vocab=config.channel_vocab)

    def to_dict(self) -> dict:
        """Serialisable settings; names the processor so AutoProcessor finds it from this file alone."""
        out = super().to_dict()
        out["processor_class"] = "CardioFMProcessor"
        return out

    @property
    def preprocess_config(self) -> PreprocessConfig:
        """The data layer's settings (fs Hz, window s, channel layout, bands, normalisation)."""
        return PreprocessConfig.from_dict(self.preprocess)

    @property
    def sampling_rate(self) -> float:
        """Rate the model expects, Hz."""
        return float(self.preprocess["fs"])

    def windows(self, signal: np.ndarray, fs: float, channels: Sequence[str] | str, **input_options) -> dict:
        """prepare_input on one recording: signal (W, C, T) at the model rate, channel_mask (W, C), start_s (W,),
        valid_fraction (W,), channels (the layout); raises RecordError naming an unknown channel. The arguments go
        to the input contract unchanged (a 'I,II' string, fs checks); input_options: units, quality, pad."""
        return prepare_input(signal, fs, channels, self.preprocess_config, **input_options)

    def layout_ids(self) -> list[int]:
        """Channel-vocabulary ids of the preprocessing layout, in layout order."""
        return channel_ids(list(self.preprocess["channels"]), tuple(self.channel_vocab))

    def __call__(self, signal: np.ndarray, fs: float, channels: Sequence[str] | str,
                 return_tensors: str | None = "pt", **input_options) -> BatchFeature:
        """One recording -> BatchFeature of its windows: signals (W, C, T), channel_ids (W, C), channel_mask (W, C),
        start_s (W,) seconds, valid_fraction (W,) (< 1 for windows of zero-padded input; see prepare_input)."""
        prepared = self.windows(signal, fs, channels, **input_options)
        n = len(prepared["signal"])
        ids = np.tile(np.asarray(self.layout_ids(), dtype=np.int64), (n, 1))
        data = {"signals": prepared["signal"], "channel_ids": ids, "channel_mask": prepared["channel_mask"],
                "start_s": np.asarray(prepared["start_s"], dtype=np.float32),
                "valid_fraction": np.asarray(prepared["valid_fraction"], dtype=np.float32)}
        return BatchFeature(data, tensor_type=return_tensors)


class CardioFMProcessor:
    """Feature extractor (signals) + ReportTokenizer (report or question text) of one checkpoint."""

    def __init__(self, feature_extractor: CardioFMFeatureExtractor, tokenizer: ReportTokenizer | None = None,
                 max_text_len: int = 64):
        self.feature_extractor = feature_extractor
        self.tokenizer = tokenizer
        self.max_text_len = int(max_text_len)

    @classmethod
    def from_config(cls, config, tokenizer: ReportTokenizer | None = None) -> "CardioFMProcessor":
        """The processor a model with this CardioFMConfig needs (tokenizer optional)."""
        return cls(CardioFMFeatureExtractor.from_config(config), tokenizer, config.max_text_len)

    def __call__(self, signal: np.ndarray | None = None, fs: float | None = None,
                 channels: Sequence[str] | None = None, text: str | Sequence[str] | None = None,
                 return_tensors: str | None = "pt") -> BatchFeature:
        """Signals (see CardioFMFeatureExtractor.__call__) and/or text -> input_ids, text_mask (B, L)."""
        if signal is None and text is None:
            raise ValueError("give a signal (with fs and channels) and/or text")
        out = BatchFeature()
        if signal is not None:
            if fs is None or channels is None:
                raise ValueError("a signal needs its sampling rate fs (Hz) and channel names")
            out.update(self.feature_extractor(signal, fs, channels, return_tensors=return_tensors))
        if text is not None:
            ids, mask = self.tokenize([text] if isinstance(text, str) else list(text))
            out["input_ids"], out["text_mask"] = ids, mask
        return out

    def tokenize(self, texts: Sequence[str], max_length: int | None = None):
        """Texts -> (ids (B, L) long, mask (B, L) bool) as in pretraining; raises without a tokenizer."""
        if self.tokenizer is None:
            raise RuntimeError("this checkpoint has no report/question tokenizer (report_tokenizer.model)")
        return self.tokenizer.encode_batch(list(texts), max_length or self.max_text_len)

    def save_pretrained(self, save_directory, **kwargs) -> list[Path]:
        """Write preprocessor_config.json, processor_config.json and the tokenizer files; returns the paths."""
        out = Path(save_directory)
        out.mkdir(parents=True, exist_ok=True)
        paths = [out / FEATURE_EXTRACTOR_FILE, out / PROCESSOR_FILE]
        self.feature_extractor.to_json_file(paths[0])
        meta = {"processor_class": type(self).__name__, "max_text_len": self.max_text_len,
                "tokenizer_file": MODEL_FILE if self.tokenizer is not None else None}
        paths[1].write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        if self.tokenizer is not None:
            paths.append(self.tokenizer.save_pretrained(out))
        return paths

    @classmethod
    def from_pretrained(cls, name_or_path, **kwargs) -> "CardioFMProcessor":
        """Load from a model directory or Hub id (as AutoProcessor.from_pretrained does after `import cardiofm`)."""
        meta = json.loads(_hub_file(name_or_path, PROCESSOR_FILE, **kwargs).read_text(encoding="utf-8"))
        if meta.get("processor_class") != cls.__name__:
            raise ValueError(f"{name_or_path}: {PROCESSOR_FILE} names {meta.get('processor_class')!r}, "
                             f"not {cls.__name__}")
        fe_file = _hub_file(name_or_path, FEATURE_EXTRACTOR_FILE, **kwargs)
        feature_extractor = CardioFMFeatureExtractor(**json.loads(fe_file.read_text(encoding="utf-8")))
        tokenizer = None
        if meta.get("tokenizer_file"):  # declared: it must be there
            tokenizer = ReportTokenizer(_hub_file(name_or_path, meta["tokenizer_file"], **kwargs).read_bytes())
        return cls(feature_extractor, tokenizer, meta["max_text_len"])

    def __repr__(self) -> str:
        vocab = None if self.tokenizer is None else self.tokenizer.vocab_size
        return (f"CardioFMProcessor(fs={self.feature_extractor.sampling_rate:g} Hz, "
                f"channels={self.feature_extractor.preprocess['channels']}, tokenizer vocab={vocab})")
