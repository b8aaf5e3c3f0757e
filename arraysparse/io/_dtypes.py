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
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._compat import backend_name, device, is_dask, is_numpy, is_torch_cpu_strided, ml_dtype, optional_import

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
    # other libraries (array-api-strict, ...) print their dtypes as "<library>.<name>"
    name = text.rsplit(".", 1)[-1]
    if "." in text and name in _TORCH:
        return name
    msg = f"{what} has dtype {dtype!r}, which is not a dtype arraysparse can store (bool, integers, floats, complex)"
    raise TypeError(msg)


def host_bits(x: Array, *, what: str) -> tuple[str, np.ndarray]:
    """``(canonical name, bits)`` of an array of any supported library, on the host.

    Host arrays (NumPy, dense CPU torch, CPU JAX, array-api-strict, any
    DLPack producer on the CPU) are not copied: ``bits`` shares ``x``'s
    memory (a byte-swapped NumPy array is the one copy). Device arrays
    (CuPy, CUDA torch, JAX on a GPU) are copied to the host here, explicitly:
    writing a file is the caller asking for the bytes. Dask arrays are
    refused (:func:`arraysparse.to_zarr` writes them band by band).
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
        torch = optional_import("torch", purpose="reading a torch tensor")
        if x.layout != torch.strided or x.device.type == "meta":
            msg = (
                f"{what} is a torch tensor on {x.device} with layout {x.layout}; only dense tensors with data "
                "are written (call .to_dense() first)"
            )
            raise TypeError(msg)
        return _torch_bits(x.detach().to("cpu"), what)  # device to host: the file asks for the bytes
    if lib == "jax":
        jax = optional_import("jax", purpose="reading a JAX array")
        platforms = {d.platform for d in x.devices()}
        return host_bits(np.asarray(x) if platforms == {"cpu"} else jax.device_get(x), what=what)
    if lib == "cupy":
        return host_bits(x.get(), what=what)  # device to host, explicitly
    if is_dask(x):
        msg = (
            f"{what} is a Dask array; save() and the checkpoint writers take arrays in memory. "
            "Write it band by band with arraysparse.to_zarr, or .compute() it first"
        )
        raise TypeError(msg)
    if hasattr(x, "__dlpack__") and hasattr(x, "shape") and hasattr(x, "dtype"):
        return host_bits(_from_dlpack(x, lib, what), what=what)
    msg = f"{what} must be an array (NumPy, torch, JAX, CuPy, array-api-strict, ...), got {type(x).__name__}"
    raise TypeError(msg)


def _from_dlpack(x: Any, lib: str, what: str) -> np.ndarray:
    """``x`` as a NumPy array through DLPack: shared memory on the CPU, a copy to the host otherwise."""
    try:
        return np.from_dlpack(x)
    except (TypeError, RuntimeError, BufferError, ValueError):
        pass
    try:  # NumPy 2.1+: the producer copies to the host (array API 2023.12)
        return np.from_dlpack(x, device="cpu", copy=None)
    except (TypeError, RuntimeError, BufferError, ValueError) as e:
        to_device = getattr(x, "to_device", None)
        cpu = getattr(sys.modules.get(lib), "Device", None)
        if to_device is not None and cpu is not None:  # array-api-strict's named devices
            try:
                return np.from_dlpack(to_device(cpu("CPU_DEVICE")))
            except Exception:  # noqa: BLE001 - the first error says more
                pass
        msg = f"{what} ({lib} array on {getattr(x, 'device', '?')}) cannot be read on the host: {e}"
        raise TypeError(msg) from None


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


#: The libraries ``like`` names.
LIKES = ("numpy", "torch", "jax", "cupy", "array_api_strict")


@dataclass(frozen=True)
class Like:
    """Where read arrays go: a library of :data:`LIKES` and a device of its own (None: its default)."""

    lib: str
    device: Any = None


def check_bool_bytes(bits: np.ndarray, *, what: str) -> None:
    """Refuse bool bytes other than 0 and 1 read from a file (corrupt or foreign): NumPy and torch would
    take them as bools whose ``~`` and ``==`` answer wrongly, corrupting masks built on them."""
    b = bits.view(np.uint8).reshape(-1)
    if b.size and int(b.max()) > 1:
        i = int(np.argmax(b > 1))
        msg = f"{what} has dtype bool but holds byte {int(b[i])} at flat index {i} (only 0 and 1 are bools)"
        raise ValueError(msg)


def from_bits(bits: np.ndarray, name: str, like: Like, *, what: str) -> Array:
    """The array of canonical dtype ``name`` whose bits are ``bits``, in ``like``'s library and device."""
    if like.lib == "numpy":
        return bits if is_standard(name) else bits.view(numpy_dtype(name, what=what))
    if like.lib == "torch":
        return to_device(_torch_from_bits(bits, name, what), like)
    a = from_bits(bits, name, Like("numpy"), what=what)
    if like.lib == "jax":
        jax = optional_import("jax", purpose="like='jax'")
        return jax.device_put(a, like.device) if like.device is not None else jax.numpy.asarray(a)
    if not is_standard(name) or (like.lib == "array_api_strict" and name == "float16"):
        msg = f"{what} has dtype {name}, which {like.lib} has no dtype for; read it with like='numpy' or 'torch'"
        raise TypeError(msg)
    if like.lib == "cupy":
        cupy = optional_import("cupy", purpose="like='cupy'")
        if like.device is None:
            return cupy.asarray(a)
        with like.device:
            return cupy.asarray(a)
    xp = optional_import("array_api_strict", purpose="like='array_api_strict'")
    # a copy: strict arrays are writable, the mapped file is not
    return xp.asarray(np.array(a, copy=True), device=like.device)


