"""arraysparse._compat: the one door for optional libraries."""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

import arraysparse as asp
from arraysparse import _compat

PACKAGE = Path(asp.__file__).resolve().parent
ROOT = PACKAGE.parent


def hide(monkeypatch, top: str) -> None:
    """Make ``top`` and its loaded submodules unimportable, as if it were not installed."""
    for name in [m for m in sys.modules if m == top or m.startswith(top + ".")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, top, None)


class CupyxLike:
    """An object that says it is a cupyx sparse matrix (no CuPy needed)."""


CupyxLike.__module__ = "cupyx.scipy.sparse._csr"


def _csr():
    return asp.compress(np.eye(4), "csr")


def _scipy_matrix():
    sp = pytest.importorskip("scipy.sparse")
    return sp.csr_array(np.eye(3))


def _torch_sparse():
    torch = pytest.importorskip("torch")
    return torch.eye(3).to_sparse()


CASES = {
    "to_scipy": ("scipy", lambda: _csr, lambda r: r.to_scipy(), r"to_scipy\(\) needs SciPy: pip install 'arraysparse\[scipy\]'"),
    "from_scipy": ("scipy", lambda: _scipy_matrix, asp.from_scipy, r"from_scipy\(\) needs SciPy: pip install 'arraysparse\[scipy\]'"),
    "to_torch": ("torch", lambda: _csr, lambda r: r.to_torch(), r"to_torch\(\) needs PyTorch: pip install 'arraysparse\[torch\]'"),
    "from_torch": ("torch", lambda: _torch_sparse, asp.from_torch, r"from_torch\(\) needs PyTorch: pip install 'arraysparse\[torch\]'"),
    "to_cupyx": ("cupyx", lambda: _csr, lambda r: r.to_cupyx(), r"to_cupyx\(\) needs CuPy: pip install 'arraysparse\[cupy-cuda12\]' or pip install 'arraysparse\[cupy-cuda13\]'"),
    "from_cupyx": ("cupyx", lambda: CupyxLike, asp.from_cupyx, r"from_cupyx\(\) needs CuPy: pip install 'arraysparse\[cupy-cuda12\]'"),
    "precompile bfloat16": ("torch", lambda: lambda: ["bfloat16"], lambda d: asp.precompile(d, progress=False),
                            r"precompile\(\['bfloat16'\]\).* needs PyTorch: pip install 'arraysparse\[torch\]'"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_missing_optional_library_names_the_extra(monkeypatch, case) -> None:
    top, make, call, match = CASES[case]
    arg = make()()  # built while the library is there
    hide(monkeypatch, top)
    with pytest.raises(ModuleNotFoundError, match=match) as info:
        call(arg)
    assert isinstance(info.value, ImportError) and info.value.name == top


def test_a_missing_dependency_of_an_installed_library_passes_unchanged(monkeypatch) -> None:
    def broken(name, package=None):
        raise ModuleNotFoundError("No module named 'typing_extensions'", name="typing_extensions")

    monkeypatch.setattr(importlib, "import_module", broken)
    with pytest.raises(ModuleNotFoundError, match="No module named 'typing_extensions'"):
        _compat.optional_import("scipy.sparse", purpose="to_scipy()")


def test_optional_import_refuses_a_library_it_does_not_know() -> None:
    with pytest.raises(ValueError, match="module='pandas' is not one of the optional libraries"):
        _compat.optional_import("pandas", purpose="x")


def test_the_extras_named_in_messages_exist() -> None:
    tomllib = pytest.importorskip("tomllib")
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for _, names in _compat.OPTIONAL.values():
        for name in names:
            assert name in extras, name


def test_optional_libraries_are_imported_only_through_optional_import() -> None:
    """A bare ``import torch`` anywhere in the package would fail without a hint of the extra."""
    bare = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                modules = [node.module or ""]
            else:
                continue
            bare += [f"{path.relative_to(ROOT)}:{node.lineno} {m}" for m in modules if m.split(".")[0] in _compat.OPTIONAL]
    assert not bare, bare
