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
    "precompile cuda": ("cupy", lambda: lambda: [], lambda d: asp.precompile(d, cuda=0, progress=False),
                        r"precompile\(cuda=0\).* needs CuPy: pip install 'arraysparse\[cupy-cuda12\]'"),
    "open_checkpoint like='torch'": ("torch", lambda: _checkpoint, lambda path: asp.io.open_checkpoint(path, like="torch"),
                                     r"like='torch' needs PyTorch: pip install 'arraysparse\[torch\]'"),
    "prune_checkpoint progress": ("tqdm", lambda: lambda: {"w": np.ones((4, 4))},
                                  lambda m: asp.prune_checkpoint(m, {}, 0.5, progress=True),
                                  r"progress=True needs tqdm: pip install 'arraysparse\[cli\]'"),
    "cli plots": ("matplotlib", lambda: lambda: None, lambda _: _plots_figure(),
                  r"drawing plots needs matplotlib: pip install 'arraysparse\[cli\]'"),
}


def _checkpoint(tmp=[]):  # noqa: B006 - one file for the module
    if not tmp:
        import tempfile

        path = Path(tempfile.mkdtemp()) / "m.safetensors"
        asp.io.write_checkpoint(path, {"w": np.ones(3, np.float32)})
        tmp.append(path)
    return tmp[0]


def _plots_figure():
    from arraysparse.cli import _plots

    return _plots._figure_class()


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


# -- JAX without x64: no int64 requested, none needed ----------------------------------------
@pytest.fixture
def jax_x32():
    """JAX with ``jax_enable_x64`` off, its default (the test suite turns it on in conftest)."""
    jax = pytest.importorskip("jax")
    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", False)
    try:
        yield jax.numpy
    finally:
        jax.config.update("jax_enable_x64", before)


def _jax_calls(jnp):
    rng = np.random.default_rng(0)
    w_np = rng.standard_normal((32, 32)).astype(np.float32)
    w = jnp.asarray(w_np)
    w24 = asp.nm_mask(w, 2, 4, magnitude=True).apply(w)
    x = jnp.asarray(rng.standard_normal((4, 8, 32)).astype(np.float32))
    attention = jnp.asarray(np.arange(8)[None, :] < np.array([8, 5, 3, 1])[:, None])

    def calibrated(s):
        s.calibrate(x, mask=attention)
        return s

    return {
        "topk_mask": lambda: asp.topk_mask(w, 0.5, magnitude=True).num_pruned,
        "nm_mask": lambda: asp.nm_mask(w, 2, 4, magnitude=True).satisfies(),
        "StructuredPruning": lambda: asp.StructuredPruning(asp.SparsityPattern.rows()).prune(w, 0.25),
        **{f"compress {f}": (lambda f=f: asp.compress(w24, f, **({"block": (2, 2)} if f == "bsr" else {})).to_dense())
           for f in ["coo", "csr", "csc", "bsr", "ell", "dia", "2:4", "bitmask"]},
        "to_cutlass": lambda: asp.from_cutlass(*asp.to_cutlass(w24.astype(jnp.float16))),
        "global_mask": lambda: asp.global_mask({"a": w, "b": w24}, 0.5, magnitude=True, max_sparsity=0.9),
        "prune_model": lambda: str(asp.prune_model({"a": w, "b": w24}, 0.5)[1].report),
        "WandaPruning": lambda: calibrated(asp.WandaPruning()).prune(w, 0.5),
        "SparseGPTPruning": lambda: calibrated(asp.SparseGPTPruning(asp.SparsityPattern.two_four())).prune(w),
    }


JAX_CALLS = ["topk_mask", "nm_mask", "StructuredPruning", "compress coo", "compress csr", "compress csc",
             "compress bsr", "compress ell", "compress dia", "compress 2:4", "compress bitmask", "to_cutlass",
             "global_mask", "prune_model", "WandaPruning", "SparseGPTPruning"]


@pytest.mark.parametrize("call", JAX_CALLS)
def test_jax_without_x64_warns_nothing(jax_x32, call) -> None:
    """Every call asked for int64 (JAX warned twice, "Explicitly requested dtype int64 ... will be
    truncated"): counts and positions take the library's own integers now."""
    import warnings

    calls = _jax_calls(jax_x32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        calls[call]()


def test_jax_without_x64_gives_the_numpy_results(jax_x32) -> None:
    """int32 magnitudes, |INT32_MIN| included, rank as on NumPy (abs in int32 would wrap);
    compress round-trips."""
    import warnings

    v = np.array([[np.iinfo(np.int32).min, 3, -2, 7], [1, -1, 0, 5]], np.int32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = asp.topk_mask(jax_x32.asarray(v), 4, magnitude=True).mask
        for fmt in ("csr", "ell", "dia"):
            back = asp.compress(jax_x32.asarray(v), fmt).to_dense()
            np.testing.assert_array_equal(np.asarray(back), v)
    np.testing.assert_array_equal(np.asarray(got), asp.topk_mask(v, 4, magnitude=True).mask)


def test_jax_without_x64_refuses_what_needs_64_bit_integers(jax_x32, monkeypatch) -> None:
    """Sizes beyond int32 need int64, which JAX lacks without x64: a clear refusal, not a
    silent truncation."""
    from arraysparse.formats import base

    x = jax_x32.asarray(np.eye(6, 8, dtype=np.float32))
    with pytest.raises(ValueError, match=r"jax arrays on .* have no int64 here \(for JAX: jax_enable_x64 is off\), "
                                         r"and 3000000000 items need 64-bit"):
        _compat.int_dtype(jax_x32, x, 3_000_000_000)
    assert _compat.int_dtype(jax_x32, x, 2**31 - 1) == jax_x32.int32
    monkeypatch.setattr(base, "INDEX32_LIMIT", 5)  # as if the matrix were beyond int32 indices
    with pytest.raises(ValueError, match="jax_enable_x64 is off"):
        asp.compress(x, "csr")


def test_int_dtype_is_int64_where_the_library_has_it() -> None:
    x = np.zeros(3)
    assert _compat.int_dtype(np, x, 2**40) == np.int64
    strict = pytest.importorskip("array_api_strict")
    assert _compat.int_dtype(strict, strict.zeros(3), 2**40) == strict.int64
