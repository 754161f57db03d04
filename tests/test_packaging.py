"""The wheel works outside the checkout: built with `pip wheel --no-deps`, installed (--no-deps) into a fresh
virtualenv in a temporary folder whose dependencies come from this environment's site-packages through a .pth file
(no download), then `cardiofm --version`, `cardiofm pretrain --config pretrain_tiny` (a packaged config by name)
and `cardiofm embed` / `cardiofm predict` on a real PTB-XL record run from there."""
from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO, shared_path


def _run(cmd, cwd, env, timeout=240):
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd}: rc {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(bin folder of a fresh venv holding only the cardiofm wheel, environment to run it in, work folder)."""
    root = tmp_path_factory.mktemp("packaging")
    env = dict(os.environ, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1", OMP_NUM_THREADS="1",
               DS_ACCELERATOR="cpu", PYTHONNOUSERSITE="1")
    env.pop("PYTHONPATH", None)
    # no build isolation: setuptools comes from this environment instead of the network
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", root / "dist", REPO],
         root, env)
    wheel = next((root / "dist").glob("cardiofm-*.whl"))
    venv = root / "venv"
    _run([sys.executable, "-m", "venv", venv], root, env)
    purelib = Path(subprocess.run([venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()"
                                   "['purelib'])"], capture_output=True, text=True, check=True).stdout.strip())
    # dependencies (torch, transformers, ...) from this environment, after the venv's own site-packages
    deps = {sysconfig.get_paths()["purelib"], *site.getsitepackages()}
    (purelib / "zz_cardiofm_deps.pth").write_text("\n".join(sorted(deps)) + "\n")
    _run([venv / "bin" / "python", "-m", "pip", "install", "--no-deps", wheel], root, env)
    work = root / "work"
    work.mkdir()
    return venv / "bin", env, work


def test_installed_wheel_runs_outside_the_repository(installed):
    bin_dir, env, work = installed
    where = _run([bin_dir / "python", "-c", "import cardiofm, os; print(os.path.dirname(cardiofm.__file__))"],
                 work, env).stdout.strip()
    assert not where.startswith(str(REPO)) and "site-packages" in where  # the wheel's copy, not the checkout
    from cardiofm import __version__

    assert _run([bin_dir / "cardiofm", "--version"], work, env).stdout.strip() == f"cardiofm {__version__}"
    assert (Path(where) / "configs" / "pretrain_tiny.yaml").is_file()

    _run([bin_dir / "cardiofm", "-q", "pretrain", "--config", "pretrain_tiny", "train.max_steps=2",
          "data.synthetic_size=16", "data.eval_size=8", "train.eval_every=2", "train.checkpoint_every=0",
          "train.plot_every=0", "--output-dir", "run"], work, env)
    model = work / "run" / "model"
    assert json.loads((model / "config.json").read_text())["training_summary"]["steps"] == 2

    record = str(shared_path("ptbxl", "records100", "00000", "00001_lr.hea"))[:-4]
    _run([bin_dir / "cardiofm", "-q", "embed", "--model", model, record, "--out", "emb.npz"], work, env)
    emb = np.load(work / "emb.npz")["embeddings"]
    assert emb.shape == (1, 64) and np.isfinite(emb).all()  # one 10 s window, tiny hidden size

    # a diagnosis head on that encoder, saved and applied with `cardiofm predict` from the installed package
    from cardiofm.models import CardioFMForDiagnosis, label_config

    CardioFMForDiagnosis.from_encoder(str(model), **label_config(["NORM", "MI"])).save_pretrained(work / "dx")
    _run([bin_dir / "cardiofm", "-q", "predict", "dx", record, "--out", "pred.csv"], work, env)
    rows = (work / "pred.csv").read_text().strip().splitlines()
    assert len(rows) == 2 and "NORM" in rows[0] and "MI" in rows[0]  # header + one record


def test_installed_wheel_user_error_is_one_line(installed):
    bin_dir, env, work = installed
    proc = subprocess.run([str(bin_dir / "cardiofm"), "pretrain", "--config", "configs/pretrain_tiny.yaml"],
                          cwd=work, env=env, capture_output=True, text=True, timeout=60)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "pretrain_tiny" in lines[0], proc.stderr
