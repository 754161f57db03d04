"""Old module paths (before the package was arranged in folders) kept importable for one release.

`import cardiofm.models.tasks_qa` returns the module now at `cardiofm.models.tasks.qa` (the same module object, so
patching either name patches both) and warns once with a DeprecationWarning. The list is in CHANGELOG.md.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

MOVED: dict[str, str] = {
    "cardiofm.data.cli_prepare": "cardiofm.cli.prepare",
    "cardiofm.data.cli_synth": "cardiofm.cli.synth",
    "cardiofm.models.cli_tokenizer": "cardiofm.cli.train_tokenizer",
    "cardiofm.models.cli_embed": "cardiofm.cli.embed",
    "cardiofm.pretrain.cli": "cardiofm.cli.pretrain",
    "cardiofm.finetune.cli": "cardiofm.cli.finetune",
    "cardiofm.finetune.cli_evaluate": "cardiofm.cli.evaluate",
    "cardiofm.finetune.cli_qa": "cardiofm.cli.qa",
    "cardiofm.finetune.cli_reconstruct": "cardiofm.cli.reconstruct",
    "cardiofm.finetune.cli_study": "cardiofm.cli.augment_study",
    "cardiofm.models.tasks_diagnosis": "cardiofm.models.tasks.diagnosis",
    "cardiofm.models.tasks_generic": "cardiofm.models.tasks.target",
    "cardiofm.models.tasks_vitals": "cardiofm.models.tasks.vitals",
    "cardiofm.models.tasks_reconstruction": "cardiofm.models.tasks.reconstruction",
    "cardiofm.models.tasks_qa": "cardiofm.models.tasks.qa",
    "cardiofm.models.task_heads": "cardiofm.models.tasks.heads",
    "cardiofm.finetune.recon_baseline": "cardiofm.finetune.reconstruction.baseline",
    "cardiofm.finetune.recon_eval": "cardiofm.finetune.reconstruction.evaluation",
    "cardiofm.finetune.recon_report": "cardiofm.finetune.reconstruction.report",
    "cardiofm.finetune.augment_study": "cardiofm.finetune.study",
    "cardiofm.data.stream": "cardiofm.data.corpus.stream",
    "cardiofm.data.sources": "cardiofm.data.corpus.sources",
    "cardiofm.data.star": "cardiofm.data.augment.star",
    "cardiofm.data.median_beat": "cardiofm.data.beats",
    "cardiofm.data.beat_rate": "cardiofm.data.beats",
    "cardiofm.engine.trainer_loop": "cardiofm.engine.trainer",
}


class _AliasLoader(importlib.abc.Loader):
    """Loads an old name as the module at its new path."""

    def __init__(self, target: str):
        self.target = target

    def create_module(self, spec):
        warnings.warn(f"{spec.name} moved to {self.target}; the old path goes away in the next release",
                      DeprecationWarning, stacklevel=3)
        return importlib.import_module(self.target)

    def exec_module(self, module) -> None:
        """Nothing to run: the target module is already executed."""


class _AliasFinder(importlib.abc.MetaPathFinder):
    """Finds the old names of MOVED."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, _AliasLoader(MOVED[fullname]))


def install() -> None:
    """Put the alias finder on sys.meta_path (idempotent)."""
    if not any(isinstance(f, _AliasFinder) for f in sys.meta_path):
        sys.meta_path.append(_AliasFinder())
