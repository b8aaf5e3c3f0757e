"""The CUDA backend: CuPy arrays and CUDA torch tensors through the CUDA kernels, on their device.

Each job opens a :func:`session` on the device of its arrays (the caller's
device and stream current: torch's current stream for torch tensors, CuPy's
for CuPy arrays), views the arrays through :func:`.bridge.device_view`
(DLPack, no copy; bfloat16 as its 16-bit words), runs a launch plan of
:mod:`arraysparse._kernels.cuda.plans` and hands the results back with
:func:`.bridge.wrap_device` in the caller's library, dtype and device. Nothing
goes through the host but the counts a plan reads back to size its outputs
(and the NaN count every selection reports).

The seam (:mod:`arraysparse._backends`) sends a job here only when its arrays
are device arrays and a kernel exists for it and their dtype
(:func:`supports_keys`, :func:`supports_norms`; the codecs move items of up
to 8 bytes); the jobs without one (ELL, DIA, SparseGPT, calibration,
complex128 formats) run the standard-only code on the device. Importing this module imports neither CuPy nor a kernel
module.

The test suite replaces :func:`session` with one whose device is the host
emulation of the kernels (:mod:`arraysparse._kernels.cuda.emulate`), so this
module, the plans and the kernels run end to end on machines without a GPU.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from . import bridge
from .shared import Violation, nm_group_positions

Array = Any

_UNSIGNED = {1: "uint8", 2: "uint16", 4: "uint32", 8: "uint64"}


def dtype_name(x: Array) -> str:
    """``x``'s dtype by name, the same for every library (``"bfloat16"``, ``"float32"``, ``"bool"``)."""
    return str(x.dtype).removeprefix("torch.")


def supports_keys(*arrays: Array) -> bool:
    """Whether the selection kernels rank these arrays' dtypes (real floats of 16 to 64 bits,
    integers; float8 and the like run the reference)."""
    return all(dtype_name(a) in _KEY_SPACE for a in arrays)


class Session:
    """One job on one device: the launch device, the way in and the way out."""

    def __init__(self, dev: Any, view: Callable[[Array], Any], wrap: Callable[..., Array]):
        self.dev = dev
        self._view = view
        self._wrap = wrap

    @property
    def xp(self) -> Any:
        return self.dev.xp

    def bits(self, x: Array) -> Any:
        """``x`` on the device as C-contiguous unsigned integers of its item width (a view
        where it is contiguous already)."""
        v = self.xp.ascontiguousarray(self._view(x))
        return v.view(_UNSIGNED[v.dtype.itemsize])

    def array(self, x: Array) -> Any:
        """``x`` (an index or byte array of a result) on the device, C-contiguous."""
        return self.xp.ascontiguousarray(self._view(x))

    def back(self, a: Any, like: Array, dtype: Any = None) -> Array:
        """A plan's result as an array of ``like``'s library (``dtype`` reinterprets the bits)."""
        return self._wrap(a, like, dtype)


@contextmanager
def session(x: Array) -> Iterator[Session]:
    """The session of a job on ``x``'s device (replaced by the tests' emulated one)."""
    from .._kernels.cuda import loader

    with loader.session(x) as dev:
        yield Session(dev, bridge.device_view, bridge.wrap_device)


def _keys(x: Array, magnitude: bool) -> Any:
    from .._kernels.cuda.plans import Keys

    return Keys.of(dtype_name(x), magnitude)


def _as_3d(shape: tuple[int, ...], axis: int) -> tuple[int, int, int]:
    return math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1 :])


# -- NaN count, selection -----------------------------------------------------------------
def count_nan(x: Array) -> int:
    """Number of NaN values in ``x`` (0 for integer dtypes)."""
    from .._kernels.cuda import plans

    if not dtype_name(x).startswith(("float", "bfloat")):
        return 0
    with session(x) as s:
        return plans.nan_count(s.dev, s.bits(x), _keys(x, False))


def topk_keep(x: Array, n_prune: int, magnitude: bool) -> tuple[Array, int]:
    """``(keep, nan_count)``: the keep-mask pruning ``n_prune`` smallest values."""
    from .._kernels.cuda import plans

    with session(x) as s:
        keep, nans = plans.topk_keep(s.dev, s.bits(x), n_prune, _keys(x, magnitude))
        return s.back(keep.reshape(tuple(x.shape)), x), nans


