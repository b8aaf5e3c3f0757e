"""The one bridge between the caller's arrays and the kernels: views in, results out, bit for bit.

Host arrays are NumPy arrays and dense (strided) CPU torch tensors. The host
kernels read them in place through a NumPy view:

* :func:`host_view`: the view, bit for bit. torch's bfloat16, which NumPy
  lacks, is carried as its uint16 bits (for kernels that move values), or with
  ``widen=True`` as float32 (a copy; exact and order-preserving) for kernels
  that rank or sum values. NumPy arrays of the ``ml_dtypes`` types (bfloat16,
  float8, ..., as JAX hands them back) take the same two ways: their unsigned
  bits, or widened exactly to float32 (int8 / uint8 for int4 and its kin).
  Byte-swapped NumPy data is the one other copy: it is put in native order,
  as the kernels read raw bits.
* :func:`bits_view`: the same bytes as unsigned integers (the CUTLASS kernels).
* :class:`Host`: the exact view together with what wrapping the results back
  needs (the caller's dtype); the format codecs use it.

Results go back with :func:`wrap` (or :meth:`Host.wrap_values` /
:meth:`Host.wrap_index`): a NumPy result stays NumPy, a torch caller gets
``torch.from_numpy`` over the same memory, viewed as the caller's dtype. No
copy either way (only a non-contiguous result is made contiguous, as torch needs).

Device arrays (CuPy, torch on CUDA) are never copied to the host. The CUDA
backend takes them through :func:`device_view` (DLPack, zero-copy) and hands
its results back with :func:`wrap_device`.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import _compat

Array = Any

_UNSIGNED = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}

#: The widest item :class:`Host` moves: complex128's 16 bytes have no unsigned integer
#: of their width, and run the standard-only codecs.
MAX_ITEMSIZE = 8


def is_host(x: Array) -> bool:
    """Whether the host kernels can read ``x`` in place: a NumPy array or a dense CPU torch tensor."""
    return _compat.is_numpy(x) or _compat.is_torch_cpu_strided(x)


def host_view(x: Array, *, widen: bool = False) -> np.ndarray | None:
    """A NumPy array sharing memory with ``x`` (NumPy, dense CPU torch), else ``None``.

    bfloat16 (torch's or ml_dtypes') is viewed as its uint16 bits, or with
    ``widen`` converted to float32 (a copy); the other ml_dtypes types
    likewise (their unsigned bits, or :attr:`.MlDtype.wide`). Byte-swapped
    NumPy data is copied to native order. Anything else, GPU arrays
    included, gives ``None``: data is never moved between devices behind the
    caller's back.
    """
    if _compat.is_numpy(x):
        return _numpy_view(x, widen)
    if _compat.is_torch_cpu_strided(x):
        return _torch_view(x, widen)
    return None


def host_dtype(dtype: Any) -> np.dtype:
    """The dtype of ``host_view(x, widen=True)`` for an ``x`` of ``dtype`` (NumPy's, the
    ``ml_dtypes`` ones or torch's), known without the array: what a streamed array will rank as."""
    if type(dtype).__module__.split(".")[0] == "torch":
        torch = _compat.optional_import("torch", purpose="reading a torch dtype")
        return np.dtype(np.float32) if dtype == torch.bfloat16 else torch.empty(0, dtype=dtype).numpy().dtype
    d = np.dtype(dtype)
    ml = _compat.ml_dtype(d)
    return np.dtype(ml.wide) if ml is not None else d.newbyteorder("=")


def _numpy_view(x: np.ndarray, widen: bool = False) -> np.ndarray:
    a = np.asarray(x)
    ml = _compat.ml_dtype(a.dtype)
    if ml is not None:
        return a.astype(ml.wide) if widen else a.view(ml.bits)
    return a if a.dtype.isnative else a.astype(a.dtype.newbyteorder("="))


def _torch_view(x: Any, widen: bool) -> np.ndarray:
    torch = _compat.optional_import("torch", purpose="reading a torch tensor")
    t = x.detach().resolve_conj().resolve_neg()
    if t.dtype == torch.bfloat16:
        return t.float().numpy() if widen else t.view(torch.int16).numpy().view(np.uint16)
    return t.numpy()


def bits_view(x: Array) -> np.ndarray | None:
    """The bytes of ``x`` (NumPy, dense CPU torch) as unsigned integers of the item's width
    (1, 2 or 4 bytes), else ``None``."""
    h = host_view(x)
    if h is None or h.dtype.itemsize not in (1, 2, 4):
        return None
    return h.view(_UNSIGNED[h.dtype.itemsize])


def wrap(a: np.ndarray, like: Array, dtype: Any = None) -> Array:
    """A kernel's NumPy result ``a`` as an array of ``like``'s library, without a copy.

    ``dtype`` (a dtype of ``like``'s library, of ``a``'s item size)
    reinterprets the bits; by default ``a``'s own dtype is kept.
    """
    if not _compat.is_torch_cpu_strided(like):
        return a if dtype is None else a.view(dtype)
    torch = _compat.optional_import("torch", purpose="reading a torch tensor")
    # not np.ascontiguousarray: it turns a 0-d array into a 1-d one
    t = torch.from_numpy(a if a.flags.c_contiguous else a.copy())
    return t if dtype is None or t.dtype == dtype else t.view(dtype)


def is_view_of(view: np.ndarray, x: Array) -> bool:
    """Whether the host view ``view`` is ``x``'s own memory (not a byte-swapped or widened copy)."""
    start = view.__array_interface__["data"][0]
    if _compat.is_numpy(x):
        return start == x.__array_interface__["data"][0]
    return start == x.data_ptr()


@dataclass
class Host:
    """The exact host view of an array (or the template of a result's dtype) and the way back.

    ``values`` holds the data with its own dtype (bfloat16 and the other
    ml_dtypes types as their unsigned bits); ``wrap_*`` turn kernel outputs
    back into arrays of the caller's library and dtype without a copy.
    """

    values: np.ndarray
    is_float: bool
    torch_dtype: Any = None  # the caller's torch dtype, None for NumPy
    # to_dense(out=...): the caller's buffer, as a C-contiguous 2-D host view;
    # the decoders then write into it instead of allocating
    target: np.ndarray | None = None
    # NumPy's ml_dtypes types: the caller's dtype, carried as the bits in ``values``
    numpy_dtype: np.dtype | None = None
    # ``bits & nonzero_bits != 0`` for a non-zero value, where the kernels cannot tell
    # from ``values``' dtype (bits carried as unsigned integers); None: they can
    nonzero_bits: int | None = None

    @classmethod
    def of(cls, x: Array) -> Host | None:
        """The exact host view of ``x``; None off the host and for 16-byte items (complex128),
        which the host kernels do not move."""
        if getattr(x.dtype, "itemsize", 0) > MAX_ITEMSIZE:
            return None
        a = host_view(x)
        if a is None:
            return None
        if _compat.is_numpy(x):
            ml = _compat.ml_dtype(x.dtype)
            if ml is None:
                return cls(a, a.dtype.kind in "fc")
            if ml.nonzero_bits is None:
                msg = f"dtype {ml.name} has no zero, so arrays of it cannot be stored sparsely"
                raise TypeError(msg)
            return cls(a, ml.is_float, numpy_dtype=ml.dtype, nonzero_bits=ml.nonzero_bits)
        is_float = x.is_floating_point() or x.is_complex()
        sign_free = (1 << (8 * a.dtype.itemsize - 1)) - 1  # bfloat16's bits: -0.0 is zero
        return cls(a, is_float, x.dtype, nonzero_bits=sign_free if is_float and a.dtype.kind in "iu" else None)

    @classmethod
    def for_result(cls, like: Array, dtype: Any) -> Host | None:
        """An empty Host of ``dtype`` in ``like``'s library, to decode a result whose arrays
        are host arrays like ``like``; None otherwise."""
        if _compat.is_numpy(like):
            return cls.of(np.empty(0, np.dtype(dtype)))
        if _compat.is_torch_cpu_strided(like):
            torch = _compat.optional_import("torch", purpose="reading a torch tensor")
            return cls.of(torch.empty(0, dtype=dtype))
        return None

    @property
    def is_torch(self) -> bool:
        return self.torch_dtype is not None

    def view(self, a: Array) -> np.ndarray:
        """The exact view of one of a result's arrays, which share this Host's library."""
        return _torch_view(a, False) if self.is_torch else _numpy_view(a)

    def wrap_values(self, a: np.ndarray) -> Array:
        """Values (possibly an unsigned view) as the caller's dtype and library."""
        a = a.view(self.values.dtype)
        if not self.is_torch:
            return a if self.numpy_dtype is None else a.view(self.numpy_dtype)
        torch = _compat.optional_import("torch", purpose="reading a torch tensor")
        t = torch.from_numpy(a if a.flags.c_contiguous else a.copy())
        return t.view(self.torch_dtype) if t.dtype != self.torch_dtype else t

    def wrap_index(self, a: np.ndarray) -> Array:
        """An index (or other integer) array in the caller's library."""
        if not self.is_torch:
            return a
        torch = _compat.optional_import("torch", purpose="reading a torch tensor")
        return torch.from_numpy(a if a.flags.c_contiguous else a.copy())

    def empty_values(self, shape: tuple[int, ...]) -> np.ndarray:
        """A dense output the decoder fills completely: the target, or a new array."""
        if self.target is not None:
            return self.target
        return np.empty(shape, self.values.dtype)


# -- device arrays: the CUDA backend's way in and out ------------------------------------
def is_device(x: Array) -> bool:
    """Whether the CUDA kernels can read ``x`` in place: a CuPy array or a dense CUDA torch
    tensor, with CuPy installed (without it device arrays run the standard-only code)."""
    name = _compat.backend_name(x)
    if name == "cupy":
        return True
    if name != "torch" or x.device.type != "cuda" or not _has_cupy():
        return False
    torch = _compat.optional_import("torch", purpose="torch arrays")

    return x.layout == torch.strided


@functools.cache
def _has_cupy() -> bool:
    return importlib.util.find_spec("cupy") is not None


def device_view(x: Array) -> Any:
    """A CuPy array sharing ``x``'s device memory (CuPy, or a dense CUDA torch tensor through
    DLPack), else ``None``.

    torch's bfloat16 (and float8) is viewed as its unsigned bits and bool as
    uint8 (then back to bool), as on the host; nothing is copied, and nothing leaves the
    device. Call it with the job's stream current (the CUDA backend's
    session), so DLPack orders the hand-over on that stream.
    """
    name = _compat.backend_name(x)
    if name == "cupy":
        return x
    if name != "torch" or x.device.type != "cuda":
        return None
    cupy = _compat.optional_import("cupy", purpose="the CUDA kernels")
    torch = _compat.optional_import("torch", purpose="the CUDA kernels on torch tensors")

    t = x.detach().resolve_conj().resolve_neg()
    if t.dtype == torch.bool:
        return cupy.from_dlpack(t.view(torch.uint8)).view(cupy.bool_)
    if t.is_floating_point() and t.dtype not in (torch.float16, torch.float32, torch.float64):
        # bfloat16, float8: no CuPy dtype; their bits as unsigned integers of their width
        signed = {1: torch.uint8, 2: torch.int16}[t.element_size()]
        return cupy.from_dlpack(t.view(signed)).view(_UNSIGNED[t.element_size()])
    return cupy.from_dlpack(t)


def wrap_device(a: Any, like: Array, dtype: Any = None) -> Array:
    """A kernel's CuPy result ``a`` as an array of ``like``'s library on its device, no copy.

    ``dtype`` (of ``like``'s library, ``a``'s item size) reinterprets the bits,
    as :func:`wrap` does on the host: a bfloat16 result comes back from its
    16-bit words.
    """
    if _compat.backend_name(like) != "torch":
        return a if dtype is None or a.dtype == dtype else a.view(dtype)
    torch = _compat.optional_import("torch", purpose="torch arrays")

    if a.dtype.kind == "b":
        t = torch.from_dlpack(a.view("uint8")).view(torch.bool)
    elif a.dtype.kind == "u" and a.dtype.itemsize > 1:
        t = torch.from_dlpack(a.view(f"int{8 * a.dtype.itemsize}"))  # torch's unsigned types are partial
    else:
        t = torch.from_dlpack(a)
    return t if dtype is None or t.dtype == dtype else t.view(dtype)
