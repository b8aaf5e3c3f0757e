"""Dtypes on disk: names, safetensors tags, and the way between arrays and their bytes.

Every dtype has a *canonical name*, NumPy's or ``ml_dtypes``' (``"float32"``,
``"bfloat16"``, ``"float8_e4m3fn"``, ``"complex128"``): the metadata of the
files and :class:`~arraysparse.io.TensorInfo` use it, whatever library wrote
or will read the array.

Inside this package an array travels as its *bits*: a NumPy array (native
byte order, any strides) whose items are the array's bytes. Standard NumPy
dtypes are their own bits; the ``ml_dtypes`` types (and torch's bfloat16 and
float8) travel as the unsigned integer of their width, so no library needs to
know them to copy them. :func:`host_bits` takes any supported array to its
bits, :func:`from_bits` brings bits back as a NumPy, ml_dtypes or torch array.

safetensors has a tag for most of these dtypes (:data:`TAGS`). The others are
*carried*: stored under the tag of their bits (``U8``, ``U16``, ...) or, for
complex128, as ``F64`` with a trailing axis of 2 (real, imaginary), and
named in the file's metadata (see :mod:`arraysparse.io._safetensors`), so any
reader opens the file and this package gives the dtype back.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import numpy as np

from .._compat import backend_name, is_numpy, is_torch_cpu_strided, ml_dtype, optional_import

Array = Any

#: safetensors dtype tag -> canonical name (the tags this package reads and writes).
TAGS: dict[str, str] = {
    "BOOL": "bool",
    "U8": "uint8",
    "I8": "int8",
    "U16": "uint16",
    "I16": "int16",
    "F16": "float16",
    "BF16": "bfloat16",
    "U32": "uint32",
    "I32": "int32",
    "F32": "float32",
    "C64": "complex64",
    "U64": "uint64",
    "I64": "int64",
    "F64": "float64",
    "F8_E4M3": "float8_e4m3fn",
    "F8_E5M2": "float8_e5m2",
    "F8_E4M3FNUZ": "float8_e4m3fnuz",
    "F8_E5M2FNUZ": "float8_e5m2fnuz",
    "F8_E8M0": "float8_e8m0fnu",
}
#: Tags safetensors knows whose items are not whole bytes: refused by name.
PACKED_TAGS = {"F4": "4-bit floats, two a byte", "F6_E2M3": "6-bit floats", "F6_E3M2": "6-bit floats"}
#: Canonical name -> tag written. float8_e8m0fnu is carried (as U8): torch's safetensors
#: loader has no F8_E8M0, and a file must open everywhere.
WRITE_TAGS: dict[str, str] = {name: tag for tag, name in TAGS.items() if tag != "F8_E8M0"}
#: Bytes an item of each tag takes.
TAG_ITEMSIZE: dict[str, int] = {
    "BOOL": 1, "U8": 1, "I8": 1, "U16": 2, "I16": 2, "F16": 2, "BF16": 2, "U32": 4, "I32": 4,
    "F32": 4, "C64": 8, "U64": 8, "I64": 8, "F64": 8,
    "F8_E4M3": 1, "F8_E5M2": 1, "F8_E4M3FNUZ": 1, "F8_E5M2FNUZ": 1, "F8_E8M0": 1,
}

_STANDARD = (
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64", "complex64", "complex128",
)
_UNSIGNED = {1: np.dtype(np.uint8), 2: np.dtype(np.uint16), 4: np.dtype(np.uint32), 8: np.dtype(np.uint64)}
_SIGNED = {1: "int8", 2: "int16", 4: "int32", 8: "int64"}
# torch dtypes by canonical name (looked up with getattr: old torch lacks some)
_TORCH = {
    "bool": "bool", "int8": "int8", "int16": "int16", "int32": "int32", "int64": "int64",
    "uint8": "uint8", "uint16": "uint16", "uint32": "uint32", "uint64": "uint64",
    "float16": "float16", "bfloat16": "bfloat16", "float32": "float32", "float64": "float64",
    "complex64": "complex64", "complex128": "complex128",
    "float8_e4m3fn": "float8_e4m3fn", "float8_e5m2": "float8_e5m2",
    "float8_e4m3fnuz": "float8_e4m3fnuz", "float8_e5m2fnuz": "float8_e5m2fnuz",
    "float8_e8m0fnu": "float8_e8m0fnu",
}


def is_standard(name: str) -> bool:
    """Whether ``name`` is a dtype of NumPy itself (its bits are arrays of that dtype)."""
    return name in _STANDARD


def itemsize(name: str) -> int | None:
    """Bytes of one item of the canonical dtype ``name``; None for a name this package does not know."""
    if is_standard(name):
        return np.dtype(name).itemsize
    if name == "bfloat16" or name.startswith(("float8_", "float6_", "float4_")) or name in (
        "int1", "int2", "int4", "uint1", "uint2", "uint4"
    ):
        return 2 if name == "bfloat16" else 1
    if name in ("complex32", "bcomplex32"):
        return 4
    return None


def bits_dtype(name: str) -> np.dtype:
    """The NumPy dtype of the bits of canonical dtype ``name`` (native byte order)."""
    return np.dtype(name) if is_standard(name) else _UNSIGNED[itemsize(name)]


def numpy_dtype(name: str, *, what: str) -> np.dtype:
    """The NumPy dtype of canonical ``name``; ml_dtypes' for its types (TypeError when it is missing)."""
    if is_standard(name):
        return np.dtype(name)
    try:
        ml_dtypes = importlib.import_module("ml_dtypes")
    except ImportError:
        msg = (
            f"{what} has dtype {name}, which NumPy has through the ml_dtypes package only; "
            "install ml_dtypes (pip install ml_dtypes) or read it with like='torch'"
        )
        raise TypeError(msg) from None
    dtype = getattr(ml_dtypes, name, None)
    if dtype is None:
        msg = f"{what} has dtype {name}, which this ml_dtypes ({ml_dtypes.__version__}) lacks; upgrade ml_dtypes"
        raise TypeError(msg)
    return np.dtype(dtype)


