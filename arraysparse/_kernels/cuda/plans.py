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

from ..digits import pick_bucket
from .instances import INDEX, NM_SMALL_MAXM, name, unsigned

Array = Any

# -- launch geometry: the same on a GPU and in the emulation ------------------------------
#: Threads of a block, for the element-wise and grid-stride kernels.
BLOCK = 256
#: Most blocks of a grid-stride launch (enough to fill an H100/H200 several times over).
MAX_GRID = 4096
#: Items each thread of a grid-stride launch handles at least (fewer, fuller blocks).
ITEMS = 16
#: Items a block of the ordered passes (top-k's count_equal / keep_threshold, the row-major
#: compactions) covers: four tiles of a block.
CHUNK = 4 * BLOCK
#: Digit width of the top-k radix select (2048 bins of shared memory).
RADIX_BITS = 11
#: Digit width of the global select with one histogram per array (minimum / maximum sparsity).
CLAMP_DIGIT_BITS = 8
#: Most blocks of a histogram launch: each block adds its shared histogram to the global
#: one, so more blocks cost more global atomics than they save.
HIST_GRID = 512
#: Threads of radix_pick (eight buckets each).
PICK_BLOCK = 256
#: Rows of one CSC segment (a thread fills a column's segment).
CSC_SEGMENT = 256

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


