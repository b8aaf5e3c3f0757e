"""Visiting the set bits of a 64-bit word: the gather half of the bit-mask idiom.

A kernel tests a block of up to 64 elements branch-free (the compiler
vectorises the test) into a word with bit ``t`` set where element ``t``
qualifies; then only the set bits are visited, so the gather costs per hit,
not per element. Used by the top-k bracket pass and the sparse CSR fill.
"""

from __future__ import annotations

import numpy as np
from numba.cpython.unsafe.numbers import trailing_zeros

from ._jit import kernel

_ONE = np.uint64(1)


@kernel(inline="always")
def gather_set_bits(word, block, first, positions, values, pos):
    """For each set bit ``t`` of ``word``, lowest first: ``positions[pos] = first + t`` and
    ``values[pos] = block[t]``, ``pos`` advancing by one. Returns the new ``pos``."""
    while word:
        t = trailing_zeros(word)
        positions[pos] = first + t
        values[pos] = block[t]
        pos += 1
        word &= word - _ONE
    return pos
