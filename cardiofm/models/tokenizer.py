"""ReportTokenizer: a sentencepiece model trained in-process on report text (German and English), saved with the model."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Sequence

import torch

MODEL_FILE = "report_tokenizer.model"
CONFIG_FILE = "report_tokenizer.json"
# ids fixed by training; CardioFMConfig.text_*_id use the same values
PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID = 0, 1, 2, 3, 4
MASK_TOKEN = "[MASK]"


class ReportTokenizer:
    """Report/question text <-> token ids; [CLS] text [SEP], padded with PAD; MASK for masked report modelling."""

    pad_id, unk_id, cls_id, sep_id, mask_id = PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID

    def __init__(self, model_proto: bytes | None = None):
        self._proto = model_proto
        self._sp = None
        if model_proto is not None:
            import sentencepiece as spm

            # a serialized protobuf, parsed by sentencepiece: no pickle involved
            self._sp = spm.SentencePieceProcessor(model_proto=model_proto)
            if self._sp.piece_to_id(MASK_TOKEN) != MASK_ID or self._sp.pad_id() != PAD_ID:
                raise ValueError("sentencepiece model lacks the cardiofm special ids (pad=0, unk=1, cls=2, sep=3, "
                                 "[MASK]=4); train it with ReportTokenizer.train")

    @property
    def vocab_size(self) -> int:
        """Number of token ids (including specials)."""
        self._require()
        return self._sp.get_piece_size()

    def _require(self) -> None:
        if self._sp is None:
            raise RuntimeError("tokenizer is untrained: call train(texts, vocab_size) or from_pretrained(path)")

    def train(self, texts: Iterable[str], vocab_size: int = 4000, model_type: str = "unigram") -> "ReportTokenizer":
        """Train in-process on report texts; vocab_size is an upper bound on a small corpus. Returns self."""
        import io

        import sentencepiece as spm

        texts = [t.strip() for t in texts if t and t.strip()]
        if not texts:
            raise ValueError("no non-empty report text to train the tokenizer on")
        buf = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(texts), model_writer=buf, vocab_size=vocab_size, model_type=model_type,
            pad_id=PAD_ID, unk_id=UNK_ID, bos_id=CLS_ID, eos_id=SEP_ID, pad_piece="[PAD]", unk_piece="[UNK]",
            bos_piece="[CLS]", eos_piece="[SEP]", user_defined_symbols=[MASK_TOKEN],
            # umlauts, accents and unit symbols must stay characters of their own
            character_coverage=1.0, normalization_rule_name="nmt_nfkc_cf",  # case-folded: "Sinusrhythmus" = "sinusrhythmus"
            hard_vocab_limit=False,  # a few hundred reports cannot fill a large vocabulary: shrink instead of failing
            num_threads=1, minloglevel=2,
        )
        self.__init__(buf.getvalue())
        return self

    def encode(self, text: str) -> list[int]:
        """One text -> ids without specials."""
        self._require()
        return self._sp.encode(text or "")

    def decode(self, ids: Sequence[int]) -> str:
        """Ids -> text, dropping specials."""
        self._require()
        return self._sp.decode([int(i) for i in ids if int(i) > MASK_ID])

    def encode_batch(self, texts: Sequence[str], max_length: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
        """Texts -> (ids (B, L) long, mask (B, L) bool) with L = longest sequence <= max_length.

        Each text becomes [CLS] pieces [SEP] (truncated to max_length); an empty text gives an all-False mask row,
        so samples without a report contribute no text tokens.
        """
        self._require()
        if max_length < 3:
            raise ValueError("max_length must leave room for [CLS], one token and [SEP]")
        rows = []
        for text in texts:
            pieces = self._sp.encode(text) if text and text.strip() else []
            rows.append([CLS_ID] + pieces[: max_length - 2] + [SEP_ID] if pieces else [])
        width = max(1, max(len(r) for r in rows))
        ids = torch.full((len(rows), width), PAD_ID, dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        return ids, ids != PAD_ID

    def save_pretrained(self, save_directory: str | Path) -> Path:
        """Write report_tokenizer.model (+ .json with the special ids) into a model directory."""
        self._require()
        out = Path(save_directory)
        out.mkdir(parents=True, exist_ok=True)
        (out / MODEL_FILE).write_bytes(self._proto)
        (out / CONFIG_FILE).write_text(json.dumps({"pad_id": PAD_ID, "unk_id": UNK_ID, "cls_id": CLS_ID,
                                                   "sep_id": SEP_ID, "mask_id": MASK_ID, "mask_token": MASK_TOKEN,
                                                   "vocab_size": self.vocab_size}, indent=2))
        return out / MODEL_FILE

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, **hub_kwargs) -> "ReportTokenizer":
        """Load from a model directory or a Hub repo id (report_tokenizer.model)."""
        path = Path(name_or_path)
        if path.is_dir():
            file = path / MODEL_FILE
            if not file.exists():
                raise FileNotFoundError(f"{file}: no report tokenizer saved in this model directory")
        else:
            from huggingface_hub import hf_hub_download

            file = Path(hf_hub_download(str(name_or_path), MODEL_FILE, **hub_kwargs))
        return cls(file.read_bytes())

    @classmethod
    def from_pretrained_optional(cls, name_or_path: str | Path) -> "ReportTokenizer | None":
        """Like from_pretrained, but None when the model directory / repo has no tokenizer."""
        from huggingface_hub.errors import EntryNotFoundError

        try:
            return cls.from_pretrained(name_or_path)
        except (OSError, EntryNotFoundError):  # EntryNotFoundError is no OSError in huggingface_hub 1.x
            return None