def torch_dtype(name: str, *, what: str) -> Any:
    """The torch dtype of canonical ``name`` (TypeError when torch has none)."""
    torch = optional_import("torch", purpose="like='torch'")

    dtype = getattr(torch, _TORCH.get(name, ""), None) if name in _TORCH else None
    if not isinstance(dtype, torch.dtype):
        msg = (
            f"{what} has dtype {name}, which this torch ({torch.__version__}) has no dtype for; "
            "read it with like='numpy'"
        )
        raise TypeError(msg)
    return dtype


def name_of(dtype: Any, *, what: str) -> str:
    """The canonical name of a NumPy, ml_dtypes or torch ``dtype``."""
    if isinstance(dtype, np.dtype) or (isinstance(dtype, type) and issubclass(dtype, np.generic)):
        dt = np.dtype(dtype)
        ml = ml_dtype(dt)
        if ml is not None:
            return ml.name
        name = dt.newbyteorder("=").name if dt.byteorder not in "=|" else dt.name
        if name in _STANDARD:
            return name
        msg = (
            f"{what} has dtype {dt}, which cannot be stored: arrays of bool, integers, floats "
            "(bfloat16 and float8 included) and complex numbers only"
        )
        raise TypeError(msg)
    text = str(dtype)
    if text.startswith("torch."):
        name = text.removeprefix("torch.")
        if name in _TORCH:
            return name
        msg = f"{what} has dtype {dtype}, which cannot be stored (no NumPy or ml_dtypes equivalent)"
        raise TypeError(msg)
    msg = f"{what} has dtype {dtype!r}, which is not a NumPy, ml_dtypes or torch dtype"
    raise TypeError(msg)


