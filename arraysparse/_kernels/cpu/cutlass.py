"""Encode and decode of the CUTLASS 2:4 layout (torch's ``*_cutlass`` conversions).

The kernels work on the *bits* of the values, a whole group at a time: a
group of four 16-bit values (float16, bfloat16) is one ``uint64`` word, four
int8 values one ``uint32``, a pair of float32 values (the 1:2 case) one
``uint64``. "Non-zero" is one AND with the sign bit cleared for floats, so
-0.0 counts as zero and NaN as non-zero, exactly like torch's ``dense != 0``;
values are moved bit for bit.

Kept positions follow torch's encoder, the boolean formulas it got from the
Espresso minimiser (``m0``, ``m1``, ``m3`` are the non-zero flags of the
group; ``m2`` is not read)::

    idx0 = (~m0 & m1) | (~m0 & ~m1) << 1
    idx1 = ((m0 & m1) | (~m0 & ~m1) | m3) | ((~m0 & m1) | ~m1) << 1

which, for groups with at most two non-zeros, picks them, padded with zero
positions. A pair of float32 keeps its first value when non-zero, else its
second (codes ``0b0100`` and ``0b1110``).

One ``prange`` task handles one band of 32 rows (16 for int8), the row
interleave of CUTLASS's meta layout (``ColumnMajorInterleaved<2>`` after
``reorder_meta``): a branch-free, vectorised pass per row computes the kept
values and each group's 4-bit code ``idx0 | idx1 << 2``, the codes are packed
into the band's meta words in a small buffer, and the buffer is written out
in CUTLASS order, 64 (int8: 32) consecutive words per column pair, so the
stores are contiguous. Decoding runs the same steps backwards. Each row reports whether one of its groups
breaks the pattern (decoding: holds a code no encoder writes); the caller
then finds and names the first one.
"""

from __future__ import annotations

import numba
import numpy as np
from numba.extending import overload

from ._jit import Static, kernel

# kind -> (lane bits, lanes per group, codes per meta word, rows per band, row interweave)
SPECS = {
    "half": (16, 4, 4, 32, 4),  # float16 / bfloat16: meta int16
    "byte": (8, 4, 8, 16, 2),  # int8: meta int32
    "pair": (32, 2, 4, 32, 4),  # float32, 1:2: meta int16
}
# kind -> (group word, kept-pair item, meta word) unsigned dtypes
WORDS = {
    "half": (np.uint64, np.uint32, np.uint16),
    "byte": (np.uint32, np.uint16, np.uint32),
    "pair": (np.uint64, np.uint32, np.uint16),
}


def band_sources(band: int, interweave: int) -> tuple[np.ndarray, np.ndarray]:
    """Where each meta word of a band's column pair comes from.

    A band of ``band`` rows stores column pair ``jp`` of its meta as ``2 * band``
    consecutive words; word ``t`` holds meta ``(row band_start + src_row[t],
    column 2 * jp + src_col[t])``. This inverts torch's
    ``_calculate_meta_reordering_scatter_offsets``: rows ``i`` go to
    ``(i % 8) * interweave + (i % band) // 8``, then each 2 x 2 block of
    (row, column) is transposed, then storage is column-major in column pairs.
    """
    src_row = np.empty(2 * band, np.int64)
    src_col = np.empty(2 * band, np.int64)
    for t in range(2 * band):
        r, c = t // 2, t % 2
        if r % 2 == 1 and c == 0:
            r, c = r - 1, 1
        elif r % 2 == 0 and c == 1:
            r, c = r + 1, 0
        src_row[t] = (r % interweave) * 8 + r // interweave
        src_col[t] = c
    return src_row, src_col


def encode_row(words, values, codes, spec):
    """Inside a kernel: encode one row's groups; nonzero where a group breaks the pattern."""
    raise NotImplementedError("encode_row is only callable from a kernel")


def decode_row(values, codes, words, spec):
    """Inside a kernel: decode one row's groups; nonzero where a code is one no encoder writes."""
    raise NotImplementedError("decode_row is only callable from a kernel")


def _row_constants(spec):
    lane_bits = SPECS[spec.value][0]
    u64 = np.uint64
    lane_mask = u64((1 << lane_bits) - 1)
    # floats: the sign bit does not make a value non-zero (-0.0 == 0)
    nz = lane_mask if spec.value == "byte" else u64((1 << (lane_bits - 1)) - 1)
    return u64(lane_bits), lane_mask, nz


