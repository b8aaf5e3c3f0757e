"""Promises about the package itself: cheap import, typed, README and CI in step."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import arraysparse

ROOT = Path(__file__).resolve().parents[1]


def test_import_compiles_nothing() -> None:
    """``import arraysparse`` loads neither Numba nor the kernels."""
    code = "import sys, arraysparse; print(sorted(m for m in sys.modules if m.startswith(('numba', 'arraysparse._kernels.cpu'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_public_api_is_sorted_and_complete() -> None:
    assert arraysparse.__all__ == sorted(arraysparse.__all__)
    for name in arraysparse.__all__:
        assert getattr(arraysparse, name).__doc__, name


def test_ships_py_typed() -> None:
    assert (Path(arraysparse.__file__).parent / "py.typed").exists()


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"```sh\n(.+?)\n```", readme)
    assert len(commands) == 2, "README keeps exactly two set-up commands"
    ci = (ROOT / ".ci" / "run").read_text()
    assert commands[1] in ci.splitlines()
