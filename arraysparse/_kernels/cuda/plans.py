"""Launch plans of the CUDA kernels: what to allocate, what to launch, what to scan between passes.

A plan is written once against a *device*: an object with ``xp`` (the array
library of its memory: CuPy on a GPU, NumPy in the emulation), ``launch(source,
instance, grid, block, args)``, ``host(a)`` (a small device array read back)
and ``upload(a)`` (a small host array sent over). The CuPy loader
(:mod:`.loader`) and the host emulation (:mod:`.emulate`) are the two devices,
so the test suite runs every plan exactly as a GPU would: the same grid and
block sizes, the same scratch buffers, the same scans.

Inputs are C-contiguous device arrays of unsigned bits (values travel as their
bits: bfloat16 and float16 as 16-bit words), results are device arrays of
``dev.xp``. Kernel arguments are NumPy scalars of the exact C type the kernel
takes (CuPy passes them as they are; the emulation checks them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .instances import NM_SMALL_MAXM, name, unsigned

Array = Any

#: Threads of a block, for the element-wise and grid-stride kernels.
BLOCK = 256
#: Most blocks of a grid-stride launch (enough to fill an H100/H200 several times over).
MAX_GRID = 4096

KEY_FLOAT, KEY_SIGNED, KEY_UNSIGNED = 0, 1, 2

_UNSIGNED_NP = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}
_FLOAT_INF = {"float16": 0x7C00, "bfloat16": 0x7F80, "float32": 0x7F800000, "float64": 0x7FF0000000000000}


@dataclass(frozen=True)
class Keys:
    """How the kernels read order keys from a dtype's bits: mode, magnitude flag, NaN bound."""

    width: int  # bytes of an item
    mode: int  # KEY_FLOAT, KEY_SIGNED or KEY_UNSIGNED
    magnitude: bool
    inf: int  # bits of +inf (floats); all ones for integers, which then never read as NaN

    @classmethod
    def of(cls, dtype: str, magnitude: bool) -> Keys:
        """The keys of a real dtype by name (``"float32"``, ``"bfloat16"``, ``"int8"``, ...)."""
        if dtype in _FLOAT_INF:
            width = {"float16": 2, "bfloat16": 2, "float32": 4, "float64": 8}[dtype]
            return cls(width, KEY_FLOAT, bool(magnitude), _FLOAT_INF[dtype])
        d = np.dtype(dtype)
        if d.kind not in "iu":
            msg = f"dtype {dtype} has no order keys"
            raise TypeError(msg)
        ones = (1 << (8 * d.itemsize)) - 1
        if d.kind == "i":
            return cls(d.itemsize, KEY_SIGNED, bool(magnitude), ones)
        return cls(d.itemsize, KEY_UNSIGNED, False, ones)

    @property
    def bits_type(self) -> type:
        return _UNSIGNED_NP[self.width]

    def args(self) -> tuple:
        """``mode, magnitude, inf`` as kernel arguments."""
        return np.int32(self.mode), np.int32(self.magnitude), self.bits_type(self.inf)


#: Items each thread of a grid-stride launch handles at least (fewer, fuller blocks).
ITEMS = 16