@overload(encode_row, inline="always")
def _ol_encode_row(words, values, codes, spec):
    u64 = np.uint64
    zero, one, two = u64(0), u64(1), u64(2)
    L, lane_mask, nz = _row_constants(spec)
    if SPECS[spec.value][1] == 4:

        def encode4(words, values, codes, spec):
            wrong = zero
            for g in range(words.shape[0]):
                w = u64(words[g])
                f0 = u64((w & nz) != zero)
                f1 = u64(((w >> L) & nz) != zero)
                f2 = u64(((w >> (L + L)) & nz) != zero)
                f3 = u64(((w >> (L + L + L)) & nz) != zero)
                n0 = one - f0
                n1 = one - f1
                i0 = (n0 & f1) | ((n0 & n1) << one)
                i1 = (f0 & f1) | (n0 & n1) | f3 | (((n0 & f1) | n1) << one)
                wrong |= u64(f0 + f1 + f2 + f3 > two)
                values[g] = ((w >> (i0 * L)) & lane_mask) | (((w >> (i1 * L)) & lane_mask) << L)
                codes[g] = i0 | (i1 << two)
            return wrong

        return encode4
    ten, fourteen = u64(10), u64(14)

    def encode2(words, values, codes, spec):
        wrong = zero
        for g in range(words.shape[0]):
            w = u64(words[g])
            f0 = u64((w & nz) != zero)
            f1 = u64(((w >> L) & nz) != zero)
            wrong |= f0 & f1
            values[g] = (w >> ((one - f0) * L)) & lane_mask
            codes[g] = fourteen - ten * f0
        return wrong

    return encode2


@overload(decode_row, inline="always")
def _ol_decode_row(values, codes, words, spec):
    u64 = np.uint64
    zero, one, two, three = u64(0), u64(1), u64(2), u64(3)
    L, lane_mask, _ = _row_constants(spec)
    if SPECS[spec.value][1] == 4:

        def decode4(values, codes, words, spec):
            wrong = zero
            for g in range(values.shape[0]):
                code = u64(codes[g])
                i0 = code & three
                i1 = code >> two
                wrong |= u64(i0 >= i1)
                v = u64(values[g])
                words[g] = ((v & lane_mask) << (i0 * L)) | ((v >> L) << (i1 * L))
            return wrong

        return decode4
    four, fourteen = u64(4), u64(14)

    def decode2(values, codes, words, spec):
        wrong = zero
        for g in range(values.shape[0]):
            code = u64(codes[g])
            second = u64(code == fourteen)
            wrong |= u64(code != four) & (one - second)
            words[g] = u64(values[g]) << (second * L)
        return wrong

    return decode2


def codes_per_word(spec):
    """Inside a kernel: how many 4-bit codes a meta word of this kind holds (a constant)."""
    raise NotImplementedError("codes_per_word is only callable from a kernel")


@overload(codes_per_word, inline="always")
def _ol_codes_per_word(spec):
    cpw = SPECS[spec.value][2]
    return lambda spec: cpw


# -- a band's meta words; `spec` is Static(kind), src_row / src_col from band_sources ----
@kernel(inline="always")
def _codes_to_words(codes, words, spec):
    # one row: 4-bit codes, little-endian into meta words
    cpw = codes_per_word(spec)
    for j in range(words.shape[0]):
        word = np.uint64(0)
        for q in range(cpw):
            word |= np.uint64(codes[cpw * j + q]) << (np.uint64(4) * np.uint64(q))
        words[j] = word


@kernel(inline="always")
def _words_to_codes(words, codes, spec):
    cpw = codes_per_word(spec)
    for j in range(words.shape[0]):
        word = np.uint64(words[j])
        for q in range(cpw):
            codes[cpw * j + q] = (word >> (np.uint64(4) * np.uint64(q))) & np.uint64(15)


