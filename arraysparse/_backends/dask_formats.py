"""The Dask backend of the sparse formats: compress and decode band by band.

A matrix is cut into **bands**: row bands (every column in one chunk) for
COO, CSR, BSR (band heights a multiple of the block's), ELL, N:M and the
bitmask; column bands for CSC and DIA. One task encodes one band with the
seam's own codecs on its NumPy chunk (the host kernels), so every band's
arrays are exactly the slice of the whole matrix's arrays that it covers.
The bands' arrays are concatenated lazily:

* entries (``indices``, ``data``, COO's ``row`` / ``col``, the bitmask's
  ``values``) have one chunk per band, of unknown length until computed;
* ``indptr`` has a first chunk ``[0]`` and then one chunk per band: the
  band's own ``indptr[1:]`` plus the band's offset, the exclusive scan of
  the bands' counts (a small task over one integer per band);
* fixed-shape arrays (N:M ``values`` and ``packed_positions``, ELL, the
  bitmask's ``bitmask``, DIA's ``data``) have the bands' known shapes.

Nothing is computed to build CSR, COO, CSC, BSR, N:M, 2:4 or the bitmask,
except when the index dtype is not decided by the shape alone (more than
``INDEX32_LIMIT`` elements in a matrix whose sides fit): then the bands are
counted first (one integer per band reaches the client). ELL computes the
bands' row counts first (its width is the longest row); DIA computes the
set of its diagonals first (one pass; the offsets, at most ``rows + cols - 1``
integers, reach the client), then fills ``data`` by column bands.

Decoding is lazy and band by band as well. A result in the bands this
module writes decodes as it is; arrays chunked otherwise (a store's chunks)
are put back in bands first, which reads the band boundaries (``indptr`` at
the bands' edges, the bitmask's row counts, COO's rows: a small compute).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import Any

import dask
import dask.array as da
import numpy as np
from dask import delayed

from .dask import check
from .shared import Violation

Array = Any


# -- bands ----------------------------------------------------------------------------------
def row_bands(x2: Array, multiple: int = 1) -> Array:
    """``x2`` with every column in one chunk and row chunks a multiple of ``multiple``."""
    check(x2, "x")
    if x2.numblocks[1] > 1:
        x2 = x2.rechunk({0: "auto", 1: -1})
    if any(c % multiple for c in x2.chunks[0]):
        x2 = x2.rechunk({0: max(multiple, max(x2.chunks[0]) // multiple * multiple)})
    return x2


def col_bands(x2: Array) -> Array:
    """``x2`` with every row in one chunk."""
    check(x2, "x")
    if x2.numblocks[0] > 1:
        x2 = x2.rechunk({0: -1, 1: "auto"})
    return x2


def _heights(length: int, line_bytes: int) -> tuple[int, ...]:
    """Band heights of about Dask's chunk size (``array.chunk-size``) for lines of ``line_bytes``."""
    target = dask.utils.parse_bytes(dask.config.get("array.chunk-size"))
    per = max(1, target // max(1, line_bytes))
    return tuple(min(per, length - s) for s in range(0, length, per)) or (0,)


def _starts(sizes: tuple[int, ...]) -> list[int]:
    return np.concatenate(([0], np.cumsum(sizes))).astype(int).tolist()


def _concat(parts: list[Any], shapes: list[tuple], dtype: Any, axis: int = 0) -> Array:
    """The delayed ``parts`` (of ``shapes``; NaN for unknown) as one dask array along ``axis``."""
    dtype = np.dtype(dtype)
    arrays = [
        da.from_delayed(p, s, dtype=dtype, meta=np.empty((0,) * len(s), dtype)) for p, s in zip(parts, shapes)
    ]
    return arrays[0] if len(arrays) == 1 else da.concatenate(arrays, axis=axis)


def _get(task: Any, i: int) -> Any:
    return delayed(operator.getitem, pure=True)(task, i)


def _exclusive(*counts: int) -> np.ndarray:
    return np.concatenate(([0], np.cumsum(counts, dtype=np.int64)[:-1])).astype(np.int64)


def _shift(first: np.ndarray, offsets: Any, b: int) -> np.ndarray:
    return (first.astype(np.int64) + int(offsets[b])).astype(first.dtype)


def _indptr(tails: list[Any], sizes: tuple[int, ...], counts: list[Any] | list[int], index: str) -> Array:
    """Global ``indptr``: ``[0]``, then each band's local ``indptr[1:]`` plus its offset."""
    offsets = _exclusive(*counts) if counts and isinstance(counts[0], int) else delayed(_exclusive)(*counts)
    parts = [delayed(_shift, pure=True)(t, offsets, b) for b, t in enumerate(tails)]
    zero = da.zeros(1, dtype=np.dtype(index), chunks=1)
    return da.concatenate([zero, _concat(parts, [(s,) for s in sizes], index)])


class Bands:
    """The state a dask count hands to its encode: the banded matrix and the job on each band.

    ``counts`` holds the bands' exact counts once taken (:func:`count_exactly`).
    """

    def __init__(self, x2: Array, job: str, block: tuple[int, int] = (1, 1)):
        self.x2 = x2
        self.job = job  # "rows", "cols", "blocks"
        self.block = block
        self.counts: list[int] | None = None

    @property
    def axis(self) -> int:
        return 1 if self.job == "cols" else 0

    def blocks(self) -> list[Any]:
        return self.x2.to_delayed().ravel().tolist()


# -- COO, CSR, CSC, BSR ---------------------------------------------------------------------
def _count_band(band: np.ndarray, job: str, block: tuple[int, int]) -> int:
    from . import count_blocks, count_cols, count_rows

    if job == "rows":
        return count_rows(np, band).nnz
    if job == "cols":
        return count_cols(np, band).nnz
    return count_blocks(np, band, block).nnz


def count(x2: Array, job: str, block: tuple[int, int] = (1, 1)) -> tuple[int, Bands]:
    """``(bound, bands)``: an upper bound of the count (it decides the index dtype when it fits
    int32) and the bands; nothing is computed."""
    rows, cols = (int(s) for s in x2.shape)
    if job == "cols":
        return rows * cols, Bands(col_bands(x2), job)
    if job == "blocks":
        br, bc = block
        return (rows // br) * (cols // bc), Bands(row_bands(x2, br), job, block)
    return rows * cols, Bands(row_bands(x2), job)


def count_exactly(bands: Bands) -> int:
    """Count every band (eager: one integer per band reaches the client); the total."""
    parts = [delayed(_count_band, pure=True)(b, bands.job, bands.block) for b in bands.blocks()]
    bands.counts = [int(c) for c in dask.compute(*parts)]
    return sum(bands.counts)


def _encode_band(band: np.ndarray, job: str, block: tuple[int, int], index: str, coo: bool, start: int) -> tuple:
    """``(count, first, indices, data)`` of one band: ``first`` is the local ``indptr[1:]`` (or
    COO's row numbers, shifted by the band's first row ``start``)."""
    from . import count_blocks, count_cols, count_rows, encode_bsr, encode_csc, encode_csr

    if job == "rows":
        counted = count_rows(np, band)
        first, indices, data = encode_csr(counted, index, coo=coo)
    elif job == "cols":
        counted = count_cols(np, band)
        first, indices, data = encode_csc(counted, index)
    else:
        counted = count_blocks(np, band, block)
        first, indices, data = encode_bsr(counted, index)
    if coo:
        first = (first.astype(np.int64) + start).astype(first.dtype)
    else:
        first = first[1:]
    return counted.nnz, first, indices, data


def encode(bands: Bands, index: str, *, coo: bool = False) -> tuple[Array, Array, Array]:
    """CSR / COO / CSC / BSR arrays of the bands, lazily (see the module docstring)."""
    x2 = bands.x2
    dtype = x2.dtype
    sizes = x2.chunks[bands.axis]
    starts = _starts(sizes)
    tasks = [
        delayed(_encode_band, pure=True)(b, bands.job, bands.block, index, coo, starts[i])
        for i, b in enumerate(bands.blocks())
    ]
    counts = bands.counts or [_get(t, 0) for t in tasks]
    known = bands.counts is not None
    lengths = [(c if known else math.nan) for c in (bands.counts or sizes)]
    entries = [(n,) for n in lengths]
    indices = _concat([_get(t, 2) for t in tasks], entries, index)
    if bands.job == "blocks":
        br, bc = bands.block
        data = _concat([_get(t, 3) for t in tasks], [(n, br, bc) for n in lengths], dtype)
        heights = tuple(s // br for s in sizes)
    else:
        data = _concat([_get(t, 3) for t in tasks], entries, dtype)
        heights = sizes
    if coo:
        return _concat([_get(t, 1) for t in tasks], entries, index), indices, data
    return _indptr([_get(t, 1) for t in tasks], heights, counts, index), indices, data


def _band_pointers(indptr: Array, parts: int) -> list[tuple[Any, Any]] | None:
    """``(previous chunk, own chunk)`` of ``indptr`` for each of ``parts`` bands, when ``indptr``
    is chunked as :func:`encode` writes it (``[0]``, then one chunk per band)."""
    if indptr.numblocks[0] != parts + 1 or indptr.chunks[0][0] != 1:
        return None
    blocks = indptr.to_delayed().ravel().tolist()
    return [(blocks[b], blocks[b + 1]) for b in range(parts)]


def _decode_band(
    fmt: str, previous: np.ndarray, ends: np.ndarray, indices: np.ndarray, data: np.ndarray,
    shape2: tuple[int, int], block: tuple[int, int], dtype: Any,
) -> np.ndarray:
    from . import decode_bsr, decode_compressed

    start = int(previous[-1])
    if int(ends[-1] if ends.size else start) - start != data.shape[0] or indices.shape[0] != data.shape[0]:
        msg = (
            f"a band of this {fmt.upper()} result holds {data.shape[0]} entries where indptr gives "
            f"{int(ends[-1] if ends.size else start) - start}; its arrays are not in the same bands"
        )
        raise ValueError(msg)
    local = np.concatenate(([start], ends)).astype(np.int64) - start
    arrays = {"indptr": local.astype(indices.dtype), "indices": indices, "data": data}
    if fmt == "bsr":
        return decode_bsr(np, arrays, shape2, block, dtype)
    return decode_compressed(np, fmt, arrays, shape2, dtype)


def _rebanded(indptr: Array, entries: list[Array], bands: tuple[int, ...]) -> tuple[Array, list[Array]]:
    """``indptr`` and the entry arrays put in the bands ``bands`` (heights): reads ``indptr`` at
    the bands' edges (eager, one integer per band) and the entries' chunk sizes if unknown."""
    edges = _starts(bands)
    at = np.asarray(indptr[np.asarray(edges)].compute(), np.int64)
    out = []
    for e in entries:
        if _unknown(e):
            e = e.compute_chunk_sizes()
        out.append(e.rechunk({0: tuple(int(v) for v in np.diff(at))}))
    indptr = indptr.rechunk({0: (1, *bands)})
    return indptr, out


def decode_compressed(fmt: str, arrays: dict, shape2: tuple[int, int], dtype: Any, block: tuple[int, int]) -> Array:
    """Dense matrix of a CSR / CSC / BSR result, band by band; COO by the rows of its chunks."""
    if fmt == "coo":
        return _decode_coo(arrays, shape2, dtype)
    rows, cols = shape2
    indptr, indices, data = arrays["indptr"], arrays["indices"], arrays["data"]
    for name, a in arrays.items():
        if name != "indptr" and a.ndim > 1 and any(n > 1 for n in a.numblocks[1:]):
            arrays[name] = a.rechunk({ax: -1 for ax in range(1, a.ndim)})
    indices, data = arrays["indices"], arrays["data"]
    parts = data.numblocks[0]
    pointers = _band_pointers(indptr, parts) if indices.numblocks[0] == parts else None
    if pointers is None:
        length = rows // block[0] if fmt == "bsr" else (cols if fmt == "csc" else rows)
        line = (rows if fmt == "csc" else cols * block[0]) * np.dtype(dtype).itemsize
        heights = _heights(length, line)
        indptr, (indices, data) = _rebanded(indptr, [indices, data], heights)
        parts = len(heights)
        pointers = _band_pointers(indptr, parts)
    sizes = indptr.chunks[0][1:]
    idx = indices.to_delayed().ravel().tolist()
    dat = data.to_delayed().ravel().tolist()
    tasks, shapes = [], []
    for b in range(parts):
        if fmt == "csc":
            band = (rows, sizes[b])
        elif fmt == "bsr":
            band = (sizes[b] * block[0], cols)
        else:
            band = (sizes[b], cols)
        prev, own = pointers[b]
        tasks.append(delayed(_decode_band, pure=True)(fmt, prev, own, idx[b], dat[b], band, block, dtype))
        shapes.append(band)
    return _concat(tasks, shapes, dtype, axis=1 if fmt == "csc" else 0)


def _unknown(a: Array) -> bool:
    return any(isinstance(c, float) and math.isnan(c) for c in a.chunks[0])


def _row_range(row: np.ndarray) -> tuple[int, int]:
    return (int(row[0]), int(row[-1])) if row.size else (-1, -1)


def _decode_coo_band(rows_of: tuple[int, int], cols: int, dtype: Any, *chunks: np.ndarray) -> np.ndarray:
    from . import decode_compressed

    r0, r1 = rows_of
    k = len(chunks) // 3
    row = np.concatenate(chunks[:k]).astype(np.int64) - r0
    col = np.concatenate(chunks[k : 2 * k])
    data = np.concatenate(chunks[2 * k :])
    arrays = {"row": row.astype(col.dtype), "col": col, "data": data}
    return decode_compressed(np, "coo", arrays, (r1 - r0, cols), dtype)


def _decode_coo(arrays: dict, shape2: tuple[int, int], dtype: Any) -> Array:
    """COO is in row-major order: each chunk's first and last row are read (eager), chunks that
    share a row decode together, and every band of rows runs to the next chunk's first row."""
    rows, cols = shape2
    row, col, data = arrays["row"], arrays["col"], arrays["data"]
    if not row.numblocks[0] == col.numblocks[0] == data.numblocks[0]:  # put them in row's chunks
        row, col, data = (a.compute_chunk_sizes() if _unknown(a) else a for a in (row, col, data))
        col, data = col.rechunk({0: row.chunks[0]}), data.rechunk({0: row.chunks[0]})
    r_blocks = row.to_delayed().ravel().tolist()
    ranges = dask.compute(*[delayed(_row_range, pure=True)(b) for b in r_blocks])
    groups: list[list[int]] = []
    last = -1
    for i, (first, end) in enumerate(ranges):
        if first < 0:
            continue
        if groups and first <= last:
            groups[-1].append(i)
        else:
            groups.append([i])
        last = end
    c_blocks, d_blocks = col.to_delayed().ravel().tolist(), data.to_delayed().ravel().tolist()
    tasks, shapes = [], []
    edges = [ranges[g[0]][0] for g in groups]
    edges = [0, *edges[1:], rows] if groups else [0, rows]
    for n, g in enumerate(groups or [[]]):
        r0, r1 = edges[n], edges[n + 1]
        parts = [r_blocks[i] for i in g] + [c_blocks[i] for i in g] + [d_blocks[i] for i in g]
        if not g:
            parts = [np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.dtype(dtype))]
        tasks.append(delayed(_decode_coo_band, pure=True)((r0, r1), cols, dtype, *parts))
        shapes.append((r1 - r0, cols))
    return _concat(tasks, shapes, dtype)


# -- ELL --------------------------------------------------------------------------------------
def _lengths_band(band: np.ndarray) -> tuple[int, int, int]:
    from . import count_row_lengths

    counted = count_row_lengths(np, band)
    return counted.nnz, counted.longest, counted.first_longest


def count_row_lengths(x2: Array) -> tuple[int, int, int, Bands]:
    """``(nnz, longest, first_longest, bands)``: eager, three integers per band reach the client."""
    bands = Bands(row_bands(x2), "rows")
    found = dask.compute(*[delayed(_lengths_band, pure=True)(b) for b in bands.blocks()])
    starts = _starts(bands.x2.chunks[0])
    bands.counts = [f[0] for f in found]
    longest, first = 0, 0
    for s, (_, long_b, first_b) in zip(starts, found):
        if long_b > longest:
            longest, first = long_b, s + first_b
    return sum(bands.counts), longest, first, bands


def _ell_band(band: np.ndarray, width: int, index: str) -> tuple:
    from . import count_row_lengths, encode_ell

    return encode_ell(count_row_lengths(np, band), width, index)


def encode_ell(bands: Bands, width: int, index: str) -> tuple[Array, Array]:
    tasks = [delayed(_ell_band, pure=True)(b, width, index) for b in bands.blocks()]
    shapes = [(s, width) for s in bands.x2.chunks[0]]
    indices = _concat([_get(t, 0) for t in tasks], shapes, index)
    return indices, _concat([_get(t, 1) for t in tasks], shapes, bands.x2.dtype)


def _rows_aligned(arrays: list[Array]) -> list[Array]:
    """The arrays (one row per matrix row) in the first one's row chunks, trailing axes whole."""
    first = arrays[0].rechunk({ax: -1 for ax in range(1, arrays[0].ndim)})
    out = [first]
    for a in arrays[1:]:
        out.append(a.rechunk({0: first.chunks[0], **{ax: -1 for ax in range(1, a.ndim)}}))
    return out


def _ell_decode_band(indices: np.ndarray, data: np.ndarray, cols: int, dtype: Any) -> np.ndarray:
    from . import decode_ell

    return decode_ell(np, {"indices": indices, "data": data}, (indices.shape[0], cols), dtype)


def decode_ell(arrays: dict, shape2: tuple[int, int], dtype: Any) -> Array:
    indices, data = _rows_aligned([arrays["indices"], arrays["data"]])
    return da.map_blocks(
        _ell_decode_band, indices, data, shape2[1], np.dtype(dtype),
        chunks=(indices.chunks[0], (shape2[1],)), dtype=dtype, meta=np.empty((0, 0), dtype),
    )


# -- N:M --------------------------------------------------------------------------------------
def _worded(v: Violation, row0: int, word: Callable[[Violation], Exception] | None) -> Exception:
    v = Violation(row0 + v.row, v.group, v.found)
    return v if word is None else word(v)


def _nm_band(band: np.ndarray, lay: Any, start: int, word: Any) -> tuple:
    from . import encode_nm

    try:
        return encode_nm(np, band, lay)
    except Violation as v:
        raise _worded(v, start, word) from None


def encode_nm(x2: Array, lay: Any, word: Callable[[Violation], Exception] | None) -> tuple[Array, Array]:
    """Lazy N:M ``(values, packed_positions)`` by row bands; a group breaking the pattern
    raises ``word(violation)`` (global row) when its band is computed."""
    x2 = row_bands(x2)
    cols = int(x2.shape[1])
    starts = _starts(x2.chunks[0])
    tasks = [
        delayed(_nm_band, pure=True)(b, lay, starts[i], word) for i, b in enumerate(x2.to_delayed().ravel().tolist())
    ]
    kept = cols // lay.m * lay.keep
    values = _concat([_get(t, 0) for t in tasks], [(s, kept) for s in x2.chunks[0]], x2.dtype)
    packed = _concat([_get(t, 1) for t in tasks], [(s, lay.row_bytes(cols)) for s in x2.chunks[0]], np.uint8)
    return values, packed


def _nm_decode_band(
    values: np.ndarray, packed: np.ndarray, cols: int, lay: Any, dtype: Any, word: Any, block_info: Any = None
) -> np.ndarray:
    from . import decode_nm

    try:
        return decode_nm(np, {"values": values, "packed_positions": packed}, (values.shape[0], cols), lay, dtype)
    except Violation as v:
        raise _worded(v, block_info[0]["array-location"][0][0], word) from None


def decode_nm(arrays: dict, shape2: tuple[int, int], lay: Any, dtype: Any, word: Any) -> Array:
    values, packed = _rows_aligned([arrays["values"], arrays["packed_positions"]])
    return da.map_blocks(
        _nm_decode_band, values, packed, shape2[1], lay, np.dtype(dtype), word,
        chunks=(values.chunks[0], (shape2[1],)), dtype=dtype, meta=np.empty((0, 0), dtype),
    )


def _positions_band(packed: np.ndarray, cols: int, lay: Any, word: Any, block_info: Any = None) -> np.ndarray:
    from . import unpack_nm_positions

    try:
        return np.asarray(unpack_nm_positions(np, packed, (packed.shape[0], cols), lay))
    except Violation as v:
        raise _worded(v, block_info[0]["array-location"][0][0], word) from None


def unpack_nm_positions(packed: Array, shape2: tuple[int, int], lay: Any, word: Any) -> Array:
    (packed,) = _rows_aligned([packed])
    kept = shape2[1] // lay.m * lay.keep
    return packed.map_blocks(
        _positions_band, shape2[1], lay, word, chunks=(packed.chunks[0], (kept,)), dtype=np.uint8,
        meta=np.empty((0, 0), np.uint8),
    )


# -- bitmask ----------------------------------------------------------------------------------
def _bitmask_band(band: np.ndarray) -> tuple:
    from . import encode_bitmask

    values, bits, _ = encode_bitmask(np, band)
    return values, bits


def encode_bitmask(x2: Array) -> tuple[Array, Array, None]:
    """Lazy ``(values, bitmask, None)`` by row bands (the count is the result's to compute)."""
    x2 = row_bands(x2)
    tasks = [delayed(_bitmask_band, pure=True)(b) for b in x2.to_delayed().ravel().tolist()]
    nbytes = (int(x2.shape[1]) + 7) // 8
    values = _concat([_get(t, 0) for t in tasks], [(math.nan,)] * len(tasks), x2.dtype)
    bits = _concat([_get(t, 1) for t in tasks], [(s, nbytes) for s in x2.chunks[0]], np.uint8)
    return values, bits, None


def _popcount(bits: np.ndarray) -> int:
    return int(np.unpackbits(bits).sum())


def _bitmask_decode_band(bits: np.ndarray, values: np.ndarray, cols: int, dtype: Any) -> np.ndarray:
    from . import decode_bitmask

    if _popcount(bits) != values.shape[0]:
        msg = (
            f"a band of this bitmask result has {_popcount(bits)} bits set and {values.shape[0]} values; "
            "its arrays are not in the same bands"
        )
        raise ValueError(msg)
    return decode_bitmask(np, {"values": values, "bitmask": bits}, (bits.shape[0], cols), dtype)


def decode_bitmask(arrays: dict, shape2: tuple[int, int], dtype: Any) -> Array:
    (bits,) = _rows_aligned([arrays["bitmask"]])
    values = arrays["values"]
    if values.numblocks[0] != bits.numblocks[0]:  # put the values in the bitmask's bands
        counts = dask.compute(*[delayed(_popcount, pure=True)(b) for b in bits.to_delayed().ravel().tolist()])
        if _unknown(values):
            values = values.compute_chunk_sizes()
        values = values.rechunk({0: tuple(int(c) for c in counts)})
    vals = values.to_delayed().ravel().tolist()
    tasks = [
        delayed(_bitmask_decode_band, pure=True)(b, v, shape2[1], np.dtype(dtype))
        for b, v in zip(bits.to_delayed().ravel().tolist(), vals)
    ]
    return _concat(tasks, [(s, shape2[1]) for s in bits.chunks[0]], dtype)


# -- DIA --------------------------------------------------------------------------------------
def _diagonals(chunk: np.ndarray, row0: int, col0: int) -> tuple[np.ndarray, int]:
    from .bridge import Host
    from .host_formats import _bits

    u, mask = _bits(Host.of(chunk))
    r, c = np.nonzero(u & mask)
    return np.unique((c + col0) - (r + row0)), r.shape[0]


def _union(*parts: tuple[np.ndarray, int]) -> tuple[np.ndarray, int]:
    return np.unique(np.concatenate([p[0] for p in parts])), sum(p[1] for p in parts)


def _dia_band(band: np.ndarray, offsets: np.ndarray, col0: int) -> np.ndarray:
    from .bridge import Host
    from .host_formats import _bits

    h = Host.of(band)
    u, mask = _bits(h)
    r, c = np.nonzero(u & mask)
    data = np.zeros((offsets.shape[0], band.shape[1]), u.dtype)
    data[np.searchsorted(offsets, (c + col0) - r), c] = u[r, c]
    return np.asarray(h.wrap_values(data))


def encode_dia(x2: Array, index: str) -> tuple[Array, Array, int]:
    """DIA: the diagonals are found first (eager: one pass, the offsets reach the client), then
    ``data`` is filled lazily by column bands."""
    from .dask import _tree

    check(x2, "x")
    starts = [_starts(c) for c in x2.chunks]
    parts = [
        delayed(_diagonals, pure=True)(b, starts[0][i], starts[1][j])
        for (i, j), b in zip(np.ndindex(*x2.numblocks), x2.to_delayed().ravel().tolist())
    ]
    offsets, nnz = dask.compute(_tree(parts, _union))[0]
    offsets = offsets.astype(np.dtype(index))
    x2 = col_bands(x2)
    col_starts = _starts(x2.chunks[1])
    tasks = [
        delayed(_dia_band, pure=True)(b, offsets, col_starts[j]) for j, b in enumerate(x2.to_delayed().ravel().tolist())
    ]
    data = _concat(tasks, [(offsets.shape[0], s) for s in x2.chunks[1]], x2.dtype, axis=1)
    return da.from_array(offsets, chunks=-1), data, int(nnz)


def _dia_decode_band(data: np.ndarray, offsets: np.ndarray, rows: int, cols: int, col0: int) -> np.ndarray:
    width = data.shape[1]
    out = np.zeros((rows, width), data.dtype)
    for k, o in enumerate(np.asarray(offsets).tolist()):
        j = np.arange(max(0, o, col0), min(cols, rows + o, col0 + width))
        out[j - o, j - col0] = data[k, j - col0]
    return out


def decode_dia(arrays: dict, shape2: tuple[int, int], dtype: Any) -> Array:
    rows, cols = shape2
    data = arrays["data"].rechunk({0: -1})
    offsets = arrays["offsets"]
    offsets = offsets.rechunk(-1).to_delayed().ravel()[0] if hasattr(offsets, "to_delayed") else offsets
    col_starts = _starts(data.chunks[1])
    tasks = [
        delayed(_dia_decode_band, pure=True)(b, offsets, rows, cols, col_starts[j])
        for j, b in enumerate(data.to_delayed().ravel().tolist())
    ]
    return _concat(tasks, [(rows, s) for s in data.chunks[1]], dtype, axis=1)


# -- counts -----------------------------------------------------------------------------------
def _count_block(block: np.ndarray) -> int:
    from . import count_nonzero

    return count_nonzero(np, block) if block.size else 0


def count_nonzero(values: Array) -> int:
    """Non-zeros among a result's stored values: eager, one integer per chunk reaches the client."""
    return int(sum(dask.compute(*[delayed(_count_block, pure=True)(b) for b in values.to_delayed().ravel().tolist()])))


# -- CUTLASS 2:4 ------------------------------------------------------------------------------
# CUTLASS stores its meta column-major in pairs of columns over the whole matrix: the
# (rows, ncols) meta is, in memory, G of shape (ncols / 2, rows, 2) (column pair, interleaved
# row, column of the pair), and its row interleave stays inside bands of ``lay.band`` rows.
# A band of rows [s, e) (s, e multiples of ``lay.band``) therefore encodes to G[:, s:e, :]
# exactly, but its own (h, ncols) meta is a row slice of the whole matrix's only when
# ncols == 2: for wider matrices every meta row chunk gathers pieces of several bands (and
# decoding a band gathers pieces of several meta chunks). The values are row-local.
def _pieces(flat_ranges: list[tuple[int, int]], parts: list[tuple[int, np.ndarray]]) -> np.ndarray:
    """The global flat ranges ``[lo, hi)`` gathered from ``parts`` ``(global start, flat piece)``."""
    out = []
    for lo, hi in flat_ranges:
        for start, flat in parts:
            end = start + flat.shape[0]
            if start < hi and end > lo:
                out.append(flat[max(lo, start) - start : min(hi, end) - start])
    return np.concatenate(out) if out else np.zeros(0, parts[0][1].dtype)


def _pair_rows(f0: int, f1: int, rows: int) -> list[tuple[int, int, int]]:
    """``(pair, first row, end row)`` of G held by the global flat range ``[f0, f1)`` (even bounds)."""
    out = []
    for p in range(f0 // (2 * rows), (f1 - 1) // (2 * rows) + 1 if f1 > f0 else 0):
        lo, hi = max(f0, p * 2 * rows) - p * 2 * rows, min(f1, (p + 1) * 2 * rows) - p * 2 * rows
        out.append((p, lo // 2, hi // 2))
    return out


def _meta_rows(a: int, b: int, rows: int, ncols: int, starts: list[int], *bands: np.ndarray) -> np.ndarray:
    """Rows ``[a, b)`` of the whole meta from band metas (``starts``: their first rows)."""
    parts = []
    for s, band in zip(starts, bands):
        g = band.reshape(-1)
        h = band.shape[0]
        parts += [(p * 2 * rows + 2 * s, g[p * 2 * h : (p + 1) * 2 * h]) for p in range(ncols // 2)]
    parts.sort(key=lambda t: t[0])
    return _pieces([(a * ncols, b * ncols)], parts).reshape(b - a, ncols)


def _assemble_meta(tasks: list[Any], sizes: tuple[int, ...], ncols: int, dtype: Any) -> Array:
    """The whole meta, in the bands' row chunks, from the bands' delayed metas."""
    rows = sum(sizes)
    starts = _starts(sizes)
    out = []
    for a, b in zip(starts, starts[1:]):
        need = sorted(
            {int(k) for _, lo, hi in _pair_rows(a * ncols, b * ncols, rows)
             for k in range(np.searchsorted(starts, lo, "right") - 1, np.searchsorted(starts, hi, "left"))}
        )
        job = delayed(_meta_rows, pure=True)
        out.append(job(a, b, rows, ncols, [starts[k] for k in need], *[tasks[k] for k in need]))
    return _concat(out, [(s, ncols) for s in sizes], dtype)


def _band_meta(s: int, e: int, rows: int, ncols: int, starts: list[int], *chunks: np.ndarray) -> np.ndarray:
    """The own (e - s, ncols) meta of the band of rows ``[s, e)``, from whole-meta row chunks."""
    parts = [(m * ncols, c.reshape(-1)) for m, c in zip(starts, chunks)]
    ranges = [(p * 2 * rows + 2 * s, p * 2 * rows + 2 * e) for p in range(ncols // 2)]
    return _pieces(ranges, parts).reshape(e - s, ncols)


def _band_metas(meta: Array, sizes: tuple[int, ...]) -> list[Any]:
    """Each band's own meta (delayed), for bands of rows of heights ``sizes``."""
    rows, ncols = (int(s) for s in meta.shape)
    meta = meta.rechunk({1: -1})
    mstarts = _starts(meta.chunks[0])
    blocks = meta.to_delayed().ravel().tolist()
    out = []
    starts = _starts(sizes)
    for s, e in zip(starts, starts[1:]):
        need = set()
        for p in range(ncols // 2):
            lo, hi = p * 2 * rows + 2 * s, p * 2 * rows + 2 * e
            first, last = lo // ncols, (hi - 1) // ncols
            need.update(range(np.searchsorted(mstarts, first, "right") - 1, np.searchsorted(mstarts, last, "right")))
        need_l = sorted(int(k) for k in need)
        job = delayed(_band_meta, pure=True)
        out.append(job(s, e, rows, ncols, [mstarts[k] for k in need_l], *[blocks[k] for k in need_l]))
    return out


def _cutlass_job(job: str, lay: Any, start: int, word: Any, *args: np.ndarray) -> Any:
    """One band through the seam's host CUTLASS codec; a violation names its global row."""
    from . import cutlass_decode, cutlass_encode, cutlass_pack, cutlass_pack_nm, cutlass_unpack

    try:
        if job == "encode":
            return cutlass_encode(np, args[0], lay)
        if job == "decode":
            return cutlass_decode(np, args[0], args[1], lay)
        if job == "pack":
            return cutlass_pack(np, args[0], lay)
        if job == "pack_nm":
            return cutlass_pack_nm(np, args[0], lay)
        return cutlass_unpack(np, args[0], lay)
    except Violation as v:
        raise _worded(v, start, word) from None


def cutlass_encode(dense: Array, lay: Any, word: Any) -> tuple[Array, Array]:
    """Lazy ``(values, meta)``: each band of rows (a multiple of ``lay.band``) is encoded by one
    task; the values are its rows, the meta rows are gathered from the bands' metas."""
    x2 = row_bands(dense, lay.band)
    rows, cols = (int(s) for s in x2.shape)
    sizes = x2.chunks[0]
    starts = _starts(sizes)
    tasks = [
        delayed(_cutlass_job, pure=True)("encode", lay, starts[i], word, b)
        for i, b in enumerate(x2.to_delayed().ravel().tolist())
    ]
    values = _concat([_get(t, 0) for t in tasks], [(s, cols // 2) for s in sizes], x2.dtype)
    ncols = cols // lay.cols_per_word
    return values, _assemble_meta([_get(t, 1) for t in tasks], sizes, ncols, np.dtype(lay.meta))


def _packed(src: Array, job: str, lay: Any, word: Any, ncols: int) -> Array:
    """Meta from the row-local ``src`` (positions, or a 2:4 result's packed positions)."""
    src = row_bands(src, lay.band)
    starts = _starts(src.chunks[0])
    tasks = [
        delayed(_cutlass_job, pure=True)(job, lay, starts[i], word, b)
        for i, b in enumerate(src.to_delayed().ravel().tolist())
    ]
    return _assemble_meta(tasks, src.chunks[0], ncols, np.dtype(lay.meta))


def cutlass_pack(positions: Array, lay: Any, word: Any) -> Array:
    return _packed(positions, "pack", lay, word, 2 * int(positions.shape[1]) // lay.cols_per_word)


def cutlass_pack_nm(packed: Array, lay: Any, word: Any) -> Array:
    return _packed(packed, "pack_nm", lay, word, 2 * int(packed.shape[1]) // lay.codes_per_word)


def cutlass_decode(values: Array, meta: Array, lay: Any, word: Any) -> Array:
    """Lazy dense matrix by bands of rows (a multiple of ``lay.band``); each band's meta is
    gathered from the meta's row chunks first."""
    values = row_bands(values, lay.band)
    check(meta, "meta")
    sizes = values.chunks[0]
    starts = _starts(sizes)
    metas = _band_metas(meta, sizes)
    tasks = [
        delayed(_cutlass_job, pure=True)("decode", lay, starts[i], word, b, metas[i])
        for i, b in enumerate(values.to_delayed().ravel().tolist())
    ]
    return _concat(tasks, [(s, 2 * int(values.shape[1])) for s in sizes], values.dtype)


def cutlass_unpack(meta: Array, lay: Any, word: Any) -> Array:
    """Lazy positions (uint8) by bands of rows (a multiple of ``lay.band``)."""
    check(meta, "meta")
    rows, ncols = (int(s) for s in meta.shape)
    sizes = _heights(rows // lay.band, ncols * meta.dtype.itemsize * lay.band)
    sizes = tuple(s * lay.band for s in sizes)
    starts = _starts(sizes)
    tasks = [
        delayed(_cutlass_job, pure=True)("unpack", lay, starts[i], word, m)
        for i, m in enumerate(_band_metas(meta, sizes))
    ]
    half = ncols * lay.cols_per_word // 2
    return _concat(tasks, [(s, half) for s in sizes], np.uint8)