def host_bits(x: Array, *, what: str) -> tuple[str, np.ndarray]:
    """``(canonical name, bits)`` of a host array: NumPy (ml_dtypes included), dense CPU torch, CPU JAX.

    ``bits`` shares ``x``'s memory where it can (a byte-swapped NumPy array is
    the one copy). GPU arrays are refused: saving one is a device-to-host copy
    the caller should make, and see.
    """
    if is_numpy(x) or isinstance(x, np.generic):
        a = np.asarray(x)
        name = name_of(a.dtype, what=what)
        if not is_standard(name):
            return name, a.view(bits_dtype(name))
        return name, a if a.dtype.isnative else a.astype(a.dtype.newbyteorder("="))
    if is_torch_cpu_strided(x):
        return _torch_bits(x, what)
    lib = backend_name(x)
    if lib == "torch":
        msg = (
            f"{what} is a torch tensor on {x.device} with layout {x.layout}; only dense CPU tensors are "
            "written (call .cpu() / .to_dense() first: a device-to-host copy is yours to make)"
        )
        raise TypeError(msg)
    if lib == "jax":
        platforms = {d.platform for d in x.devices()}
        if platforms != {"cpu"}:
            msg = f"{what} is a JAX array on {sorted(platforms)}; move it to the CPU first (jax.device_get)"
            raise TypeError(msg)
        return host_bits(np.asarray(x), what=what)
    if lib == "cupy":
        msg = f"{what} is a CuPy array on the GPU; copy it to the host first (x.get())"
        raise TypeError(msg)
    if hasattr(x, "__dlpack__") and hasattr(x, "shape") and hasattr(x, "dtype"):
        try:
            a = np.from_dlpack(x)
        except (TypeError, RuntimeError, BufferError) as e:
            msg = f"{what} ({lib} array) cannot be read on the host: {e}"
            raise TypeError(msg) from None
        return host_bits(a, what=what)
    msg = f"{what} must be an array (NumPy, torch CPU, JAX CPU, ...), got {type(x).__name__}"
    raise TypeError(msg)


def _torch_bits(x: Any, what: str) -> tuple[str, np.ndarray]:
    torch = optional_import("torch", purpose="reading a torch tensor")

    t = x.detach()
    if t.is_conj():
        t = t.resolve_conj()
    if t.is_neg():
        t = t.resolve_neg()
    name = name_of(t.dtype, what=what)
    if is_standard(name) and not name.startswith("uint") or name == "uint8":
        return name, t.numpy()
    # bfloat16, float8 and the wide unsigned types: the bits as a signed integer tensor
    # (NumPy views those everywhere), then reinterpreted
    size = t.element_size()
    view = t.view(getattr(torch, _SIGNED[size])).numpy()
    return name, view.view(bits_dtype(name))


def from_bits(bits: np.ndarray, name: str, like: str, *, what: str) -> Array:
    """The array of canonical dtype ``name`` whose bits are ``bits``: NumPy (``like="numpy"``) or torch."""
    if like == "numpy":
        return bits if is_standard(name) else bits.view(numpy_dtype(name, what=what))
    torch = optional_import("torch", purpose="like='torch'")

    dtype = torch_dtype(name, what=what)
    a = bits if bits.dtype.isnative else bits.astype(bits.dtype.newbyteorder("="))
    if not a.flags.writeable:
        a = a.copy()  # torch has no read-only tensors
    if is_standard(name) and not name.startswith("uint") or name == "uint8":
        return torch.from_numpy(a)
    signed = a.view(np.dtype(_SIGNED[a.dtype.itemsize]))
    return torch.from_numpy(signed).view(dtype)


def check_like(like: Any) -> str:
    """``like`` as ``"numpy"`` or ``"torch"`` (ValueError otherwise; ModuleNotFoundError, naming the
    extra, without torch)."""
    if like not in ("numpy", "torch"):
        msg = f"like={like!r} must be 'numpy' or 'torch'"
        raise ValueError(msg)
    if like == "torch":
        optional_import("torch", purpose="like='torch'")
    return like


def is_little(dtype: np.dtype) -> bool:
    """Whether items of ``dtype`` are stored little-endian (single bytes always are)."""
    order = dtype.byteorder
    return dtype.itemsize == 1 or order in "<|" or (order == "=" and sys.byteorder == "little")


def little_endian(bits: np.ndarray) -> np.ndarray:
    """``bits`` with its items little-endian (a copy only where they are not)."""
    return bits if is_little(bits.dtype) else bits.astype(bits.dtype.newbyteorder("<"))
