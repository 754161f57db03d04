"""Saving, loading and pushing of every cardiofm model (mixed into CardioFMPreTrainedModel).

- `from_pretrained` refuses a checkpoint whose architecture does not fit the requested config (hidden size, layers,
  patch, ...), logs one line saying how many weights were transferred, newly initialised or ignored (names at
  DEBUG), and attaches the checkpoint's processor and report tokenizer.
- `save_pretrained` writes weights + config (with `architectures`) + processor files + tokenizer + the model card
  generated from `config.training_summary`.
- `push_to_hub` saves into a temporary folder and uploads exactly that folder.
"""
from __future__ import annotations

import logging
import tempfile
from collections import Counter
from pathlib import Path

logger = logging.getLogger("cardiofm.models")

# config values that fix weight shapes or their meaning: a checkpoint must agree on all of them
ARCHITECTURE_KEYS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "patch_size",
                     "time_embed_dim", "text_vocab_size", "max_text_len", "num_segments", "channel_vocab")
_HUB_KWARGS = ("cache_dir", "revision", "token", "local_files_only", "force_download", "subfolder")


class _DropHFLoadReport(logging.Filter):
    """transformers' multi-line LOAD REPORT table says what report_loading says in one line: keep only ours."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "LOAD REPORT" not in str(record.msg)


def _quiet_hf_report() -> None:
    hf_logger = logging.getLogger("transformers.modeling_utils")
    if not any(isinstance(f, _DropHFLoadReport) for f in hf_logger.filters):
        hf_logger.addFilter(_DropHFLoadReport())


class CheckpointMismatchError(ValueError):
    """A checkpoint of another architecture (preset) than the model asked for."""


def _describe(config) -> str:
    from ..factory import preset_name

    name = preset_name(config)
    shape = (f"hidden {config.hidden_size}, {config.num_hidden_layers} layers, {config.num_attention_heads} heads, "
             f"patch {config.patch_size}")
    return f"preset {name!r} ({shape})" if name else shape


def check_compatible(saved, config, source: str) -> None:
    """Raise CheckpointMismatchError naming every architecture value where `config` differs from the saved one."""
    diffs = [f"{k} {getattr(saved, k)!r} != {getattr(config, k)!r}" if k != "channel_vocab"
             else f"channel_vocab of {len(saved.channel_vocab)} != {len(config.channel_vocab)} names (or reordered)"
             for k in ARCHITECTURE_KEYS if getattr(saved, k) != getattr(config, k)]
    if diffs:
        raise CheckpointMismatchError(f"{source}: checkpoint is {_describe(saved)}, the model asked for is "
                                      f"{_describe(config)}: {'; '.join(diffs)}")


def _groups(keys) -> str:
    """'head (4), decoder (12)': key counts by top-level module."""
    counts = Counter(k.split(".")[1] if k.startswith("cardiofm.") else k.split(".")[0] for k in keys)
    return ", ".join(f"{name} ({n})" for name, n in sorted(counts.items()))


def report_loading(model, info: dict, source: str) -> dict:
    """Log one line with transferred / newly initialised / ignored weight counts (names at DEBUG); returns counts."""
    missing = set(info.get("missing_keys") or ())
    mismatched = {m[0] if isinstance(m, (tuple, list)) else m for m in info.get("mismatched_keys") or ()}
    ignored = set(info.get("unexpected_keys") or ())
    total = len(model.state_dict())
    counts = {"transferred": total - len(missing | mismatched), "initialised": len(missing | mismatched),
              "ignored": len(ignored)}
    logger.info("%s from %s: %d weights transferred, %d newly initialised%s, %d ignored%s", type(model).__name__,
                source, counts["transferred"], counts["initialised"],
                f" [{_groups(missing | mismatched)}]" if missing or mismatched else "", counts["ignored"],
                f" [{_groups(ignored)}]" if ignored else "")
    logger.debug("newly initialised: %s", sorted(missing | mismatched))
    logger.debug("ignored (in the checkpoint, not in %s): %s", type(model).__name__, sorted(ignored))
    return counts


class HubMixin:
    """save_pretrained / from_pretrained / push_to_hub with processor, tokenizer, card and loading report."""

    # ---- processor and tokenizer travel with the model ----------------------------------------------------------
    @property
    def report_tokenizer(self):
        """The checkpoint's ReportTokenizer (report / question text), or None."""
        return self.__dict__.get("_report_tokenizer")

    @report_tokenizer.setter
    def report_tokenizer(self, tokenizer) -> None:
        if tokenizer is not None and tokenizer.vocab_size > self.config.text_vocab_size:
            raise ValueError(f"tokenizer vocabulary {tokenizer.vocab_size} exceeds the model's text_vocab_size "
                             f"{self.config.text_vocab_size}")
        self.__dict__["_report_tokenizer"] = tokenizer

    @property
    def processor(self):
        """CardioFMProcessor of this model: its config's preprocessing + its report tokenizer."""
        from ..processor import CardioFMProcessor

        return CardioFMProcessor.from_config(self.config, self.report_tokenizer)

    # ---- loading ------------------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """HF from_pretrained + architecture check against a given `config`, loading report, processor/tokenizer."""
        from ..configuration import CardioFMConfig
        from ..tokenizer import ReportTokenizer

        want_info = kwargs.pop("output_loading_info", False)
        source = str(pretrained_model_name_or_path)
        hub = {k: kwargs[k] for k in _HUB_KWARGS if kwargs.get(k) is not None}
        config = kwargs.get("config")
        if isinstance(config, CardioFMConfig):
            check_compatible(CardioFMConfig.from_pretrained(pretrained_model_name_or_path, **hub), config, source)
        _quiet_hf_report()
        model, info = super().from_pretrained(pretrained_model_name_or_path, *args, output_loading_info=True,
                                              **kwargs)
        report_loading(model, info, source)
        from ..processor import _hub_file

        file = _hub_file(pretrained_model_name_or_path, "report_tokenizer.model", required=False, **hub)
        model.report_tokenizer = ReportTokenizer(file.read_bytes()) if file is not None else None
        return (model, info) if want_info else model

    # ---- saving -------------------------------------------------------------------------------------------------
    def save_pretrained(self, save_directory, *args, push_to_hub: bool = False, repo_id: str | None = None,
                        **kwargs):
        """Weights + config.json (architectures, training_summary) + processor + tokenizer + README.md card; with
        push_to_hub, that folder is then uploaded as it is (repo_id defaults to the folder name)."""
        from .card import write_model_card

        super().save_pretrained(save_directory, *args, **kwargs)
        self.processor.save_pretrained(save_directory)
        write_model_card(self.config, save_directory, model_class=type(self).__name__,
                         num_parameters=sum(p.numel() for p in self.parameters()))
        if push_to_hub:
            self._upload_folder(str(save_directory), repo_id or Path(save_directory).name, token=kwargs.get("token"))

    def push_to_hub(self, repo_id: str, *, commit_message: str | None = None, commit_description: str | None = None,
                    private: bool | None = None, token=None, revision: str | None = None, create_pr: bool = False,
                    max_shard_size="50GB"):
        """Upload exactly what save_pretrained writes (weights, config, card, processor, tokenizer) -> CommitInfo."""
        with tempfile.TemporaryDirectory(prefix="cardiofm-push-") as folder:
            self.save_pretrained(folder, max_shard_size=max_shard_size)
            return self._upload_folder(folder, repo_id, token=token, private=private, revision=revision,
                                       create_pr=create_pr, commit_message=commit_message,
                                       commit_description=commit_description)

    def _upload_folder(self, folder: str, repo_id: str, token=None, private=None, revision=None, create_pr=False,
                       commit_message=None, commit_description=None):
        from huggingface_hub import HfApi

        api = HfApi(token=token)
        repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
        return api.upload_folder(repo_id=repo_id, folder_path=folder, revision=revision, create_pr=create_pr,
                                 commit_message=commit_message or f"Upload {type(self).__name__}",
                                 commit_description=commit_description)
