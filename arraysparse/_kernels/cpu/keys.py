"""Order-preserving unsigned keys for every real dtype.

The selection kernels compare unsigned integers, not values: a key is the
value's bit pattern mapped so that unsigned order equals numeric order. That
gives one code path for floats and integers of 32 and 64 bits, a total order
(+0.0 and -0.0 share a key, +/-inf sit at the ends), magnitude for free (clear
the sign bit, or negate a negative integer without overflow) and a cheap NaN
test. Narrow dtypes are widened first (float16 to float32, small ints to 32
bits), which is exact.
"""

from __future__ import annotations

import functools
from typing import Any

import numba
import numpy as np
from numba.extending import overload

from ._jit import Static, writable

FLOAT, SIGNED, UNSIGNED = 0, 1, 2

_WIDEN = {
    np.dtype(np.float16): np.float32,
    np.dtype(np.int8): np.int32,
    np.dtype(np.int16): np.int32,
    np.dtype(np.uint8): np.uint32,
    np.dtype(np.uint16): np.uint32,
}


_NARROW = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}
_INF_BITS = {16: 0x7C00, 32: 0x7F800000, 64: 0x7FF0000000000000}


def as_bits(a: np.ndarray, *, widen: bool = True) -> tuple[np.ndarray, int]:
    """View ``a`` as unsigned bits, plus the key mode.

    ``widen``: narrow dtypes become 32-bit first (a copy), for the kernels
    that take 32- and 64-bit keys only; without it 8- and 16-bit data is
    viewed as it is (no copy), for the kernels that take every width.
    """
    a = np.asarray(a)
    if widen and a.dtype in _WIDEN:
        a = a.astype(_WIDEN[a.dtype])
    kind = a.dtype.kind
    mode = {"f": FLOAT, "i": SIGNED, "u": UNSIGNED}[kind]
    return writable(a).view(_NARROW[a.dtype.itemsize]), mode


def float_masks(unsigned: type) -> tuple:
    """``(absmask, inf_bits)`` of the float of this width: ``(b & absmask) > inf_bits`` is NaN."""
    width = np.dtype(unsigned).itemsize * 8
    return unsigned((1 << (width - 1)) - 1), unsigned(_INF_BITS.get(width, (1 << width) - 1))


def _key_constants(unsigned: type) -> tuple:
    width = np.dtype(unsigned).itemsize * 8
    absmask, _ = float_masks(unsigned)
    return unsigned(0), unsigned(1), unsigned(1 << (width - 1)), absmask, unsigned(width - 1)


@functools.cache
def _key_functions(unsigned: type) -> dict[tuple[int, bool], Any]:
    """The order key of each (mode, magnitude flag) for one width, as inlined jitted functions.

    Branch-free in the data (random signs must not cost mispredictions); Numba
    widens unsigned arithmetic to 64 bits, so every step casts back.
    """
    zero, one, sign, absmask, top = _key_constants(unsigned)

    @numba.njit(inline="always")
    def float_abs(b):
        return unsigned((b & absmask) | sign)

    @numba.njit(inline="always")
    def float_signed(b):
        c = b & unsigned(zero - unsigned(b != sign))  # -0.0 ranks equal to +0.0 (no phi: Numba warns)
        return unsigned(c ^ unsigned(unsigned(zero - (c >> top)) | sign))

    @numba.njit(inline="always")
    def signed_abs(b):
        neg = unsigned(zero - (b >> top))  # all ones where negative
        return unsigned(unsigned(b ^ neg) + unsigned(neg & one))  # |MIN| fits

    @numba.njit(inline="always")
    def signed(b):
        return unsigned(b ^ sign)

    @numba.njit(inline="always")
    def plain(b):
        return unsigned(b)

    return {
        (FLOAT, True): float_abs,
        (FLOAT, False): float_signed,
        (SIGNED, True): signed_abs,
        (SIGNED, False): signed,
        (UNSIGNED, False): plain,
    }


def any_key(b, mode, use_abs):
    """Inside a kernel: the order key of bits ``b`` for a run-time key mode and magnitude flag."""
    raise NotImplementedError("any_key is only callable from a kernel")


