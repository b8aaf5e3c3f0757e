"""The backend seam: who may import the kernels, which backend runs what, and the bridge's promises."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from arraysparse import _backends
from arraysparse._backends import bridge

PACKAGE = Path(_backends.__file__).resolve().parents[1]
SEAM = "arraysparse._backends"
KERNELS = "arraysparse._kernels.cpu"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[ast.AST, str, list[str], bool]]:
    """``(node, module, imported names, inside a function)`` of every import in ``path``,
    relative imports made absolute."""
    tree = ast.parse(path.read_text(), str(path))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    in_function = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            in_function.update(id(n) for n in ast.walk(node) if n is not node)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append((node, alias.name, [], id(node) in in_function))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.append((node, base, [a.name for a in node.names], id(node) in in_function))
    return found


def modules(where: str = "") -> list[Path]:
    return sorted((PACKAGE / where).rglob("*.py"))


def inside(path: Path, *packages: str) -> bool:
    name = module_name(path)
    return any(name == p or name.startswith(p + ".") for p in packages)


def test_only_the_seam_imports_the_kernels():
    """No module outside arraysparse._backends (the kernels aside) imports a kernel module."""
    offenders = []
    for path in modules():
        if inside(path, SEAM, "arraysparse._kernels"):
            continue
        for node, module, names, _ in imports(path):
            targets = [module, *(f"{module}.{n}" for n in names)]
            if any(t == KERNELS or t.startswith(KERNELS + ".") for t in targets):
                offenders.append(f"{module_name(path)}:{node.lineno}")
    assert offenders == []
    assert any(module == KERNELS or module.startswith(KERNELS + ".")
               for path in modules("_backends") for _, module, _, _ in imports(path))


def test_callers_use_the_seam_and_none_of_its_private_helpers():
    """Outside the seam, only the package itself is imported (not its modules), and nothing
    private of it is imported or read."""
    offenders = []
    for path in modules():
        if inside(path, SEAM):
            continue
        for node, module, names, _ in imports(path):
            if module.startswith(SEAM + "."):
                offenders.append(f"{module_name(path)}:{node.lineno} imports {module}")
            if module == SEAM and any(n.startswith("_") for n in names):
                offenders.append(f"{module_name(path)}:{node.lineno} imports {names}")
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id == "_backends" and node.attr.startswith("_")):
                offenders.append(f"{module_name(path)}:{node.lineno} reads _backends.{node.attr}")
    assert offenders == []


def test_model_and_strategies_import_each_other_at_module_level_only():
    """The model's pieces and the strategies never import one another inside a function
    (the way an import cycle is usually papered over)."""
    linked = ("arraysparse.model", "arraysparse._model", "arraysparse.strategies")
    offenders = []
    for path in [PACKAGE / "model.py", *modules("_model"), *modules("strategies")]:
        for node, module, names, in_function in imports(path):
            targets = [module, *(f"{module}.{n}" for n in names)]
            if in_function and any(t == p or t.startswith(p + ".") for t in targets for p in linked):
                offenders.append(f"{module_name(path)}:{node.lineno} imports {module}")
    assert offenders == []


# -- which backend runs a job ---------------------------------------------------------------
def test_choose_numpy_and_cpu_torch_run_on_the_host():
    assert _backends._choose(np.zeros(3)) == "host"
    readonly = np.zeros(3)
    readonly.flags.writeable = False
    assert _backends._choose(readonly) == "host"
    assert _backends._choose(np.zeros((2, 2)), np.ones(2)) == "host"
    torch = pytest.importorskip("torch")
    assert _backends._choose(torch.zeros(3)) == "host"
    assert _backends._choose(torch.zeros(3, dtype=torch.bfloat16)) == "host"
    assert _backends._choose(torch.zeros(4, 4).t()) == "host"  # strided views too
    assert _backends._choose(torch.zeros(3, 3).to_sparse()) == "reference"  # not strided


def test_choose_jax_and_array_api_strict_run_the_reference():
    strict = pytest.importorskip("array_api_strict")
    assert _backends._choose(strict.zeros(3)) == "reference"
    jnp = pytest.importorskip("jax.numpy")
    assert _backends._choose(jnp.zeros(3)) == "reference"


def test_the_cuda_slot_claims_device_arrays_and_the_dask_slot_dask_arrays():
    assert _backends._SLOTS["cuda"] is bridge.is_device  # filled: it claims device arrays only
    assert bridge.device_view(np.zeros(3)) is None
    assert not bridge.is_device(np.zeros(3))
    assert not _backends._SLOTS["dask"](np.zeros(3))  # the Dask backend is tested in test_dask.py


# -- the bridge ---------------------------------------------------------------------------
def test_bridge_views_and_wraps_without_copies():
    torch = pytest.importorskip("torch")
    t = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    h = bridge.host_view(t)
    assert h.__array_interface__["data"][0] == t.data_ptr()
    back = bridge.wrap(h, t)
    assert isinstance(back, torch.Tensor) and back.data_ptr() == t.data_ptr()
    a = np.arange(6.0)
    assert bridge.wrap(a, a) is a
    assert bridge.host_view(a) is a


def test_bridge_carries_bfloat16_as_bits_and_widens_it_to_rank():
    torch = pytest.importorskip("torch")
    t = torch.tensor([1.5, -0.0, float("nan"), 3.0e38], dtype=torch.bfloat16)
    bits = bridge.host_view(t)
    assert bits.dtype == np.uint16
    assert bits.__array_interface__["data"][0] == t.data_ptr()
    np.testing.assert_array_equal(bits, t.view(torch.int16).numpy().view(np.uint16))
    wide = bridge.host_view(t, widen=True)
    assert wide.dtype == np.float32
    np.testing.assert_array_equal(wide, t.float().numpy())
    back = bridge.wrap(bits, t, torch.bfloat16)
    assert back.dtype == torch.bfloat16
    assert torch.equal(back.view(torch.int16), t.view(torch.int16))
    h = bridge.Host.of(t)
    assert h.is_float and h.values.dtype == np.uint16
    assert h.wrap_values(h.values).dtype == torch.bfloat16


def test_bridge_refuses_device_arrays_and_complex128_exact_views():
    strict = pytest.importorskip("array_api_strict")
    assert bridge.host_view(strict.zeros(3)) is None
    assert bridge.Host.of(np.zeros(3, np.complex128)) is None
    assert bridge.Host.of(np.zeros(3, np.complex64)) is not None
    swapped = np.arange(4, dtype=">f4")
    view = bridge.host_view(swapped)
    assert view.dtype.isnative
    np.testing.assert_array_equal(view, swapped)
