"""Exact selection over an array held in chunks: the per-chunk pieces.

A backend that holds arrays in chunks, possibly on other machines (Dask),
runs the selection of :mod:`.global_select` as jobs on one chunk at a time
whose results are small and add up, so only counts travel:

1. :func:`histogram`: one digit of the keys that share the prefix found so
   far, and the extreme keys (the NaN test). The backend sums the chunks'
   histograms and picks the bucket holding the ``k``-th key, as
   :func:`.global_select.find_threshold` does with its per-worker ones;
2. :func:`tie_counts`: given the threshold key ``T``, the chunk's keys below
   it and, per *run* (a stretch of the chunk that is contiguous in the whole
   array's C order), its keys equal to it. From the runs' counts, taken in
   the whole array's C order, the backend finds where the ties are cut;
3. :func:`keep`: a chunk's keep-mask: keys above ``T`` kept, below pruned,
   and in each run the first ``quota`` of its keys equal to ``T`` pruned.

Keys are those of :mod:`.keys`, in one key space for every chunk of every
array (:func:`key_space`, the rule of :class:`.global_select.KeySource`):
narrow dtypes widen exactly (float16 to float32, small integers to 32 bits),
and arrays whose key spaces differ are all ranked as float64. No kernel is
defined here: these are the launches of :mod:`.global_select`'s and
:mod:`.select`'s kernels on one chunk.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ._jit import addresses
from .global_select import _histogram, _keep_from, _key_space, _workers
from .keys import FLOAT, SIGNED, UNSIGNED, as_bits, has_nan, key_kind
from .select import _keep_threshold


def key_space(dtypes: Iterable[np.dtype]) -> tuple[bool, int]:
    """``(as_float64, key_bits)`` of a pool of arrays of these (host) dtypes.

    One key space (float16 with float32, int8 with int32, ...): its keys, 32 or
    64 bits. Several: every value ranked as float64, 64-bit keys.
    """
    spaces = {_key_space(np.dtype(d)) for d in dtypes}
    as_float64 = len(spaces) > 1
    width = 8 if as_float64 or not spaces else next(iter(spaces))[0]
    return as_float64, 8 * width


def key_mode(dtype: np.dtype, as_float64: bool) -> int:
    """The key mode (float, signed, unsigned) of a chunk of ``dtype`` in its pool."""
    if as_float64:
        return FLOAT
    return {"f": FLOAT, "i": SIGNED, "u": UNSIGNED}[np.dtype(dtype).kind]


def nan_keys(key_bits: int, mode: int, kmin: int, kmax: int) -> bool:
    """Whether keys spanning ``[kmin, kmax]`` include a NaN's."""
    unsigned = np.uint32 if key_bits == 32 else np.uint64
    return has_nan(unsigned, mode, unsigned(kmin), unsigned(kmax))


def _bits(values: np.ndarray, as_float64: bool) -> tuple[np.ndarray, int]:
    """The chunk's keys' source: its values flattened in C order as unsigned bits."""
    flat = np.ravel(values)
    if as_float64:
        flat = flat.astype(np.float64)
    bits, mode = as_bits(flat)
    return np.ascontiguousarray(bits), mode


def histogram(
    values: np.ndarray, as_float64: bool, magnitude: bool, prefix: int, pmask: int, shift: int, digit: int
) -> tuple[np.ndarray, int, int]:
    """``(hist, kmin, kmax)``: the counts of digit ``(key >> shift) & (2**digit - 1)`` over the
    keys with ``key & pmask == prefix``, and the least and greatest of those keys."""
    bits, mode = _bits(values, as_float64)
    unsigned = bits.dtype.type
    nbins = 1 << digit
    n = bits.size
    highest = np.iinfo(unsigned).max
    if n == 0:
        return np.zeros(nbins, np.int64), int(highest), 0
    nw = _workers(n)
    hist = np.zeros((nw, nbins), np.int64)
    kmin = np.full((nw, 1), highest, unsigned)
    kmax = np.zeros((nw, 1), unsigned)
    _histogram(
        addresses([bits]), bits, np.array([0, n], np.int64), np.ones(1, np.bool_), mode, bool(magnitude),
        unsigned(prefix), unsigned(pmask), unsigned(shift), unsigned(nbins - 1), hist, kmin, kmax,
    )
    return hist.sum(axis=0), int(kmin.min()), int(kmax.max())


def tie_counts(
    values: np.ndarray, as_float64: bool, magnitude: bool, threshold: int, runs: int
) -> tuple[int, np.ndarray]:
    """``(less, equal)``: the chunk's keys below ``threshold``, and per run (``runs`` equal
    stretches of the flattened chunk, in order) its keys equal to it."""
    bits, mode = _bits(values, as_float64)
    n = bits.size
    if n == 0 or runs == 0:
        return 0, np.zeros(runs, np.int64)
    length = n // runs
    item = bits.dtype.itemsize
    offsets = np.arange(runs + 1, dtype=np.int64) * length
    out = np.empty(n, np.bool_)  # the kernel writes key >= threshold here; unused
    addrs = bits.ctypes.data + offsets[:-1] * item
    out_addrs = out.ctypes.data + offsets[:-1]
    nw = _workers(n)
    equal = np.zeros((nw, runs), np.int64)
    less = np.zeros((nw, runs), np.int64)
    _keep_from(addrs, bits, out_addrs, out, offsets, mode, bool(magnitude), bits.dtype.type(threshold), equal, less)
    return int(less.sum()), equal.sum(axis=0)


def keep(
    values: np.ndarray, as_float64: bool, magnitude: bool, threshold: int, quota: np.ndarray, equal: np.ndarray
) -> np.ndarray:
    """The chunk's flat keep-mask: ``key > threshold``, and of run ``r``'s keys equal to it
    the first ``quota[r]`` pruned and the rest kept (``quota[r] == equal[r]``: all pruned)."""
    bits, mode = _bits(values, as_float64)
    out = np.empty(bits.size, np.bool_)
    if bits.size:
        quota = np.ascontiguousarray(quota, np.int64)
        equal = np.ascontiguousarray(equal, np.int64)
        _keep_threshold(bits, bits.dtype.type(threshold), quota, equal, out, key_kind(mode, magnitude))
    return out
