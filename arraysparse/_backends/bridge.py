"""The one bridge between the caller's arrays and the kernels: views in, results out, bit for bit.

Host arrays are NumPy arrays and dense (strided) CPU torch tensors. The host
kernels read them in place through a NumPy view:

* :func:`host_view`: the view, bit for bit. bfloat16, which NumPy lacks, is
  carried as its uint16 bits (for kernels that move values), or with
  ``widen=True`` as float32 (a copy; exact and order-preserving) for kernels
  that rank or sum values. Byte-swapped NumPy data is the one other copy: it
  is put in native order, as the kernels read raw bits.

Results go back with :func:`wrap`: a NumPy result stays NumPy, a torch caller gets
``torch.from_numpy`` over the same memory, viewed as the caller's dtype. No
copy either way (only a non-contiguous result is made contiguous, as torch needs).

Device arrays (CuPy, torch on CUDA) are never copied to the host. The CUDA
backend will take them through :func:`device_view` (DLPack), the slot kept
for it here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _compat

Array = Any



def is_host(x: Array) -> bool:
    """Whether the host kernels can read ``x`` in place: a NumPy array or a dense CPU torch tensor."""
    return _compat.is_numpy(x) or _compat.is_torch_cpu_strided(x)


def host_view(x: Array, *, widen: bool = False) -> np.ndarray | None:
    """A NumPy array sharing memory with ``x`` (NumPy, dense CPU torch), else ``None``.

    bfloat16 is viewed as its uint16 bits, or with ``widen`` converted to
    float32 (a copy). Byte-swapped NumPy data is copied to native order.
    Anything else, GPU arrays included, gives ``None``: data is never moved
    between devices behind the caller's back.
    """
    if _compat.is_numpy(x):
        a = np.asarray(x)
        return a if a.dtype.isnative else a.astype(a.dtype.newbyteorder("="))
    if _compat.is_torch_cpu_strided(x):
        import torch

        t = x.detach().resolve_conj().resolve_neg()
        if t.dtype == torch.bfloat16:
            return t.float().numpy() if widen else t.view(torch.int16).numpy().view(np.uint16)
        return t.numpy()
    return None


def wrap(a: np.ndarray, like: Array, dtype: Any = None) -> Array:
    """A kernel's NumPy result ``a`` as an array of ``like``'s library, without a copy.

    ``dtype`` (a dtype of ``like``'s library, of ``a``'s item size)
    reinterprets the bits; by default ``a``'s own dtype is kept.
    """
    if not _compat.is_torch_cpu_strided(like):
        return a if dtype is None else a.view(dtype)
    import torch

    # not np.ascontiguousarray: it turns a 0-d array into a 1-d one
    t = torch.from_numpy(a if a.flags.c_contiguous else a.copy())
    return t if dtype is None or t.dtype == dtype else t.view(dtype)


# -- device arrays: the CUDA backend's slot ---------------------------------------------
def device_view(x: Array) -> Any:
    """The CUDA backend's way in: a CuPy array sharing ``x``'s device memory, through DLPack.

    Not written yet. When the CUDA kernels arrive, this returns
    ``cupy.from_dlpack(x)`` for CuPy arrays and CUDA torch tensors (bfloat16
    viewed as its 16-bit integers, as on the host), and a ``wrap_device``
    next to it hands results back with ``torch.from_dlpack`` / as CuPy, on
    the caller's device; nothing is copied across devices. Until then it
    returns ``None`` and device arrays run the standard-only implementation
    on their own device.
    """
    return None
