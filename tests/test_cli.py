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