@overload(any_key, inline="always")
def _ol_any_key(b, mode, use_abs):
    f = _key_functions(np.dtype(str(b)).type)
    float_abs, float_signed = f[FLOAT, True], f[FLOAT, False]
    signed_abs, signed, plain = f[SIGNED, True], f[SIGNED, False], f[UNSIGNED, False]

    def key(b, mode, use_abs):
        if mode == FLOAT:
            if use_abs:
                return float_abs(b)
            return float_signed(b)
        if mode == SIGNED:
            if use_abs:
                return signed_abs(b)
            return signed(b)
        return plain(b)

    return key


def key_kind(mode: int, use_abs: bool) -> Static:
    """The compile-time key kind of :func:`order_key`: one specialisation per (mode, flag)."""
    return Static((int(mode), bool(use_abs) and mode != UNSIGNED))


def order_key(b, kind):
    """Inside a kernel: the order key of bits ``b``; ``kind`` is a :func:`key_kind`.

    The mode and flag are compile-time constants here, so their branches leave
    the inner loops, which then vectorise cleanly (a third off the top-k
    bracket pass, measured).
    """
    raise NotImplementedError("order_key is only callable from a kernel")


@overload(order_key, inline="always")
def _ol_order_key(b, kind):
    f = _key_functions(np.dtype(str(b)).type)[kind.value]
    return lambda b, kind: f(b)


def infinity_keys(unsigned: type) -> tuple:
    """Keys of -inf and +inf: a float key outside them is a NaN's."""
    width = np.dtype(unsigned).itemsize * 8
    sign = 1 << (width - 1)
    inf = int(float_masks(unsigned)[1])
    return unsigned(((1 << width) - 1) ^ (inf | sign)), unsigned(inf | sign)


def has_nan(unsigned: type, mode: int, lowest_key: int, highest_key: int) -> bool:
    """Whether keys spanning ``[lowest_key, highest_key]`` include a NaN's."""
    if mode != FLOAT:
        return False
    neg_inf, pos_inf = infinity_keys(unsigned)
    return bool(lowest_key < neg_inf or highest_key > pos_inf)


def key_limits(bits):
    """Inside a kernel: ``(lowest, highest)`` key of the bits array's unsigned type."""
    raise NotImplementedError("key_limits is only callable from a kernel")


@overload(key_limits, inline="always")
def _ol_key_limits(bits):
    unsigned = np.dtype(str(bits.dtype)).type
    lowest, highest = unsigned(0), unsigned(np.iinfo(unsigned).max)
    return lambda bits: (lowest, highest)


def as_key(bits, value):
    """Inside a kernel: ``value`` cast to the bits array's unsigned type."""
    raise NotImplementedError("as_key is only callable from a kernel")


@overload(as_key, inline="always")
def _ol_as_key(bits, value):
    unsigned = np.dtype(str(bits.dtype)).type
    return lambda bits, value: unsigned(value)


def nan_masks(bits):
    """Inside a kernel: ``(absmask, inf_bits)`` of the float as wide as the bits' type."""
    raise NotImplementedError("nan_masks is only callable from a kernel")


@overload(nan_masks, inline="always")
def _ol_nan_masks(bits):
    absmask, inf = float_masks(np.dtype(str(bits.dtype)).type)
    return lambda bits: (absmask, inf)


def signed_of(bits):
    """Inside a kernel: the signed integer dtype as wide as the bits' type."""
    raise NotImplementedError("signed_of is only callable from a kernel")


@overload(signed_of, inline="always")
def _ol_signed_of(bits):
    signed = np.int32 if np.dtype(str(bits.dtype)).itemsize == 4 else np.int64
    return lambda bits: signed


def as_signed(value):
    """Inside a kernel: an unsigned key reinterpreted as the signed integer of its width."""
    raise NotImplementedError("as_signed is only callable from a kernel")


@overload(as_signed, inline="always")
def _ol_as_signed(value):
    signed = np.int32 if value.bitwidth == 32 else np.int64
    return lambda value: signed(value)