def _blocks(items: int, per_block: int = BLOCK * ITEMS, cap: int | None = None) -> int:
    """Blocks of a grid-stride launch over ``items``: one per ``per_block`` items, at most
    ``cap`` (default :data:`MAX_GRID`, read at the call)."""
    return max(1, min(MAX_GRID if cap is None else cap, -(-items // per_block)))


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


# -- sparse formats: count -> scan -> fill ------------------------------------------------
# ``nz`` is the zero mask of the values' bits (floats: sign bits cleared, so -0.0 is zero).
# ``index`` is the index dtype's name, "int32" or "int64", decided by the format between
# the passes from the count.
OUT_INDICES, OUT_ROWS, OUT_INDPTR, OUT_DATA = 1, 2, 4, 8


@dataclass
class Chunks:
    """The first pass of a row-major compaction: per-chunk counts, their running totals, the total."""

    counts: Array
    ends: Array
    nnz: int


def _dummy(dev: Any, dtype: Any) -> Array:
    return dev.xp.empty(1, dtype=dtype)


def chunk_count(dev: Any, bits: Array, nz: int) -> Chunks:
    """Non-zeros per chunk of the flat ``bits`` and in all (one read-back: the total)."""
    xp = dev.xp
    flat = bits.reshape(-1)
    n = int(flat.size)
    nchunks = -(-n // CHUNK)
    counts = xp.zeros(max(nchunks, 1), dtype=np.uint64)
    if nchunks:
        dev.launch("sparse.cu", name("chunk_count", unsigned(flat.dtype)), nchunks, BLOCK,
                   (flat, _i64(n), flat.dtype.type(nz), _i64(CHUNK), counts))
    ends = xp.cumsum(counts)
    return Chunks(counts, ends, int(dev.host(ends[-1:])[0]))


def compact(dev: Any, bits: Array, nz: int, chunks: Chunks, index: str, outputs: int) -> dict[str, Array]:
    """The row-major non-zeros of the 2-D ``bits``: the ``outputs`` (OUT_* flags) asked for,
    as ``indices`` (columns), ``rows``, ``indptr`` (rows + 1) and ``data``."""
    xp = dev.xp
    rows, cols = bits.shape
    idt = np.dtype(index)
    nnz = chunks.nnz
    out = {
        "indices": xp.empty(nnz, dtype=idt) if outputs & OUT_INDICES else _dummy(dev, idt),
        "rows": xp.empty(nnz, dtype=idt) if outputs & OUT_ROWS else _dummy(dev, idt),
        "indptr": xp.empty(rows + 1, dtype=idt) if outputs & OUT_INDPTR else _dummy(dev, idt),
        "data": xp.empty(nnz, dtype=bits.dtype) if outputs & OUT_DATA else _dummy(dev, bits.dtype),
    }
    n = rows * cols
    if n:
        dev.launch(
            "sparse.cu", name("compact", unsigned(bits.dtype), INDEX[index]), -(-n // CHUNK), BLOCK,
            (bits.reshape(-1), _i64(rows), _i64(cols), bits.dtype.type(nz), _i64(CHUNK), chunks.counts, chunks.ends,
             np.int32(outputs), out["indices"], out["rows"], out["indptr"], out["data"]),
        )
    if outputs & OUT_INDPTR:
        if n == 0:
            out["indptr"][...] = 0
        out["indptr"][rows] = nnz
    return out


def encode_csr(dev: Any, bits: Array, nz: int, chunks: Chunks, index: str, coo: bool) -> tuple[Array, Array, Array]:
    """CSR's ``(indptr, indices, data)``, or with ``coo`` COO's ``(row, col, data)``."""
    flags = OUT_INDICES | OUT_DATA | (OUT_ROWS if coo else OUT_INDPTR)
    out = compact(dev, bits, nz, chunks, index, flags)
    return out["rows" if coo else "indptr"], out["indices"], out["data"]


def csc_count(dev: Any, bits: Array, nz: int) -> Chunks:
    """Non-zeros per (column, segment of rows), column-major, scanned: CSC's order."""
    xp = dev.xp
    rows, cols = bits.shape
    seg = max(CSC_SEGMENT, -(-rows // 65535))  # grid.y holds at most 65535 segments
    nseg = max(1, -(-rows // seg))
    counts = xp.zeros(max(cols * nseg, 1), dtype=np.uint64)
    if rows * cols:
        dev.launch("sparse.cu", name("csc_count", unsigned(bits.dtype)), (-(-cols // BLOCK), nseg), BLOCK,
                   (bits.reshape(-1), _i64(rows), _i64(cols), bits.dtype.type(nz), _i64(seg), counts))
    ends = xp.cumsum(counts)
    return Chunks(counts, ends, int(dev.host(ends[-1:])[0]))


def encode_csc(dev: Any, bits: Array, nz: int, chunks: Chunks, index: str) -> tuple[Array, Array, Array]:
    """CSC's ``(indptr, indices, data)``; ``indices`` are row numbers."""
    xp = dev.xp
    rows, cols = bits.shape
    idt = np.dtype(index)
    indptr = xp.empty(cols + 1, dtype=idt)
    indices = xp.empty(chunks.nnz, dtype=idt)
    data = xp.empty(chunks.nnz, dtype=bits.dtype)
    if rows * cols:
        seg = max(CSC_SEGMENT, -(-rows // 65535))
        nseg = -(-rows // seg)
        dev.launch(
            "sparse.cu", name("csc_fill", unsigned(bits.dtype), INDEX[index]), (-(-cols // BLOCK), nseg), BLOCK,
            (bits.reshape(-1), _i64(rows), _i64(cols), bits.dtype.type(nz), _i64(seg), chunks.counts, chunks.ends,
             indptr, indices, data),
        )
    else:
        indptr[...] = 0
    indptr[cols] = chunks.nnz
    return indptr, indices, data


@dataclass
class Blocks:
    """BSR's first pass: the (nbr, nbc) flags of the non-zero blocks, counted like a matrix."""

    flags: Array
    chunks: Chunks
    block: tuple[int, int]


def count_blocks(dev: Any, bits: Array, nz: int, block: tuple[int, int]) -> Blocks:
    rows, cols = bits.shape
    br, bc = block
    nbr, nbc = rows // br, cols // bc
    flags = dev.xp.empty((nbr, nbc), dtype=np.uint8)
    if nbr * nbc:
        dev.launch("sparse.cu", name("block_flags", unsigned(bits.dtype)), _blocks(nbr * nbc), BLOCK,
                   (bits.reshape(-1), _i64(cols), _i64(nbr), _i64(nbc), np.int32(br), np.int32(bc),
                    bits.dtype.type(nz), flags))
    return Blocks(flags, chunk_count(dev, flags, 0xFF), block)


def encode_bsr(dev: Any, bits: Array, blocks: Blocks, index: str) -> tuple[Array, Array, Array]:
    """BSR's ``(indptr, indices, data)``: the block list is the compaction of the flags."""
    cols = bits.shape[1]
    br, bc = blocks.block
    out = compact(dev, blocks.flags, 0xFF, blocks.chunks, index, OUT_INDICES | OUT_ROWS | OUT_INDPTR)
    nblocks = blocks.chunks.nnz
    data = dev.xp.empty((nblocks, br, bc), dtype=bits.dtype)
    if nblocks * br * bc:
        dev.launch(
            "sparse.cu", name("bsr_gather", unsigned(bits.dtype), INDEX[index]), _blocks(nblocks * br, BLOCK), BLOCK,
            (bits.reshape(-1), _i64(cols), np.int32(br), np.int32(bc), _i64(nblocks), out["rows"], out["indices"],
             data),
        )
    return out["indptr"], out["indices"], data


def encode_bitmask(dev: Any, bits: Array, nz: int) -> tuple[Array, Array, int]:
    """The bitmask format's ``(values, bitmask, nnz)``."""
    rows, cols = bits.shape
    row_bytes = -(-cols // 8)
    chunks = chunk_count(dev, bits, nz)
    values = compact(dev, bits, nz, chunks, "int64", OUT_DATA)["data"]
    mask = dev.xp.empty((rows, row_bytes), dtype=np.uint8)
    if rows * row_bytes:
        dev.launch("sparse.cu", name("bitmask_pack", unsigned(bits.dtype)), _blocks(rows * row_bytes), BLOCK,
                   (bits.reshape(-1), _i64(rows), _i64(cols), _i64(row_bytes), bits.dtype.type(nz), mask))
    return values, mask, chunks.nnz


def _index_c(a: Array) -> str:
    return INDEX[np.dtype(a.dtype).name]


def decode_compressed(dev: Any, fmt: str, arrays: dict[str, Array], shape2: tuple[int, int], bits_dtype: Any) -> Array:
    """Dense bits of a COO / CSR / CSC result (``arrays`` on the device, ``data`` as bits)."""
    rows, cols = shape2
    out = dev.xp.zeros(shape2, dtype=bits_dtype)
    data = arrays["data"]
    nnz = int(data.size)
    if nnz == 0:
        return out
    u = unsigned(np.dtype(bits_dtype))
    if fmt == "coo":
        row, col = arrays["row"], arrays["col"]
        dev.launch("sparse.cu", name("coo_scatter", u, _index_c(row)), _blocks(nnz), BLOCK,
                   (row, col, data, _i64(nnz), _i64(cols), out))
        return out
    indptr, indices = arrays["indptr"], arrays["indices"]
    lines = rows if fmt == "csr" else cols
    kernel = "csr_scatter" if fmt == "csr" else "csc_scatter"
    dev.launch("sparse.cu", name(kernel, u, _index_c(indptr)), _blocks(lines * 32, BLOCK), BLOCK,
               (indptr, indices, data, _i64(rows), _i64(cols), out))
    return out


def decode_bsr(dev: Any, arrays: dict[str, Array], shape2: tuple[int, int], bits_dtype: Any) -> Array:
    """Dense bits of a BSR result."""
    rows, cols = shape2
    data = arrays["data"]
    nblocks, br, bc = data.shape
    out = dev.xp.zeros(shape2, dtype=bits_dtype)
    if nblocks * br * bc:
        indptr = arrays["indptr"]
        dev.launch(
            "sparse.cu", name("bsr_scatter", unsigned(np.dtype(bits_dtype)), _index_c(indptr)),
            _blocks(nblocks * br * bc), BLOCK,
            (indptr, arrays["indices"], data.reshape(-1), _i64(rows // br), _i64(cols), np.int32(br), np.int32(bc),
             _i64(nblocks), out),
        )
    return out


def decode_bitmask(dev: Any, values: Array, mask: Array, shape2: tuple[int, int]) -> Array:
    """Dense bits of a bitmask result (every item written: no zeroing pass)."""
    xp = dev.xp
    rows, cols = shape2
    out = xp.empty(shape2, dtype=values.dtype)
    n = rows * cols
    if n == 0:
        return out
    row_bytes = int(mask.shape[1])
    nchunks = -(-n // CHUNK)
    counts = xp.empty(nchunks, dtype=np.uint64)
    dev.launch("sparse.cu", "asp::bitmask_count", nchunks, BLOCK,
               (mask, _i64(rows), _i64(cols), _i64(row_bytes), _i64(CHUNK), counts))
    ends = xp.cumsum(counts)
    dev.launch("sparse.cu", name("bitmask_scatter", unsigned(values.dtype)), nchunks, BLOCK,
               (mask, _i64(rows), _i64(cols), _i64(row_bytes), _i64(CHUNK), counts, ends,
                values if values.size else _dummy(dev, values.dtype), out))
    return out


# -- N:M with packed positions ------------------------------------------------------------
# ``lay`` is the format's PackedLayout (n, m, keep, position_bits, bitmask, group_bits,
# row_bytes(cols)).
_NO_BAD = np.iinfo(np.uint64).max


def nm_unit(group_bits: int) -> tuple[int, int]:
    """``(groups, bytes)`` of the smallest run of groups that fills whole bytes (a thread's unit)."""
    if group_bits == 0:
        return 1, 0
    per = 8 // np.gcd(group_bits, 8)
    return per, group_bits * per // 8


def _bad(dev: Any, bad: Array) -> int | None:
    v = int(dev.host(bad)[0])
    return None if v == _NO_BAD else v


def encode_nm(dev: Any, bits: Array, nz: int, lay: Any) -> tuple[Array, Array, tuple[int, int, int] | None]:
    """N:M's ``(values, packed_positions, violation)``; ``violation`` is ``(row, group,
    non-zeros)`` of the first group holding more than ``keep`` non-zeros, else None
    (then the outputs are meaningless)."""
    xp = dev.xp
    rows, cols = bits.shape
    groups = cols // lay.m
    row_bytes = lay.row_bytes(cols)
    values = xp.empty((rows, groups * lay.keep), dtype=bits.dtype)
    packed = xp.empty((rows, row_bytes), dtype=np.uint8)
    per, _ = nm_unit(lay.group_bits)
    units = rows * -(-groups // per)
    if units == 0:
        return values, packed, None
    bad = dev.upload(np.array([_NO_BAD], dtype=np.uint64))
    dev.launch(
        "nmpack.cu", name("nm_pack", unsigned(bits.dtype)), _blocks(units, BLOCK), BLOCK,
        (bits.reshape(-1), _i64(rows), _i64(cols), bits.dtype.type(nz), np.int32(lay.n), np.int32(lay.m),
         np.int32(lay.position_bits), np.int32(lay.bitmask), np.int32(lay.group_bits), np.int32(per),
         _i64(row_bytes), values.reshape(-1) if values.size else _dummy(dev, bits.dtype),
         packed.reshape(-1) if packed.size else _dummy(dev, np.uint8), bad),
    )
    v = _bad(dev, bad)
    if v is None:
        return values, packed, None
    flat, count = v >> 9, v & 511
    return values, packed, (flat // groups, flat % groups, count)


def _unpack(dev: Any, values: Array | None, packed: Array, shape2: tuple[int, int], lay: Any, bits_dtype: Any,
            dense: bool) -> tuple[Array, tuple[int, int] | None]:
    xp = dev.xp
    rows, cols = shape2
    groups = cols // lay.m
    if dense:
        out = xp.empty(shape2, dtype=bits_dtype)
        positions = _dummy(dev, np.uint8)
    else:
        out = _dummy(dev, bits_dtype)
        positions = xp.empty((rows, groups * lay.keep), dtype=np.uint8)
    per, _ = nm_unit(lay.group_bits)
    units = rows * -(-groups // per)
    if units == 0:
        return (out if dense else positions), None
    if values is None or values.size == 0:
        values = _dummy(dev, bits_dtype)
    bad = dev.upload(np.array([_NO_BAD], dtype=np.uint64))
    dev.launch(
        "nmpack.cu", name("nm_unpack", unsigned(np.dtype(bits_dtype))), _blocks(units, BLOCK), BLOCK,
        (values.reshape(-1), packed.reshape(-1) if packed.size else _dummy(dev, np.uint8), _i64(rows), _i64(cols),
         np.int32(lay.m), np.int32(lay.keep), np.int32(lay.position_bits), np.int32(lay.bitmask),
         np.int32(lay.group_bits), np.int32(per), _i64(lay.row_bytes(cols)), np.int32(dense), out.reshape(-1),
         positions.reshape(-1) if positions.size else positions, bad),
    )
    v = _bad(dev, bad)
    return (out if dense else positions), (None if v is None else divmod(v, groups))


def decode_nm(dev: Any, values: Array, packed: Array, shape2: tuple[int, int], lay: Any) -> tuple[Array, Any]:
    """Dense bits of an N:M result and ``(row, group)`` of the first corrupt group, or None."""
    return _unpack(dev, values, packed, shape2, lay, values.dtype, True)


def nm_positions(dev: Any, packed: Array, shape2: tuple[int, int], lay: Any) -> tuple[Array, Any]:
    """Each kept value's position (uint8) and ``(row, group)`` of the first corrupt group, or None."""
    return _unpack(dev, None, packed, shape2, lay, np.uint8, False)


# -- CUTLASS 2:4 --------------------------------------------------------------------------
# ``kind`` is the layout's kind ("half": float16 / bfloat16, "byte": int8, "pair": float32 1:2).
_CUTLASS = {  # kind -> (lane dtype, meta dtype, lanes a group, codes a meta word)
    "half": (np.uint16, np.uint16, 4, 4),
    "byte": (np.uint8, np.uint32, 4, 8),
    "pair": (np.uint32, np.uint16, 2, 4),
}


def _cutlass_name(kernel: str, kind: str) -> str:
    from .instances import CUTLASS_KINDS

    return name(kernel, CUTLASS_KINDS[kind])


def cutlass_encode(dev: Any, bits: Array, kind: str) -> tuple[Array, Array, tuple[int, int, int] | None]:
    """CUTLASS ``(values, meta, violation)`` of the dense lanes ``bits`` (rows, cols);
    ``violation`` is ``(row, group, non-zeros)`` of the first group with too many, else None."""
    xp = dev.xp
    lane, meta_t, lanes, cpw = _CUTLASS[kind]
    rows, cols = bits.shape
    groups = cols // lanes
    values = xp.empty((rows, cols // 2), dtype=lane)
    meta = xp.empty((rows, groups // cpw), dtype=meta_t)
    if values.size == 0 or meta.size == 0:
        return values, meta, None
    bad = dev.upload(np.array([_NO_BAD], dtype=np.uint64))
    dev.launch("cutlass.cu", _cutlass_name("cutlass_encode", kind), _blocks(meta.size, BLOCK), BLOCK,
               (bits.reshape(-1), _i64(rows), _i64(cols), values.reshape(-1), meta.reshape(-1), bad))
    v = _bad(dev, bad)
    if v is None:
        return values, meta, None
    flat, count = v >> 3, v & 7
    return values, meta, (flat // groups, flat % groups, count)


def cutlass_decode(dev: Any, values: Array, meta: Array, kind: str) -> tuple[Array, tuple[int, int, int] | None]:
    """The dense lanes of CUTLASS ``values`` and ``meta`` (unsigned views) and ``(row, group,
    code)`` of the first code no encoder writes, else None."""
    lane, meta_t, lanes, cpw = _CUTLASS[kind]
    rows, half = values.shape
    cols = 2 * half
    groups = cols // lanes
    dense = dev.xp.empty((rows, cols), dtype=lane)
    if dense.size == 0:
        return dense, None
    bad = dev.upload(np.array([_NO_BAD], dtype=np.uint64))
    dev.launch("cutlass.cu", _cutlass_name("cutlass_decode", kind), _blocks(meta.size, BLOCK), BLOCK,
               (values.reshape(-1), meta.reshape(-1), _i64(rows), _i64(cols), dense.reshape(-1), bad))
    v = _bad(dev, bad)
    if v is None:
        return dense, None
    flat, code = v >> 4, v & 15
    return dense, (flat // groups, flat % groups, code)


def cutlass_pack_codes(dev: Any, codes: Array, kind: str) -> Array:
    """Meta words (rows, groups / codes a word) in CUTLASS order from 4-bit codes (uint8)."""
    _, meta_t, _, cpw = _CUTLASS[kind]
    rows, groups = codes.shape
    meta = dev.xp.empty((rows, groups // cpw), dtype=meta_t)
    if meta.size:
        dev.launch("cutlass.cu", _cutlass_name("cutlass_pack_codes", kind), _blocks(meta.size, BLOCK), BLOCK,
                   (codes.reshape(-1), _i64(rows), _i64(groups), meta.reshape(-1)))
    return meta


def cutlass_unpack_codes(dev: Any, meta: Array, kind: str) -> Array:
    """4-bit codes (rows, groups) uint8 from meta words in CUTLASS order."""
    _, _, _, cpw = _CUTLASS[kind]
    rows, ncols = meta.shape
    codes = dev.xp.empty((rows, ncols * cpw), dtype=np.uint8)
    if codes.size:
        dev.launch("cutlass.cu", _cutlass_name("cutlass_unpack_codes", kind), _blocks(meta.size, BLOCK), BLOCK,
                   (meta.reshape(-1), _i64(rows), _i64(ncols * cpw), codes.reshape(-1)))
    return codes


# -- norms --------------------------------------------------------------------------------
def _norm_args(ord: float) -> tuple:
    is_max = ord == float("inf")
    return np.float64(1.0 if is_max else float(ord)), np.int32(is_max)


def slice_norms(dev: Any, bits: Array, dtype: str, shape3: tuple[int, int, int], ord: float) -> Array:
    """float64 norm of every ``x[:, a, :]`` of the (outer, count, inner) view (not empty)."""
    from .instances import NORM_DTYPES

    outer, count, inner = shape3
    out = dev.xp.empty(count, dtype=np.float64)
    dev.launch("norms.cu", name("slice_norms", NORM_DTYPES[dtype]), _blocks(count, 1), BLOCK,
               (bits.reshape(-1), _i64(outer), _i64(count), _i64(inner), *_norm_args(ord), out))
    return out


def block_norms(dev: Any, bits: Array, dtype: str, shape5: tuple[int, ...], ord: float) -> Array:
    """float64 norm of every tile ``x[q, i, :, j, :]`` of the (lead, n1, b1, n2, b2) view."""
    from .instances import NORM_DTYPES

    lead, n1, b1, n2, b2 = shape5
    out = dev.xp.empty((lead, n1, n2), dtype=np.float64)
    if out.size:
        dev.launch("norms.cu", name("block_norms", NORM_DTYPES[dtype]), _blocks(out.size, BLOCK), BLOCK,
                   (bits.reshape(-1), *map(_i64, shape5), *_norm_args(ord), out.reshape(-1)))
    return out


# -- the global threshold over many arrays ------------------------------------------------


def find_threshold(
    dev: Any, loads: list[Any], keys: Keys, k: int, lo: list[int] | None, hi: list[int] | None
) -> tuple[int, list[int], list[int], list[int]]:
    """The global threshold key of the arrays ``loads[i]()`` gives (flat key bits, one array
    at a time: a widened copy lives only while it is histogrammed) and, per array, the
    counts of keys below and equal to it, and of NaN values.

    Without bounds the threshold is the ``k``-th smallest key of all arrays together and
    the counts come back as one total each (lists of one). With bounds it is the smallest
    key ``T`` with ``sum_t clip(count_t(key <= T), lo_t, hi_t) >= k`` and the counts are
    per array: the CPU kernels' rule (arraysparse/_kernels/cpu/global_select.py), whose
    answer does not depend on the digit width. One histogram launch per array and digit;
    the small histograms are read back between digits.
    """
    xp = dev.xp
    per_array = lo is not None
    count = len(loads)
    digit = CLAMP_DIGIT_BITS if per_array else RADIX_BITS
    base = np.zeros(count if per_array else 1, np.int64)
    equal = base.copy()
    nans = xp.zeros(count, dtype=np.uint64)
    prefix, pmask, need = 0, 0, k
    lo_a = np.asarray(lo, np.int64) if per_array else None
    hi_a = np.asarray(hi, np.int64) if per_array else None
    nan_counts = [0] * count
    for level, (shift, dbits) in enumerate(radix_levels(8 * keys.width, digit)):
        nbins = 1 << dbits
        hist = xp.zeros((count if per_array else 1, nbins), dtype=np.uint64)
        state = _state(dev, prefix, pmask)
        for i, load in enumerate(loads):
            bits = load()
            row = hist[i if per_array else 0]
            if bits.size:
                _histogram(dev, bits, keys, state, shift, dbits, level == 0, row, nans[i : i + 1])
            del bits
        if level == 0:
            nan_counts = [int(v) for v in dev.host(nans)]
            if any(nan_counts):
                return 0, [], [], nan_counts
        h = dev.host(hist).astype(np.int64)
        bucket, base, equal, need = pick_bucket(h, base, equal, need, k, lo_a, hi_a)
        prefix |= bucket << shift
        pmask |= (nbins - 1) << shift
    return prefix, [int(v) for v in base], [int(v) for v in equal], nan_counts


def count_below(dev: Any, bits: Array, keys: Keys, threshold: int) -> tuple[int, int]:
    """``(keys below threshold, keys equal to it)`` of the flat key bits."""
    n = int(bits.size)
    out = dev.xp.zeros(2, dtype=np.uint64)
    if n:
        mode, magnitude, _ = keys.args()
        dev.launch("select.cu", name("count_below", unsigned(keys.width)), _blocks(n), BLOCK,
                   (bits, _i64(n), mode, magnitude, _state(dev, threshold), out))
    less, equal = (int(v) for v in dev.host(out))
    return less, equal


def keep_above(dev: Any, bits: Array, keys: Keys, threshold: int, prune_equal: int) -> Array:
    """Keep-mask ``key > threshold``, of the keys equal to it keeping all but the first
    ``prune_equal`` (index order); keys below it are pruned."""
    n = int(bits.size)
    out = dev.xp.empty(n, dtype=dev.xp.bool_)
    if n:
        keep_threshold(dev, bits, keys, _state(dev, threshold, (1 << (8 * keys.width)) - 1, prune_equal), out)
    return out
