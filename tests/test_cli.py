"""The `cardiofm` CLI: every subcommand is present and documents itself; `python -m cardiofm` works."""
import subprocess
import sys

import pytest

from cardiofm.cli.main import SUBCOMMANDS, build_parser, main


def test_every_subcommand_is_registered():
    parser = build_parser()
    choices = next(a for a in parser._actions if a.dest == "command").choices
    assert set(choices) == set(SUBCOMMANDS)


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_subcommand_help(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([name, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: cardiofm " + name) and "--help" in out


def test_python_dash_m_help():
    proc = subprocess.run([sys.executable, "-m", "cardiofm", "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert all(name in proc.stdout for name in SUBCOMMANDS)


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "usage: cardiofm" in capsys.readouterr().out


def test_timm_imports_without_cardiofm_first():
    # the accelerate/deepspeed launchers import timm before cardiofm: the .pth guard must cover them
    proc = subprocess.run([sys.executable, "-c", "import timm, transformers; print('ok')"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]


def _cli(*args, cwd=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "cardiofm", *args], capture_output=True, text=True, timeout=timeout,
                          cwd=cwd)


def test_version_and_help_do_not_import_torch():
    from cardiofm import __version__

    proc = _cli("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"cardiofm {__version__}"
    probe = ("import sys; from cardiofm.cli.main import build_parser; build_parser(); "
             "print(sorted(m for m in ('torch', 'transformers', 'numpy') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stdout + proc.stderr


@pytest.mark.parametrize("argv, names", [
    (["pretrain", "--config", "no_such_config"], "no_such_config"),
    (["pretrain", "train.no_such_key=3"], "train.no_such_key"),
    (["embed", "--model", "missing_model_dir", "x.hea", "--out", "e.npz"], "missing_model_dir"),
    (["prepare", "ptbxl", "--root", "missing_root", "--out", "corpus"], "missing_root"),
    (["reconstruct", "--apply", "rec"], "--apply needs --model"),
])
def test_user_errors_are_one_line_with_exit_2(argv, names, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # in-process (fast); relative inputs resolve in an empty folder
    rc = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert err[0].startswith(f"cardiofm {argv[0]}: error: ") and names in err[0] and "Traceback" not in err[0]


def test_debug_shows_the_traceback(tmp_path):
    proc = _cli("--debug", "pretrain", "--config", "no_such_config", cwd=tmp_path)
    assert proc.returncode == 1 and "Traceback" in proc.stderr and "ConfigError" in proc.stderr


def test_broken_subcommand_stays_listed_and_reports_why(monkeypatch, capsys):
    import importlib

    cli = importlib.import_module("cardiofm.cli.main")  # the package's `main` attribute is the function

    monkeypatch.setitem(cli.SUBCOMMANDS, "broken", "cardiofm.cli.no_such_module")
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "broken" in capsys.readouterr().out
    assert cli.main(["broken", "x"]) == 2
    err = capsys.readouterr().err
    assert "unavailable" in err and "no_such_module" in err


def test_packaged_configs_resolve_by_name_outside_the_repository(tmp_path, monkeypatch):
    from cardiofm.config import PACKAGED_CONFIGS, list_packaged_configs, resolve_config_path

    assert {"pretrain_tiny", "finetune_diagnosis", "finetune_qa"} <= set(list_packaged_configs())
    monkeypatch.chdir(tmp_path)
    assert resolve_config_path("pretrain_tiny") == PACKAGED_CONFIGS / "pretrain_tiny.yaml"
    assert resolve_config_path("pretrain_tiny.yaml") == PACKAGED_CONFIGS / "pretrain_tiny.yaml"
    (tmp_path / "pretrain_tiny.yaml").write_text("output_dir: mine\n")  # a file of that name wins
    assert resolve_config_path("pretrain_tiny.yaml").resolve() == (tmp_path / "pretrain_tiny.yaml").resolve()