def nm_keep(x: Array, n: int, m: int, axis: int, magnitude: bool) -> tuple[Array, int]:
    """``(keep, nan_count)``: ``n`` zeros in each group of ``m`` along ``axis``."""
    from .._kernels.cuda import plans

    with session(x) as s:
        bits = s.bits(x)
        keep, nans = plans.nm_keep(s.dev, bits, _as_3d(tuple(x.shape), axis), n, m, _keys(x, magnitude))
        return s.back(keep.reshape(tuple(x.shape)), x), nans


# -- formats: count, encode, decode -------------------------------------------------------
def zero_mask(dtype: str, width: int) -> int:
    """``bits & zero_mask != 0`` exactly for the non-zero values of ``dtype`` (floats clear
    their sign bits, so -0.0 is a zero, as in scipy.sparse and on the host)."""
    if dtype.startswith(("float", "bfloat")) and "fnuz" not in dtype:  # fnuz: 0x80 is NaN, not -0.0
        return (1 << (8 * width - 1)) - 1
    if dtype.startswith("complex"):
        half = (1 << (4 * width - 1)) - 1
        return half | half << (4 * width)
    return (1 << (8 * width)) - 1


def _values(s: Session, x: Array) -> tuple[Any, int]:
    bits = s.bits(x)
    return bits, zero_mask(dtype_name(x), bits.dtype.itemsize)


def count_nonzero(values: Array) -> int:
    """Non-zeros among ``values``."""
    from .._kernels.cuda import plans

    with session(values) as s:
        bits, nz = _values(s, values)
        return plans.chunk_count(s.dev, bits, nz).nnz


def count_rows(x2: Array) -> tuple[int, Any]:
    """``(nnz, state)``: CSR / COO's first pass, the non-zeros per chunk of the row-major items."""
    from .._kernels.cuda import plans

    with session(x2) as s:
        bits, nz = _values(s, x2)
        chunks = plans.chunk_count(s.dev, bits, nz)
        return chunks.nnz, (x2, bits, nz, chunks)


def encode_csr(counted: Any, index: str, *, coo: bool) -> tuple[Array, Array, Array]:
    """``(indptr, indices, data)``, or with ``coo`` ``(row, col, data)``."""
    from .._kernels.cuda import plans

    x2, bits, nz, chunks = counted.state
    with session(x2) as s:
        first, indices, data = plans.encode_csr(s.dev, bits, nz, chunks, index, coo)
        return s.back(first, x2), s.back(indices, x2), s.back(data, x2, x2.dtype)


def count_cols(x2: Array) -> tuple[int, Any]:
    """``(nnz, state)``: CSC's first pass, per column and segment of rows."""
    from .._kernels.cuda import plans

    with session(x2) as s:
        bits, nz = _values(s, x2)
        chunks = plans.csc_count(s.dev, bits, nz)
        return chunks.nnz, (x2, bits, nz, chunks)


def encode_csc(counted: Any, index: str) -> tuple[Array, Array, Array]:
    """CSC's ``(indptr, indices, data)``."""
    from .._kernels.cuda import plans

    x2, bits, nz, chunks = counted.state
    with session(x2) as s:
        out = plans.encode_csc(s.dev, bits, nz, chunks, index)
        return s.back(out[0], x2), s.back(out[1], x2), s.back(out[2], x2, x2.dtype)


def count_blocks(x2: Array, br: int, bc: int) -> tuple[int, Any]:
    """``(nblocks, state)``: BSR's first pass, the flags of the blocks holding a non-zero."""
    from .._kernels.cuda import plans

    with session(x2) as s:
        bits, nz = _values(s, x2)
        blocks = plans.count_blocks(s.dev, bits, nz, (br, bc))
        return blocks.chunks.nnz, (x2, bits, blocks)


def encode_bsr(counted: Any, index: str) -> tuple[Array, Array, Array]:
    """BSR's ``(indptr, indices, data)``."""
    from .._kernels.cuda import plans

    x2, bits, blocks = counted.state
    with session(x2) as s:
        out = plans.encode_bsr(s.dev, bits, blocks, index)
        return s.back(out[0], x2), s.back(out[1], x2), s.back(out[2], x2, x2.dtype)


def encode_bitmask(x2: Array) -> tuple[Array, Array, int]:
    """The bitmask format's ``(values, bitmask, nnz)``."""
    from .._kernels.cuda import plans

    with session(x2) as s:
        bits, nz = _values(s, x2)
        values, mask, nnz = plans.encode_bitmask(s.dev, bits, nz)
        return s.back(values, x2, x2.dtype), s.back(mask, x2), nnz


