"""Pieces every format codec uses: exact host views, zero tests, a gather-only decoder."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import _compat

Array = Any


@dataclass
class Host:
    """A NumPy view of a NumPy or CPU-torch array that keeps its exact bytes.

    ``values`` holds the data with its own dtype (bfloat16 as uint16, as NumPy
    lacks it); ``bits``/``zero_mask`` feed the kernels; ``wrap_*`` turn kernel
    outputs back into arrays of the caller's library without a copy.
    """

    values: np.ndarray
    is_float: bool
    torch_dtype: Any = None  # the caller's torch dtype, None for NumPy
    # to_dense(out=...): the caller's buffer, as a C-contiguous 2-D host view;
    # the decoders then write into it instead of allocating
    target: np.ndarray | None = None

    @classmethod
    def of(cls, x: Array) -> Host | None:
        """The host view of ``x``; None off the CPU and for 16-byte items (complex128).

        None sends the caller to the standard-only path, which handles everything.
        """
        if getattr(x.dtype, "itemsize", 0) > 8:
            return None
        if _compat.is_numpy(x):
            a = np.asarray(x)
            if not a.dtype.isnative:
                a = a.astype(a.dtype.newbyteorder("="))
            return cls(a, a.dtype.kind in "fc")
        if _compat.is_torch_cpu_strided(x):
            import torch

            t = x.detach().resolve_conj().resolve_neg()
            if t.dtype == torch.bfloat16:
                return cls(t.view(torch.int16).numpy().view(np.uint16), True, t.dtype)
            return cls(t.numpy(), t.is_floating_point() or t.is_complex(), t.dtype)
        return None

    @property
    def is_torch(self) -> bool:
        return self.torch_dtype is not None

    def bits(self, a: np.ndarray | None = None) -> tuple[np.ndarray, Any]:
        """Unsigned view of ``a`` (default: the values) and its zero mask."""
        from .._kernels.cpu.sparse import value_bits

        a = self.values if a is None else a
        u, mask = value_bits(a)
        if self.is_float and a.dtype.kind in "iu":  # bfloat16 carried as uint16
            mask = u.dtype.type((1 << (8 * u.dtype.itemsize - 1)) - 1)
        return u, mask

    def wrap_values(self, a: np.ndarray) -> Array:
        """Values (possibly an unsigned view) as the caller's dtype and library."""
        a = a.view(self.values.dtype)
        if not self.is_torch:
            return a
        import torch

        t = torch.from_numpy(np.ascontiguousarray(a)) if a.ndim else torch.from_numpy(a.copy())
        return t.view(self.torch_dtype) if t.dtype != self.torch_dtype else t

    def wrap_index(self, a: np.ndarray) -> Array:
        if not self.is_torch:
            return a
        import torch

        return torch.from_numpy(np.ascontiguousarray(a))

    def empty_values(self, shape: tuple[int, ...]) -> np.ndarray:
        """A dense output the decoder fills completely: the target, or a new array."""
        if self.target is not None:
            return self.target
        return np.empty(shape, self.values.dtype)

    def zeros_values(self, shape: tuple[int, ...]) -> np.ndarray:
        """A zeroed dense output: the target cleared in parallel, or ``np.zeros`` (for large
        outputs fresh pages the OS zeroes on first touch, so nothing is written twice)."""
        if self.target is not None:
            from .._kernels.cpu.sparse import zero_rows

            zero_rows(self.bits(self.target)[0])
            return self.target
        return np.zeros(shape, self.values.dtype)


def host_of(arrays: dict[str, Array], dtype: Any) -> Host | None:
    """A Host for decoding a result whose arrays are NumPy / CPU torch, else None."""
    first = next(iter(arrays.values()))
    if _compat.is_numpy(first):
        return Host.of(np.empty(0, np.dtype(dtype)))
    if _compat.is_torch_cpu_strided(first):
        import torch

        return Host.of(torch.empty(0, dtype=dtype))
    return None


def host_array(h: Host, a: Array) -> np.ndarray:
    """NumPy view of one of a result's arrays (values keep their exact bits)."""
    if not h.is_torch:
        return np.asarray(a)
    import torch

    if a.dtype == torch.bfloat16:
        return a.view(torch.int16).numpy().view(np.uint16)
    return a.resolve_conj().resolve_neg().numpy()


def zeros_like_dtype(xp: Any, shape: tuple[int, ...], like: Array) -> Array:
    return xp.zeros(shape, dtype=like.dtype, device=_compat.device(like))


def gather_rows(xp: Any, keys: Array, values: Array, n: int) -> Array:
    """``(n, w)`` array whose row ``keys[i]`` is ``values[i]``, other rows zero, by gathers only.

    The array API has no scatter; every output row instead looks up its own
    index among ``keys`` (ascending, int64) with ``searchsorted``.
    """
    w = values.shape[1]
    dev = _compat.device(values)
    if keys.shape[0] == 0 or n == 0:
        return xp.zeros((n, w), dtype=values.dtype, device=dev)
    where = xp.arange(n, dtype=xp.int64, device=dev)
    slot = xp.clip(xp.searchsorted(keys, where), max=keys.shape[0] - 1)
    hit = xp.take(keys, slot) == where
    zero = xp.zeros((), dtype=values.dtype, device=dev)
    return xp.where(hit[:, None], xp.take(values, slot, axis=0), zero)


def gather_decode(xp: Any, flat: Array, values: Array, shape: tuple[int, ...]) -> Array:
    """Dense array of ``shape`` from ``values`` at ascending C-order flat positions ``flat``."""
    out = gather_rows(xp, flat, xp.reshape(values, (-1, 1)), math.prod(shape))
    return xp.reshape(out, shape)


def take_flat(xp: Any, x2: Array, flat: Array) -> Array:
    """Elements of ``x2`` at C-order flat positions ``flat``."""
    return xp.take(xp.reshape(x2, (-1,)), flat)


def arange(xp: Any, n: int, like: Array, dtype: Any = None) -> Array:
    return xp.arange(n, dtype=dtype or xp.int64, device=_compat.device(like))


def counts_to_indptr(xp: Any, counts: Array, dtype: Any) -> Array:
    """``[0, cumsum(counts)...]`` in ``dtype``."""
    zero = xp.zeros((1,), dtype=xp.int64, device=_compat.device(counts))
    if counts.shape[0] == 0:
        return xp.astype(zero, dtype)
    return xp.astype(xp.concat([zero, xp.cumulative_sum(xp.astype(counts, xp.int64))]), dtype)


def host_indptr(counts: np.ndarray, dtype: Any) -> np.ndarray:
    out = np.empty(counts.shape[0] + 1, dtype)
    out[0] = 0
    np.cumsum(counts, out=out[1:])
    return out