def _torch_from_bits(bits: np.ndarray, name: str, what: str) -> Array:
    torch = optional_import("torch", purpose="like='torch'")

    dtype = torch_dtype(name, what=what)
    a = bits if bits.dtype.isnative else bits.astype(bits.dtype.newbyteorder("="))
    if not a.flags.writeable:
        a = a.copy()  # torch has no read-only tensors
    if is_standard(name) and not name.startswith("uint") or name == "uint8":
        return torch.from_numpy(a)
    signed = a.view(np.dtype(_SIGNED[a.dtype.itemsize]))
    return torch.from_numpy(signed).view(dtype)


def to_device(t: Any, like: Like) -> Any:
    """A CPU tensor moved to ``like``'s torch device (itself when that is the CPU)."""
    return t if like.device is None or t.device == like.device else t.to(like.device)


def check_like(like: Any) -> Like:
    """``like`` as a :class:`Like`: a name of :data:`LIKES`, or an array whose library and device to take.

    ValueError for anything else; ModuleNotFoundError, naming the extra, when the library is missing.
    """
    if isinstance(like, Like):
        return like
    if isinstance(like, str):
        if like not in LIKES:
            msg = f"like={like!r} must be one of {', '.join(map(repr, LIKES))}, or an array of one of those libraries"
            raise ValueError(msg)
        if like != "numpy":
            optional_import(like, purpose=f"like={like!r}")
        return Like(like)
    lib = backend_name(like) if hasattr(like, "shape") and hasattr(like, "dtype") else None
    if lib not in LIKES:
        msg = (
            f"like={type(like).__name__} object must be one of {', '.join(map(repr, LIKES))}, "
            "or an array of one of those libraries"
        )
        raise ValueError(msg)
    if lib == "numpy":
        return Like("numpy")
    if lib == "torch":
        return Like("torch", None if like.device.type == "cpu" else like.device)
    if lib == "jax":
        devices = like.devices()
        if len(devices) != 1:
            msg = f"like is a JAX array sharded over {len(devices)} devices; pass one on a single device, or 'jax'"
            raise ValueError(msg)
        return Like("jax", next(iter(devices)))
    return Like(lib, device(like))


def is_little(dtype: np.dtype) -> bool:
    """Whether items of ``dtype`` are stored little-endian (single bytes always are)."""
    order = dtype.byteorder
    return dtype.itemsize == 1 or order in "<|" or (order == "=" and sys.byteorder == "little")


def little_endian(bits: np.ndarray) -> np.ndarray:
    """``bits`` with its items little-endian (a copy only where they are not)."""
    return bits if is_little(bits.dtype) else bits.astype(bits.dtype.newbyteorder("<"))