def _unsigned_of(dtype: Any) -> np.dtype:
    return np.dtype(_UNSIGNED[dtype.itemsize])


def decode_compressed(fmt: str, arrays: dict, shape2: tuple[int, int], dtype: Any) -> Array:
    """Dense 2-D array of a COO / CSR / CSC result, of ``dtype`` (the caller's)."""
    from .._kernels.cuda import plans

    like = arrays["data"]
    with session(like) as s:
        views = {k: (s.bits(a) if k == "data" else s.array(a)) for k, a in arrays.items()}
        out = plans.decode_compressed(s.dev, fmt, views, shape2, _unsigned_of(dtype))
        return s.back(out, like, dtype)


def decode_bsr(arrays: dict, shape2: tuple[int, int], dtype: Any) -> Array:
    """Dense 2-D array of a BSR result."""
    from .._kernels.cuda import plans

    like = arrays["data"]
    with session(like) as s:
        views = {k: (s.bits(a) if k == "data" else s.array(a)) for k, a in arrays.items()}
        return s.back(plans.decode_bsr(s.dev, views, shape2, _unsigned_of(dtype)), like, dtype)


def decode_bitmask(arrays: dict, shape2: tuple[int, int], dtype: Any) -> Array:
    """Dense 2-D array of a bitmask result."""
    from .._kernels.cuda import plans

    like = arrays["values"]
    with session(like) as s:
        out = plans.decode_bitmask(s.dev, s.bits(like), s.array(arrays["bitmask"]), shape2)
        return s.back(out, like, dtype)


# -- N:M ----------------------------------------------------------------------------------
def encode_nm(x2: Array, lay: Any) -> tuple[Array, Array]:
    """N:M's ``(values, packed_positions)``; :class:`.shared.Violation` (row, group, non-zeros)."""
    from .._kernels.cuda import plans

    with session(x2) as s:
        bits, nz = _values(s, x2)
        values, packed, bad = plans.encode_nm(s.dev, bits, nz, lay)
        if bad is not None:
            raise Violation(*bad)
        return s.back(values, x2, x2.dtype), s.back(packed, x2)


def _corrupt(s: Session, packed: Any, where: tuple[int, int], lay: Any) -> Violation:
    """The Violation of a corrupt group, worded from its row's bytes (read back: an error path)."""
    r, g = where
    row = s.dev.host(packed[r])
    return Violation(r, g, nm_group_positions(lambda j: int(row[j]), g, lay))


def decode_nm(arrays: dict, shape2: tuple[int, int], lay: Any, dtype: Any) -> Array:
    """Dense 2-D array of an N:M result; :class:`.shared.Violation` (row, group, positions)."""
    from .._kernels.cuda import plans

    like = arrays["values"]
    with session(like) as s:
        packed = s.array(arrays["packed_positions"])
        out, bad = plans.decode_nm(s.dev, s.bits(like), packed, shape2, lay)
        if bad is not None:
            raise _corrupt(s, packed, bad, lay)
        return s.back(out, like, dtype)


def unpack_nm_positions(packed: Array, shape2: tuple[int, int], lay: Any) -> Array:
    """Each kept value's position (uint8); :class:`.shared.Violation` as :func:`decode_nm`."""
    from .._kernels.cuda import plans

    with session(packed) as s:
        p = s.array(packed)
        positions, bad = plans.nm_positions(s.dev, p, shape2, lay)
        if bad is not None:
            raise _corrupt(s, p, bad, lay)
        return s.back(positions, packed)


# -- CUTLASS 2:4 --------------------------------------------------------------------------
# ``lay`` is the format's layout record; shapes, dtypes and meta are checked. Codes are
# checked and turned into positions by the reference's standard functions, run on the
# device arrays (as the host runs them on its NumPy views).
# Every CUTLASS codec takes ``(xp, *arrays, lay)``, as the reference's; ``xp`` (the caller's
# library) gives the meta dtype, and decode/unpack, whose results follow their input, ignore it.
def cutlass_encode(xp: Any, dense: Array, lay: Any) -> tuple[Array, Array]:
    """``(values, meta)``; :class:`.shared.Violation` (row, group, non-zeros)."""
    from .._kernels.cuda import plans

    with session(dense) as s:
        values, meta, bad = plans.cutlass_encode(s.dev, s.bits(dense), lay.kind)
        if bad is not None:
            raise Violation(*bad)
        return s.back(values, dense, dense.dtype), s.back(meta, dense, getattr(xp, lay.meta))


