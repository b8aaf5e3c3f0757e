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

import numba
import numpy as np

FLOAT, SIGNED, UNSIGNED = 0, 1, 2

_WIDEN = {
    np.dtype(np.float16): np.float32,
    np.dtype(np.int8): np.int32,
    np.dtype(np.int16): np.int32,
    np.dtype(np.uint8): np.uint32,
    np.dtype(np.uint16): np.uint32,
}


def as_bits(a: np.ndarray) -> tuple[np.ndarray, int]:
    """View ``a`` as unsigned bits of 32 or 64 bits, plus the key mode."""
    a = np.asarray(a)
    if a.dtype in _WIDEN:
        a = a.astype(_WIDEN[a.dtype])
    kind = a.dtype.kind
    mode = {"f": FLOAT, "i": SIGNED, "u": UNSIGNED}[kind]
    unsigned = np.uint32 if a.dtype.itemsize == 4 else np.uint64
    return a.view(unsigned), mode


def float_masks(unsigned: type) -> tuple:
    """``(absmask, inf_bits)`` of the float of this width: ``(b & absmask) > inf_bits`` is NaN."""
    width = np.dtype(unsigned).itemsize * 8
    return unsigned((1 << (width - 1)) - 1), unsigned(0x7F800000 if width == 32 else 0x7FF0000000000000)


def make_key_function(unsigned: type):
    """Jitted ``key(bits, mode, use_abs)`` for one width."""
    width = np.dtype(unsigned).itemsize * 8
    zero = unsigned(0)
    one = unsigned(1)
    sign = unsigned(1 << (width - 1))
    absmask, _ = float_masks(unsigned)
    top = unsigned(width - 1)

    @numba.njit(inline="always", nogil=True)
    def key(b, mode, use_abs):
        # branch-free in the data: random signs must not cost mispredictions
        # numba widens unsigned arithmetic to 64 bits: cast back at every step
        if mode == FLOAT:
            if use_abs:
                return unsigned((b & absmask) | sign)
            b = b if b != sign else zero  # -0.0 ranks equal to +0.0
            return unsigned(b ^ unsigned(unsigned(zero - (b >> top)) | sign))
        if mode == SIGNED:
            if use_abs:
                neg = unsigned(zero - (b >> top))  # all ones where negative
                return unsigned(unsigned(b ^ neg) + unsigned(neg & one))  # |MIN| fits
            return unsigned(b ^ sign)
        return unsigned(b)

    return key


def fixed_key_function(unsigned: type, mode: int, use_abs: bool):
    """Jitted ``key(bits)`` for one width, mode and magnitude flag, all compile-time constants.

    Kernels built around it compile once per (width, mode, flag) in use; in
    exchange the mode branches leave their inner loops, which then vectorise
    cleanly (a third off the top-k bracket pass, measured).
    """
    any_key = make_key_function(unsigned)
    use_abs = bool(use_abs)

    @numba.njit(inline="always", nogil=True)
    def key(b):
        return any_key(b, mode, use_abs)

    return key


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
