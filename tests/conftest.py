"""Shared fixtures: the real recordings in ../shared/data (tests skip cleanly when absent)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

import cardiofm  # noqa: F401  (installs the torchvision guard before timm/transformers are imported)

os.environ.setdefault("DS_ACCELERATOR", "cpu")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("CARDIOFM_SHARED_DATA", REPO.parent / "shared" / "data"))


def shared_path(*parts: str) -> Path:
    """Path inside the shared real-data folder; skips the calling test when it is missing."""
    p = SHARED_DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"real data not available: {p} (set CARDIOFM_SHARED_DATA)")
    return p


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of the shared real recordings."""
    return shared_path()


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op thread for a module: on a loaded 2-core machine two threads spin against other jobs."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