def cutlass_decode(xp: Any, values: Array, meta: Array, lay: Any) -> Array:
    """The dense matrix; :class:`.shared.Violation` (row, group, code)."""
    from .._kernels.cuda import plans

    with session(values) as s:
        dense, bad = plans.cutlass_decode(s.dev, s.bits(values), s.bits(meta), lay.kind)
        if bad is not None:
            raise Violation(*bad)
        return s.back(dense, values, values.dtype)


def cutlass_pack(xp: Any, positions: Array, lay: Any) -> Array:
    """Meta from the simple layout's ``positions``; :class:`.shared.Violation` (row, group, positions)."""
    from .._compat import array_namespace
    from .._kernels.cuda import plans
    from . import reference_formats

    with session(positions) as s:
        p = s.array(positions)
        cxp = array_namespace(positions=p)
        codes = reference_formats.cutlass_codes(cxp, cxp.astype(p, cxp.int32), lay)
        meta = plans.cutlass_pack_codes(s.dev, s.xp.ascontiguousarray(codes.astype("uint8")), lay.kind)
        return s.back(meta, positions, getattr(xp, lay.meta))


def cutlass_pack_nm(xp: Any, packed: Array, lay: Any) -> Array:
    """Meta from a 2:4 result's ``packed_positions`` (its nibbles are the codes);
    :class:`.shared.Violation` (row, group, code)."""
    from .._kernels.cuda import plans

    with session(packed) as s:
        p = s.array(packed)
        rows, nbytes = p.shape
        codes = s.xp.empty((rows, 2 * nbytes), dtype="uint8")
        codes[:, 0::2] = p & 15
        codes[:, 1::2] = p >> 4
        bad = (codes & 3) >= (codes >> 2)  # idx0 < idx1, as cutlass_check_codes
        if codes.size and bool(bad.any()):
            r, g = divmod(int(bad.reshape(-1).argmax()), codes.shape[1])
            raise Violation(r, g, int(codes[r, g]))
        return s.back(plans.cutlass_pack_codes(s.dev, codes, lay.kind), packed, getattr(xp, lay.meta))


def cutlass_unpack(xp: Any, meta: Array, lay: Any) -> Array:
    """The simple layout's ``positions`` (uint8) from CUTLASS meta; :class:`.shared.Violation`
    (row, group, code)."""
    from .._compat import array_namespace
    from .._kernels.cuda import plans
    from . import reference_formats

    with session(meta) as s:
        codes = plans.cutlass_unpack_codes(s.dev, s.bits(meta), lay.kind)
        cxp = array_namespace(codes=codes)
        c32 = cxp.astype(codes, cxp.int32)
        if codes.size:
            reference_formats.cutlass_check_codes(cxp, c32, lay)
        return s.back(reference_formats.cutlass_positions(cxp, c32, lay), meta)


# -- norms --------------------------------------------------------------------------------
def supports_norms(x: Array) -> bool:
    """Whether the norm kernels read ``x``'s dtype (real floats and integers)."""
    from .._kernels.cuda.instances import NORM_DTYPES

    return dtype_name(x) in NORM_DTYPES


def slice_norms(x: Array, axis: int, ord: float) -> Array:
    """float64 Lp norm of each slice along ``axis``; ``x`` is not empty."""
    from .._kernels.cuda import plans

    with session(x) as s:
        out = plans.slice_norms(s.dev, s.bits(x), dtype_name(x), _as_3d(tuple(x.shape), axis), ord)
        return s.back(out, x)