def _blocks(items: int, per_block: int = BLOCK * ITEMS, cap: int = MAX_GRID) -> int:
    return max(1, min(cap, -(-items // per_block)))


def _i64(v: int) -> np.int64:
    return np.int64(v)


# -- NaN count ----------------------------------------------------------------------------
def nan_count(dev: Any, bits: Array, keys: Keys) -> int:
    """NaN values among ``bits`` (0 unless floating keys)."""
    n = int(bits.size)
    if keys.mode != KEY_FLOAT or n == 0:
        return 0
    count = dev.xp.zeros(1, dtype=np.uint64)
    dev.launch(
        "select.cu", name("nan_count", unsigned(keys.width)), _blocks(n), BLOCK,
        (bits.reshape(-1), _i64(n), keys.bits_type(keys.inf), count),
    )
    return int(dev.host(count)[0])


# -- N:M keep mask ------------------------------------------------------------------------
def nm_keep(dev: Any, bits: Array, shape3: tuple[int, int, int], n: int, m: int, keys: Keys) -> tuple[Array, int]:
    """``(keep, nan_count)``: ``n`` zeros in every group of ``m`` along axis 1 of the
    ``(outer, length, inner)`` view of ``bits``; the mask is meaningless when NaN were found.

    ``m <= 32`` runs one thread a group with the keys in registers; larger ``m``
    one block a group (a radix select in shared memory).
    """
    xp = dev.xp
    outer, length, inner = shape3
    out = xp.empty(bits.shape, dtype=xp.bool_)
    groups = length // m if m else 0
    units = outer * groups * inner
    if units == 0:
        return out, 0
    if n in (0, m):
        out[...] = n == 0
        return out, nan_count(dev, bits, keys)
    flag = xp.zeros(1, dtype=np.uint32)
    u = unsigned(keys.width)
    common = (
        bits.reshape(-1), out.reshape(-1).view(np.uint8), _i64(units), _i64(groups), _i64(length), _i64(inner),
        np.int32(n), np.int32(m), *keys.args(), flag,
    )
    if m <= NM_SMALL_MAXM[-1]:
        maxm = next(v for v in NM_SMALL_MAXM if v >= m)
        dev.launch("nm.cu", name("nm_keep_small", u, maxm), _blocks(units, BLOCK), BLOCK, common)
    else:
        block = min(BLOCK, -(-m // 32) * 32)  # one block a group, no wider than the group
        dev.launch("nm.cu", name("nm_keep_large", u), _blocks(units, 1), block, common)
    if int(dev.host(flag)[0]):
        return out, nan_count(dev, bits, keys)
    return out, 0


# -- exact top-k: radix select ------------------------------------------------------------
#: Digit width of the top-k radix select (2048 bins of shared memory).
RADIX_BITS = 11
#: Most blocks of a histogram launch: each block adds its shared histogram to the global
#: one, so more blocks cost more global atomics than they save.
HIST_GRID = 512
#: Items a block of the ordered passes (count_equal, keep_threshold) covers.
CHUNK = 16 * BLOCK
#: Threads of radix_pick (eight buckets each).
PICK_BLOCK = 256


def radix_levels(width_bits: int, digit: int = RADIX_BITS) -> list[tuple[int, int]]:
    """``(shift, bits)`` of each digit of a key, most significant first."""
    levels = []
    shift = width_bits
    while shift > 0:
        bits = min(digit, shift)
        shift -= bits
        levels.append((shift, bits))
    return levels


def _state(dev: Any, prefix: int = 0, pmask: int = 0, need: int = 0) -> Array:
    return dev.upload(np.array([prefix, pmask, need, 0], dtype=np.uint64))


def _histogram(dev: Any, bits: Array, keys: Keys, state: Array, shift: int, dbits: int, count_nans: bool,
               hist: Array, nans: Array) -> None:
    n = int(bits.size)
    dev.launch(
        "select.cu", name("radix_histogram", unsigned(keys.width)), _blocks(n, cap=HIST_GRID), BLOCK,
        (bits, _i64(n), *keys.args(), state, np.int32(shift), np.int32(dbits), np.int32(count_nans), hist, nans),
    )


def keep_threshold(dev: Any, bits: Array, keys: Keys, state: Array, out: Array) -> None:
    """``out`` = key > state[0], pruning also the first state[2] keys equal to it (index order)."""
    n = int(bits.size)
    u = unsigned(keys.width)
    mode, magnitude, _ = keys.args()
    nchunks = -(-n // CHUNK)
    counts = dev.xp.empty(nchunks, dtype=np.uint64)
    dev.launch("select.cu", name("count_equal", u), nchunks, BLOCK,
               (bits, _i64(n), mode, magnitude, state, _i64(CHUNK), counts))
    ends = dev.xp.cumsum(counts)
    dev.launch("select.cu", name("keep_threshold", u), nchunks, BLOCK,
               (bits, _i64(n), mode, magnitude, state, _i64(CHUNK), counts, ends, out.view(np.uint8)))


def topk_keep(dev: Any, bits: Array, k: int, keys: Keys) -> tuple[Array, int]:
    """``(keep, nan_count)`` pruning the ``k`` smallest keys of the flat ``bits`` (ties: the
    lowest indices first); the mask is meaningless when NaN were found.

    One histogram launch per digit of the key (3 for 32-bit keys) with the
    bucket picked on the device between them, then a count of the keys equal
    to the threshold per chunk, a scan, and the write. One read-back: the NaN count.
    """
    xp = dev.xp
    bits = bits.reshape(-1)
    n = int(bits.size)
    out = xp.empty(n, dtype=xp.bool_)
    if n == 0:
        return out, 0
    if k <= 0 or k >= n:
        out[...] = k <= 0
        return out, nan_count(dev, bits, keys)
    state = _state(dev, need=k)
    hist = xp.zeros(1 << RADIX_BITS, dtype=np.uint64)
    nans = xp.zeros(1, dtype=np.uint64)
    for level, (shift, dbits) in enumerate(radix_levels(8 * keys.width)):
        _histogram(dev, bits, keys, state, shift, dbits, level == 0, hist, nans)
        dev.launch("select.cu", "asp::radix_pick", 1, PICK_BLOCK, (hist, np.int32(dbits), state, np.int32(shift)))
    keep_threshold(dev, bits, keys, state, out)
    return out, int(dev.host(nans)[0])
