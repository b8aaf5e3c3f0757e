"""Backend detection: which library and device an array belongs to.

This is the only module that imports ``array_api_compat``. Everything else asks
it which namespace an array belongs to, on which device, and whether it can be
written in place. It also recognises the NumPy dtypes of ``ml_dtypes``
(bfloat16, the float8 family, ...: :func:`ml_dtype`), which NumPy's own
``isdtype`` refuses (:func:`isdtype` answers for them). The bridge between
arrays and the kernels (views in, results out) is
:mod:`arraysparse._backends.bridge`.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import array_api_compat as _aac
import numpy as np

__all__ = [
    "array_namespace",
    "backend_name",
    "check_array",
    "count_true",
    "device",
    "ensure_array",
    "int_dtype",
    "is_writable",
    "isdtype",
    "ml_dtype",
    "optional_import",
    "same_device",
]

Array = Any


_UNSIGNED = {1: np.uint8, 2: np.uint16}

#: The optional libraries: their name as people know it and the extras (pyproject.toml) that install them.
OPTIONAL: dict[str, tuple[str, tuple[str, ...]]] = {
    "scipy": ("SciPy", ("scipy",)),
    "torch": ("PyTorch", ("torch",)),
    "cupy": ("CuPy", ("cupy-cuda12", "cupy-cuda13")),
    "cupyx": ("CuPy", ("cupy-cuda12", "cupy-cuda13")),
    "jax": ("JAX", ("jax",)),
    "array_api_strict": ("array-api-strict", ("array-api-strict",)),
    "tqdm": ("tqdm", ("cli",)),
    "matplotlib": ("matplotlib", ("cli",)),
}


def optional_import(module: str, *, purpose: str) -> ModuleType:
    """Import ``module`` of an optional library; if the library is missing, say which extra installs it.

    The one door for every optional import in the package. ``purpose`` names
    what needs it (``"to_scipy()"``); the ``ModuleNotFoundError`` (a subclass of
    ``ImportError``, with ``.name`` set to the library) reads e.g.
    ``to_scipy() needs SciPy: pip install 'arraysparse[scipy]'``. Errors from
    inside an installed library (a dependency of it missing) pass unchanged.
    """
    top = module.split(".")[0]
    if top not in OPTIONAL:
        msg = f"module={module!r} is not one of the optional libraries {sorted(OPTIONAL)}"
        raise ValueError(msg)
    try:
        importlib.import_module(top)  # first: a hidden top level does not hide its loaded submodules
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name is None or not (module == e.name or module.startswith(e.name + ".")):
            raise
        label, extras = OPTIONAL[top]
        install = " or ".join(f"pip install 'arraysparse[{x}]'" for x in extras)
        msg = f"{purpose} needs {label}: {install}"
        raise ModuleNotFoundError(msg, name=top) from None


@dataclass(frozen=True)
class MlDtype:
    """What the host needs to know about a NumPy dtype of ``ml_dtypes`` (bfloat16, float8, ...).

    ``wide`` is the NumPy dtype the values widen to exactly (float32 for the
    floats, int8 / uint8 for the integers), for ranking and arithmetic;
    ``bits`` the unsigned integer of the item's width, for moving values bit
    for bit. ``bits & nonzero_bits != 0`` exactly when a value is non-zero:
    the sign bit is left out where the type has a -0.0 (bfloat16, float8_e4m3fn,
    float8_e5m2, ...), kept where it has none (the ``fnuz`` types, whose
    0x80 is their NaN). ``nonzero_bits`` is None for a type without a zero
    (float8_e8m0fnu), which nothing can prune.
    """

    dtype: np.dtype
    is_float: bool
    wide: np.dtype
    bits: np.dtype
    nonzero_bits: int | None

    @property
    def name(self) -> str:
        return self.dtype.name


_ML_DTYPES: dict[np.dtype, MlDtype | None] = {}


def ml_dtype(dtype: Any) -> MlDtype | None:
    """The :class:`MlDtype` of an ``ml_dtypes`` NumPy dtype (as JAX and NumPy hold
    bfloat16 and float8), None for every other dtype (torch's included).

    Recognised by its scalar type's module, so ``ml_dtypes`` is never imported
    here: an array of its dtypes exists only once it is loaded.
    """
    if not isinstance(dtype, np.dtype) or dtype.kind not in "Vf":  # float8_e5m2 says "f"
        return None
    if dtype in _ML_DTYPES:
        return _ML_DTYPES[dtype]
    module = getattr(dtype.type, "__module__", "") or ""
    info = None
    if module.split(".")[0] == "ml_dtypes" and dtype.itemsize in _UNSIGNED:
        info = _describe_ml_dtype(dtype)
    _ML_DTYPES[dtype] = info
    return info


def _describe_ml_dtype(dtype: np.dtype) -> MlDtype:
    bits = np.dtype(_UNSIGNED[dtype.itemsize])
    all_bits = (1 << (8 * dtype.itemsize)) - 1
    if not dtype.name.startswith(("float", "bfloat")):  # int1 .. int4, uint1 .. uint4
        signed = not dtype.name.startswith("uint")
        return MlDtype(dtype, False, np.dtype(np.int8 if signed else np.uint8), bits, all_bits)
    # the zero test from the type itself: +0.0 must be all zero bits and -0.0 a zero
    # too, either the same bits (fnuz) or one more bit, the sign (float8_e8m0fnu has no
    # zero: 0.0 becomes its NaN)
    zeros = np.array([0.0, -0.0]).astype(dtype)
    plus, minus = (int(b) for b in zeros.view(bits))
    has_zero = plus == 0 and minus & (minus - 1) == 0 and not zeros.astype(np.float32).any()
    nonzero = all_bits & ~minus if has_zero else None
    return MlDtype(dtype, True, np.dtype(np.float32), bits, nonzero)


def isdtype(xp: ModuleType, dtype: Any, kind: Any) -> bool:
    """``xp.isdtype(dtype, kind)`` that also answers for the ``ml_dtypes`` dtypes.

    NumPy's ``isdtype`` raises ``TypeError`` for them; here bfloat16 and the
    float8 types are "real floating" (as in JAX), int4 and its kin "signed
    integer" / "unsigned integer".
    """
    info = ml_dtype(dtype)
    if info is None:
        return bool(xp.isdtype(dtype, kind))
    if isinstance(kind, tuple):
        return any(isdtype(xp, dtype, k) for k in kind)
    if not isinstance(kind, str):
        return dtype == kind
    if info.is_float:
        return kind in ("real floating", "numeric")
    signed = info.wide.kind == "i"
    return kind in ("integral", "numeric", "signed integer" if signed else "unsigned integer")


def backend_name(x: Array) -> str:
    """Short name of the library that owns ``x`` (``"numpy"``, ``"torch"``, ...)."""
    if _aac.is_numpy_array(x):
        return "numpy"
    if _aac.is_torch_array(x):
        return "torch"
    if _aac.is_cupy_array(x):
        return "cupy"
    if _aac.is_jax_array(x):
        return "jax"
    return type(x).__module__.split(".")[0]


def array_namespace(**arrays: Array) -> ModuleType:
    """Namespace shared by the named arrays (at least one).

    Raises ``TypeError`` naming the argument when an input is not an array
    (``None`` included: an optional argument left out is the caller's to
    skip, as :func:`arraysparse.strategies.base.check_gradients` does), is a
    Dask array of other than NumPy chunks, when the arrays come from
    different libraries, and ``ValueError`` when they sit on different devices.
    """
    if not arrays:
        msg = "array_namespace() needs at least one named array"
        raise TypeError(msg)
    given = dict(arrays)
    for name, a in given.items():
        check_array(a, name)
    names = list(given)
    first = names[0]
    for other in names[1:]:
        b0, b1 = backend_name(given[first]), backend_name(given[other])
        if b0 != b1:
            msg = (
                f"{first} and {other} come from different array libraries "
                f"({b0} and {b1}); convert one of them first"
            )
            raise TypeError(msg)
        if not same_device(given[first], given[other]):
            msg = (
                f"{first} and {other} are on different devices "
                f"({device(given[first])} and {device(given[other])})"
            )
            raise ValueError(msg)
    return _aac.array_namespace(*given.values())


def check_array(x: Any, name: str, *, importers: bool = True) -> None:
    """``TypeError`` naming ``name`` unless ``x`` is a dense array of a supported library.

    Sparse objects (scipy.sparse, torch sparse tensors, cupyx.scipy.sparse,
    JAX's BCOO) are refused with the way in (with ``importers``, for inputs):
    ``from_scipy`` / ``from_torch`` / ``from_cupyx`` for a compressed result,
    or their dense array.
    """
    if x is None:
        msg = f"{name} must be an array, got None"
        raise TypeError(msg)
    sparse = _sparse_kind(x, name)
    if sparse is not None:
        what, bring, dense = sparse
        if not importers:
            msg = f"{name} must be a dense array, got {what}"
        elif bring is None:
            msg = f"{name} is {what}, not a dense array: pass the dense {dense}"
        else:
            msg = (
                f"{name} is {what}, not a dense array: use arraysparse.{bring}({name}) to bring it in "
                f"as a compressed result, or pass the dense {dense}"
            )
        raise TypeError(msg)
    if isinstance(x, (bool, int, float, complex)) or not _aac.is_array_api_obj(x):
        msg = f"{name} must be an array, got {type(x).__name__}"
        raise TypeError(msg)
    if _aac.is_dask_array(x) and not isinstance(getattr(x, "_meta", None), np.ndarray):
        meta = type(getattr(x, "_meta", None))
        msg = (
            f"{name} is a Dask array of {meta.__module__}.{meta.__name__} chunks; "
            "arraysparse runs Dask arrays of NumPy chunks"
        )
        raise TypeError(msg)


def _sparse_kind(x: Any, name: str) -> tuple[str, str | None, str] | None:
    """``(what x is, its importer or None, its dense array)`` for a sparse object of a known
    library; None for anything else."""
    kind = type(x).__name__
    module = type(x).__module__ or ""
    if module.startswith("scipy.sparse"):
        return f"a scipy.sparse {kind}", "from_scipy", f"{name}.toarray()"
    if module.startswith("cupyx.scipy.sparse"):
        return f"a cupyx.scipy.sparse {kind}", "from_cupyx", f"{name}.toarray()"
    if module.startswith("jax.experimental.sparse"):
        return f"a JAX sparse {kind}", None, f"{name}.todense()"
    if _aac.is_torch_array(x) and (str(x.layout) != "torch.strided" or kind.startswith("SparseSemiStructured")):
        layout = "semi-structured (2:4)" if kind.startswith("SparseSemiStructured") else str(x.layout)
        return f"a torch sparse tensor (layout {layout})", "from_torch", f"{name}.to_dense()"
    return None


_SIGNED: dict[tuple[str, str], tuple[bool, Any]] = {}


def int_dtype(xp: ModuleType, like: Array, *extents: int) -> Any:
    """The signed integer dtype for counts and flat positions on ``like``'s library and device.

    int64 where the library has it, else its default integer: JAX without
    ``jax_enable_x64`` has no int64 (asking for it warns and truncates to
    int32), so it gets int32. ``ValueError`` when an extent (a size, count or
    position the integers must hold) does not fit that dtype.
    """
    if backend_name(like) == "jax":
        jax = optional_import("jax", purpose="reading a JAX array")
        wide, dt = bool(jax.config.jax_enable_x64), xp.int32
    else:  # the other libraries answer once per device
        key = (xp.__name__, str(device(like)))
        if key not in _SIGNED:
            try:
                info = xp.__array_namespace_info__()
                has = "int64" in info.dtypes(device=device(like), kind="signed integer")
                _SIGNED[key] = (has, info.default_dtypes(device=device(like))["integral"])
            except Exception:  # noqa: BLE001 - an old or partial namespace: assume the standard's int64
                _SIGNED[key] = (True, None)
        wide, dt = _SIGNED[key]
    if wide:
        return xp.int64
    if max(extents, default=0) > xp.iinfo(dt).max:
        msg = (
            f"{backend_name(like)} arrays on {device(like)} have no int64 here (for JAX: jax_enable_x64 "
            f"is off), and {max(extents)} items need 64-bit counts or positions; enable it with "
            "jax.config.update('jax_enable_x64', True), or split the array"
        )
        raise ValueError(msg)
    return dt


def count_true(xp: ModuleType, flags: Array) -> int:
    """The number of ``True`` values of a boolean array, in the library's own integers."""
    size = math.prod(flags.shape)
    if size == 0:
        return 0
    int_dtype(xp, flags, size)  # refuses sizes its integers cannot count
    return int(xp.count_nonzero(flags))


def device(x: Array) -> Any:
    """Device of ``x`` in its own library's terms."""
    return _aac.device(x)


def same_device(a: Array, b: Array) -> bool:
    """Whether two arrays of one library live on the same device."""
    return str(_aac.device(a)) == str(_aac.device(b))


def is_numpy(x: Array) -> bool:
    """Whether ``x`` is a NumPy array."""
    return bool(_aac.is_numpy_array(x))


def is_dask(x: Array) -> bool:
    """Whether ``x`` is a Dask array (checked without importing Dask)."""
    return bool(_aac.is_dask_array(x))


def is_torch_cpu_strided(x: Array) -> bool:
    """Whether ``x`` is a dense torch tensor on the CPU (NumPy can view its memory)."""
    if not _aac.is_torch_array(x):
        return False
    torch = optional_import("torch", purpose="reading a torch tensor")
    return x.device.type == "cpu" and x.layout == torch.strided


def ensure_array(x: Array) -> Array:
    """NumPy answers some operations on 0-d arrays with a scalar: make it an array again."""
    return np.asarray(x) if isinstance(x, np.generic) else x


def is_writable(x: Array) -> bool:
    """Whether ``x`` can be written in place."""
    if _aac.is_numpy_array(x):
        return bool(x.flags.writeable)
    if _aac.is_jax_array(x):
        return False
    if _aac.is_torch_array(x):
        return True
    return hasattr(x, "__setitem__")


def nonzero_mask(xp: ModuleType, x: Array) -> Array:
    """Boolean ``x != 0`` for every dtype (bool included), subnormal floats counted as non-zero.

    XLA on the CPU runs with denormals-are-zero, so in JAX ``x != 0`` is False
    for a subnormal float; there the test runs on the value's bits instead
    (sign bit cleared: -0.0 stays zero, as in scipy.sparse). Other libraries
    compare exactly.
    """
    if x.dtype == xp.bool:
        return x
    if backend_name(x) == "jax":
        if xp.isdtype(x.dtype, "complex floating"):
            return nonzero_mask(xp, xp.real(x)) | nonzero_mask(xp, xp.imag(x))
        if xp.isdtype(x.dtype, "real floating"):
            return float_order_keys(xp, x, magnitude=True) != 0  # the magnitude's bits
    return x != 0


def float_order_keys(xp: ModuleType, x: Array, magnitude: bool) -> Array:
    """Unsigned integer keys of a JAX float array whose order is the values' (or, with
    ``magnitude``, their absolute values') order, read off the bits.

    XLA's CPU sort and compares treat subnormals as zero, so ranking the values
    there would tie a subnormal with 0.0 and break the tie by position, unlike
    every other backend; the keys rank exactly. -0.0 and +0.0 share a key, as
    in the CPU kernels. Keys of one dtype only compare with each other.
    """
    jax = optional_import("jax", purpose="reading a JAX array")
    width = xp.finfo(x.dtype).bits
    unsigned = getattr(xp, f"uint{width}")
    bits = jax.lax.bitcast_convert_type(x, unsigned)
    sign = xp.asarray(1 << (width - 1), dtype=unsigned)  # typed: 2**31 overflows JAX's weak int32
    magnitude_bits = bits & (sign - xp.asarray(1, dtype=unsigned))
    if magnitude:
        return magnitude_bits
    return xp.where(bits >= sign, sign - magnitude_bits, sign + magnitude_bits)