@kernel(inline="always")
def _store_band(words, meta, b, rows, src_row, src_col):
    # words: (band, ncols) meta words of one band, row order -> CUTLASS order
    span = src_row.shape[0]
    for jp in range(words.shape[1] // 2):
        base = jp * rows * 2 + b * span
        for t in range(span):
            meta[base + t] = words[src_row[t], 2 * jp + src_col[t]]


@kernel(inline="always")
def _load_band(meta, words, b, rows, src_row, src_col):
    span = src_row.shape[0]
    for jp in range(words.shape[1] // 2):
        base = jp * rows * 2 + b * span
        for t in range(span):
            words[src_row[t], 2 * jp + src_col[t]] = meta[base + t]


@kernel(parallel=True)
def _encode(dense, values, meta, bad, spec, src_row, src_col):
    # dense: (rows, groups), a group per item; values: (rows, groups), the two
    # kept values (one for pairs) per item; meta: flat, CUTLASS order; bad: (rows,)
    band = src_row.shape[0] // 2
    cpw = codes_per_word(spec)
    rows, groups = dense.shape
    for b in numba.prange(rows // band):
        codes = np.empty(groups, np.uint8)
        words = np.empty((band, groups // cpw), meta.dtype)
        for r in range(band):
            i = b * band + r
            bad[i] = encode_row(dense[i], values[i], codes, spec) != 0
            _codes_to_words(codes, words[r], spec)
        _store_band(words, meta, b, rows, src_row, src_col)


@kernel(parallel=True)
def _decode(values, meta, dense, bad, spec, src_row, src_col):
    band = src_row.shape[0] // 2
    cpw = codes_per_word(spec)
    rows, groups = values.shape
    for b in numba.prange(rows // band):
        codes = np.empty(groups, np.uint8)
        words = np.empty((band, groups // cpw), meta.dtype)
        _load_band(meta, words, b, rows, src_row, src_col)
        for r in range(band):
            i = b * band + r
            _words_to_codes(words[r], codes, spec)
            bad[i] = decode_row(values[i], codes, dense[i], spec) != 0


@kernel(parallel=True)
def _pack(codes, meta, spec, src_row, src_col):
    band = src_row.shape[0] // 2
    cpw = codes_per_word(spec)
    rows, groups = codes.shape
    for b in numba.prange(rows // band):
        words = np.empty((band, groups // cpw), meta.dtype)
        for r in range(band):
            _codes_to_words(codes[b * band + r], words[r], spec)
        _store_band(words, meta, b, rows, src_row, src_col)


@kernel(parallel=True)
def _unpack(meta, codes, spec, src_row, src_col):
    band = src_row.shape[0] // 2
    cpw = codes_per_word(spec)
    rows, groups = codes.shape
    for b in numba.prange(rows // band):
        words = np.empty((band, groups // cpw), meta.dtype)
        _load_band(meta, words, b, rows, src_row, src_col)
        for r in range(band):
            _words_to_codes(words[r], codes[b * band + r], spec)


_SOURCES = {kind: band_sources(*SPECS[kind][3:]) for kind in SPECS}


def _launch_args(kind: str) -> tuple:
    """The compile-time kind and its band's word sources (a kernel's last three arguments)."""
    return (Static(kind), *_SOURCES[kind])


def _as_words(a: np.ndarray, word: type) -> np.ndarray:
    """``a`` (rows, cols) viewed as ``word`` items along its rows (copied if needed)."""
    a = np.ascontiguousarray(a)
    if a.ctypes.data % np.dtype(word).itemsize:
        a = a.copy()  # fresh allocations are aligned
    return a.view(word)


def encode(bits: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CUTLASS values and meta of ``bits``, the unsigned view of a dense (rows, cols) matrix.

    Returns ``(values, meta, bad_rows)``: values as unsigned items of the input
    width, (rows, cols / 2); meta as unsigned words (rows, ncols), CUTLASS
    order; a boolean per row, true where a group breaks the pattern (the
    outputs are then meaningless). The shape must satisfy the CUTLASS rules.
    """
    word, pair, meta_word = WORDS[kind]
    lanes, cpw = SPECS[kind][1:3]
    rows, cols = bits.shape
    groups = cols // lanes
    values = np.empty((rows, groups), pair)
    meta = np.empty(rows * (groups // cpw), meta_word)
    bad = np.zeros(rows, np.bool_)
    if bits.size:
        _encode(_as_words(bits, word), values, meta, bad, *_launch_args(kind))
    return values.view(bits.dtype).reshape(rows, cols // 2), meta.reshape(rows, -1), bad


def decode(values: np.ndarray, meta: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Dense bits (rows, 2 * values cols) from CUTLASS values and meta (unsigned views).

    Returns ``(dense, bad_rows)``; ``bad_rows`` marks rows whose meta holds a
    code that no encoder writes (``idx0 >= idx1``; pairs: not 0b0100 or 0b1110).
    """
    word, pair, meta_word = WORDS[kind]
    rows, half = values.shape
    groups = half * 2 // SPECS[kind][1]
    dense = np.empty((rows, groups), word)
    bad = np.zeros(rows, np.bool_)
    if values.size:
        flat = np.ascontiguousarray(meta).view(meta_word).reshape(-1)
        _decode(_as_words(values, pair), flat, dense, bad, *_launch_args(kind))
    return dense.view(values.dtype).reshape(rows, half * 2), bad


def pack_codes(codes: np.ndarray, kind: str) -> np.ndarray:
    """Meta words (rows, ncols), CUTLASS order, from 4-bit codes (rows, groups) uint8."""
    rows, groups = codes.shape
    meta = np.empty(rows * (groups // SPECS[kind][2]), WORDS[kind][2])
    if codes.size:
        _pack(np.ascontiguousarray(codes), meta, *_launch_args(kind))
    return meta.reshape(rows, -1)


def unpack_codes(meta: np.ndarray, kind: str) -> np.ndarray:
    """4-bit codes (rows, groups) uint8 from meta words (rows, ncols) in CUTLASS order."""
    rows, ncols = meta.shape
    codes = np.empty((rows, ncols * SPECS[kind][2]), np.uint8)
    if codes.size:
        flat = np.ascontiguousarray(meta).view(WORDS[kind][2]).reshape(-1)
        _unpack(flat, codes, *_launch_args(kind))
    return codes