def block_norms(x: Array, block: tuple[int, ...], ord: float) -> Array:
    """float64 Lp norm of each tile of shape ``block`` (one or two trailing axes); not empty."""
    from .._kernels.cuda import plans

    shape = tuple(x.shape)
    b1, b2 = (1, *block) if len(block) == 1 else block
    rows = shape[-2] if len(block) == 2 else 1
    cols = shape[-1]
    lead = shape[: len(shape) - len(block)]
    shape5 = (math.prod(lead), rows // b1, b1, cols // b2, b2)
    out_shape = lead + tuple(n // b for n, b in zip(shape[len(shape) - len(block) :], block))
    with session(x) as s:
        out = plans.block_norms(s.dev, s.bits(x), dtype_name(x), shape5, ord)
        return s.back(out.reshape(out_shape), x)


# -- the global threshold over many arrays ------------------------------------------------
_KEY_SPACE = {  # dtype -> (key width, kind) after the CPU's exact widening (keys.py's _WIDEN)
    "float16": (4, "f"), "bfloat16": (4, "f"), "float32": (4, "f"), "float64": (8, "f"),
    "int8": (4, "i"), "int16": (4, "i"), "int32": (4, "i"), "int64": (8, "i"),
    "uint8": (4, "u"), "uint16": (4, "u"), "uint32": (4, "u"), "uint64": (8, "u"),
}
_SPACE_DTYPE = {(4, "f"): "float32", (8, "f"): "float64", (4, "i"): "int32", (8, "i"): "int64",
                (4, "u"): "uint32", (8, "u"): "uint64"}


def _key_bits(s: Session, x: Array, space: str) -> Any:
    """``x`` flat on the device as the bits of the key space's dtype ``space`` (a view when it
    is ``x``'s own dtype, else an exact widening, or float64 for mixed spaces)."""
    xp = s.xp
    name = dtype_name(x)
    bits = s.bits(x).reshape(-1)
    if name == space:
        return bits
    if name == "bfloat16":  # its bits are the high half of a float32's
        wide = (bits.astype("uint32") << 16).view("float32")
    else:
        wide = bits.view(name)
    return xp.ascontiguousarray(wide.astype(space)).view(_UNSIGNED[8 if space.endswith("64") else 4])


def global_keep(
    arrays: list[Array], k: int, lo: list[int], hi: list[int], magnitude: bool, on_nan: Callable[[int, int], None]
) -> list[tuple[Array, int, int]]:
    """``(keep, pruned, unclamped)`` per array, by one radix select over all arrays at once
    (as :func:`.host.global_keep`: ties to earlier arrays, then lower indices)."""
    from .._kernels.cuda import plans
    from .shared import resolve_counts

    spaces = {_KEY_SPACE[dtype_name(a)] for a in arrays}
    space = _SPACE_DTYPE[next(iter(spaces))] if len(spaces) == 1 else "float64"
    keys = plans.Keys.of(space, magnitude)
    sizes = [math.prod(tuple(a.shape)) for a in arrays]
    with session(arrays[0]) as s:

        def load(i: int) -> Any:
            return _key_bits(s, arrays[i], space)

        def own_topk(i: int, p: int) -> Any:
            keep, nans = plans.topk_keep(s.dev, load(i), p, keys)
            if nans:
                on_nan(i, nans)
            return keep

        def back(i: int, keep: Any) -> Array:
            return s.back(keep.reshape(tuple(arrays[i].shape)), arrays[i])

        loads = [lambda i=i: load(i) for i in range(len(arrays))]
        bounded = any(lo) or any(h < n for h, n in zip(hi, sizes))
        if k <= sum(lo) or k >= sum(hi):  # every array at one of its bounds
            counts, cut = (lo, [0] * len(sizes)) if k <= sum(lo) else (hi, sizes)
            return [(back(i, own_topk(i, p)), p, cut[i]) for i, p in enumerate(counts)]
        everything = range(len(arrays))
        if not bounded:
            threshold, less_total, _, nans = plans.find_threshold(s.dev, loads, keys, k, None, None)
            _raise_first_nan(nans, on_nan)
            remaining = k - less_total[0]
            out = []
            for i in everything:
                bits = load(i)
                less, equal = plans.count_below(s.dev, bits, keys, threshold)
                j = min(equal, remaining)  # ties: earlier arrays, then lower indices, first
                remaining -= j
                out.append((back(i, plans.keep_above(s.dev, bits, keys, threshold, j)), less + j, less + j))
            return out
        threshold, less, equal, nans = plans.find_threshold(s.dev, loads, keys, k, lo, hi)
        _raise_first_nan(nans, on_nan)
        counts = resolve_counts(less, equal, lo, hi, k)
        pruned = [max(lo[i], min(hi[i], c)) for i, c in enumerate(counts)]
        out = []
        for i, c in enumerate(counts):
            if pruned[i] == c:
                keep = plans.keep_above(s.dev, load(i), keys, threshold, c - less[i])
            else:
                keep = own_topk(i, pruned[i])
            out.append((back(i, keep), pruned[i], c))
        return out


def _raise_first_nan(nans: list[int], on_nan: Callable[[int, int], None]) -> None:
    for i, count in enumerate(nans):
        if count:
            on_nan(i, count)
