"""The backend seam: one function per job, each choosing its implementation here and nowhere else.

Masks, scores, formats, the model, the strategies and calibration call these
functions with the caller's arrays and get arrays of the caller's library,
dtype and device back. :func:`_choose` names the backend for the arrays at
hand:

==============  ==================================  =========================================
backend         arrays                              implementation
==============  ==================================  =========================================
``host``        NumPy, dense CPU torch              Numba kernels: :mod:`.host`,
                                                    :mod:`.host_formats`, on the views of
                                                    :mod:`.bridge` (no copy)
``cuda``        CuPy, dense torch on CUDA (with     CUDA kernels: :mod:`.cuda`, on the views
                CuPy installed)                     of :func:`.bridge.device_view` (DLPack,
                                                    no copy); jobs without a kernel run the
                                                    reference on the device
``dask``        dask arrays of NumPy chunks         :mod:`.dask`, :mod:`.dask_formats`: the
                                                    host kernels chunk by chunk; lazy, but
                                                    for thresholds and counts (histograms)
                                                    and SparseGPT (eager, per layer)
``reference``   everything else (JAX,               standard-only: :mod:`.reference`,
                array-api-strict, ...)              :mod:`.reference_formats`; the test oracle
==============  ==================================  =========================================

A job whose inputs the chosen backend cannot take (complex128 formats on the
host or the device, empty norms) or that has no CUDA kernel (ELL, DIA,
SparseGPT, calibration) runs the reference. Nothing outside this package imports
a kernel module; the kernel modules load on a job's first use.

NaN scores raise here, with their count, whichever implementation ran
(:func:`_raise_nan`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from types import ModuleType
from typing import Any

import numpy as np

from .._compat import device, is_dask, isdtype
from . import bridge, cuda, host, host_formats, reference, reference_formats
from .shared import Stream, Violation

__all__ = [
    "Counted",
    "Stream",
    "Violation",
    "block_norms",
    "cholesky_inverse_base",
    "count_blocks",
    "count_cols",
    "count_exactly",
    "count_nan",
    "count_nonzero",
    "count_row_lengths",
    "count_rows",
    "cutlass_decode",
    "cutlass_encode",
    "cutlass_pack",
    "cutlass_pack_nm",
    "cutlass_unpack",
    "decode_bitmask",
    "decode_bsr",
    "decode_compressed",
    "decode_dia",
    "decode_ell",
    "decode_nm",
    "decode_target",
    "encode_bitmask",
    "encode_bsr",
    "encode_csc",
    "encode_csr",
    "encode_dia",
    "encode_ell",
    "encode_nm",
    "global_cut",
    "global_keep",
    "kernel_cache",
    "known_shape",
    "lift",
    "nm_keep",
    "permutation",
    "reshape",
    "result_float",
    "shared_array",
    "slice_norms",
    "sparsegpt_sweep",
    "sum_squares",
    "topk_keep",
    "unpack_nm_positions",
]

Array = Any

#: The backends tried in order, each with the test its arrays must all pass; ``None``
#: marks a slot whose backend is not written yet. Arrays no backend claims run the
#: standard-only ``"reference"``.
_SLOTS: dict[str, Callable[[Array], bool] | None] = {
    "host": bridge.is_host,
    "cuda": bridge.is_device,
    "dask": is_dask,  # dask arrays of NumPy chunks, chunk by chunk over the host kernels (.dask)
}


def _choose(*arrays: Array) -> str:
    """The backend that runs a job on ``arrays`` (one library and device): a key of
    :data:`_SLOTS` or ``"reference"``."""
    for name, claims in _SLOTS.items():
        if claims is not None and all(map(claims, arrays)):
            return name
    return "reference"


def _raise_nan(name: str, count: int) -> None:
    msg = (
        f"{name} contains {count} NaN value(s); NaN has no rank. "
        "Replace them first, e.g. with xp.where(xp.isnan(s), -xp.inf, s) to prune them first"
    )
    raise ValueError(msg)


# -- NaN count, selection, norms ------------------------------------------------------------
def _dask() -> ModuleType:
    """The Dask backend, imported on first use (Dask is optional)."""
    from . import dask

    return dask


def count_nan(xp: ModuleType, x: Array) -> int:
    """Number of NaN values in ``x`` (0 for integer dtypes); computed for a Dask array."""
    backend = _choose(x)
    if backend == "host":
        return host.count_nan(x)
    if backend == "dask":
        return _dask().count_nan(x)
    if backend == "cuda" and cuda.supports_keys(x):
        return cuda.count_nan(x)
    return reference.count_nan(xp, x)


def topk_keep(xp: ModuleType, x: Array, n_prune: int, *, magnitude: bool, name: str) -> Array:
    """Keep-mask pruning exactly ``n_prune`` smallest values (ties: lower flat index first).

    ``name`` names ``x`` in the error NaN values raise. Dask: the threshold
    is computed (histograms), the mask is lazy.
    """
    backend = _choose(x)
    if backend == "dask":
        return _dask().topk_keep(x, n_prune, magnitude, name)
    if backend == "host":
        keep, nans = host.topk_keep(x, n_prune, magnitude)
    elif backend == "cuda" and cuda.supports_keys(x):
        keep, nans = cuda.topk_keep(x, n_prune, magnitude)
    else:
        nans = reference.count_nan(xp, x)
        keep = None if nans else reference.topk_keep(xp, x, n_prune, magnitude)
    if nans:
        _raise_nan(name, nans)
    return keep


def nm_keep(xp: ModuleType, x: Array, n: int, m: int, axis: int, *, magnitude: bool, name: str) -> Array:
    """Keep-mask with ``n`` zeros in each group of ``m`` along ``axis`` (ties: lower position first).

    Dask: lazy, chunk by chunk (NaN raises when a chunk holding it is computed).
    """
    backend = _choose(x)
    if backend == "dask":
        return _dask().nm_keep(x, n, m, axis, magnitude, name)
    if backend == "host":
        keep, nans = host.nm_keep(x, n, m, axis, magnitude)
    elif backend == "cuda" and cuda.supports_keys(x):
        keep, nans = cuda.nm_keep(x, n, m, axis, magnitude)
    else:
        nans = reference.count_nan(xp, x)
        keep = None if nans else reference.nm_keep(xp, x, n, m, axis, magnitude)
    if nans:
        _raise_nan(name, nans)
    return keep


def slice_norms(xp: ModuleType, x: Array, axis: int, ord: float) -> Array:
    """Lp norm of each slice along ``axis``, in the result float dtype of ``x`` (Dask: lazy)."""
    dtype = result_float(xp, x)
    backend = _choose(x) if math.prod(x.shape) else "reference"
    if backend == "dask":
        return _dask().slice_norms(x, axis, ord, dtype)
    if backend == "host":
        return xp.astype(host.slice_norms(x, axis, ord), dtype)
    if backend == "cuda" and cuda.supports_norms(x):
        return xp.astype(cuda.slice_norms(x, axis, ord), dtype)
    return xp.astype(reference.slice_norms(xp, x, axis, ord), dtype)


def block_norms(xp: ModuleType, x: Array, block: tuple[int, ...], ord: float) -> Array:
    """Lp norm of each tile of shape ``block`` over the trailing axes (Dask: lazy)."""
    dtype = result_float(xp, x)
    backend = _choose(x) if math.prod(x.shape) else "reference"
    if backend == "dask":
        return _dask().block_norms(x, block, ord, dtype)
    if len(block) > 2:
        backend = "reference"
    if backend == "host":
        return xp.astype(host.block_norms(x, block, ord), dtype)
    if backend == "cuda" and cuda.supports_norms(x):
        return xp.astype(cuda.block_norms(x, block, ord), dtype)
    return xp.astype(reference.block_norms(xp, x, block, ord), dtype)


def result_float(xp: ModuleType, x: Array) -> Any:
    """Float dtype of a norm of ``x``: its own if floating, else the default float."""
    if isdtype(xp, x.dtype, "real floating"):
        return x.dtype
    return reference.default_float(xp, x)


# -- global threshold over many arrays ----------------------------------------------------
def global_cut(xp: ModuleType, source: Stream, k: int, lo: list[int], hi: list[int], *, magnitude: bool) -> Any:
    """One exact threshold over the arrays of ``source``, in two phases.

    Creating the cut is the first phase: the ``k`` lowest values of all
    arrays together are found (ties: earlier arrays, then lower flat
    indices, first), each array pruning between ``lo[i]`` and ``hi[i]``
    values, reading the arrays through ``source.fetch`` (one at a time when
    they are streamed). The second phase is the cut's
    ``keep(i, array) -> (keep, pruned, unclamped)``, called for each array in
    order with the same data (``unclamped``: its count before the bounds),
    or ``keep_all()`` for a source in memory. The backend is the one of
    ``source.probe``. Requires
    ``sum(lo) <= k <= sum(hi)``; ``source.names`` name the arrays in the
    error NaN values raise.
    """
    if _choose(source.probe) == "host":

        def on_nan(i: int, count: int) -> None:
            _raise_nan(source.names[i], count)

        return host.GlobalCut(source, k, lo, hi, magnitude, on_nan)
    for i, name in enumerate(source.names):
        nans = reference.count_nan(xp, source.fetch(i))
        if nans:
            _raise_nan(name, nans)
    return reference.GlobalCut(xp, source, k, lo, hi, magnitude)


def global_keep(
    xp: ModuleType, arrays: list[Array], names: list[str], k: int, lo: list[int], hi: list[int], *,
    magnitude: bool,
) -> list[tuple[Array, int, int]]:
    """:func:`global_cut` of arrays in memory: ``(keep, pruned, unclamped)`` for each.

    CUDA arrays whose keys the kernels rank take the CUDA path (the whole
    selection on the device); Dask arrays the chunked one (the threshold and
    the counts are computed: histograms and a count pass; the masks are lazy);
    everything else is the two-phase cut.
    """
    backend = _choose(*arrays)
    if backend == "dask":
        return _dask().global_keep(arrays, names, k, lo, hi, magnitude)
    if backend == "cuda" and cuda.supports_keys(*arrays):

        def on_nan(i: int, count: int) -> None:
            _raise_nan(names[i], count)

        return cuda.global_keep(arrays, k, lo, hi, magnitude, on_nan)
    return global_cut(xp, Stream.of(arrays, names), k, lo, hi, magnitude=magnitude).keep_all()


# -- random scores ------------------------------------------------------------------------
def permutation(xp: ModuleType, like: Array, seed: Any) -> Array:
    """``default_rng(seed).permutation(size)`` (a Generator: its own ``permutation``) in ``like``'s
    shape, library and device. NumPy draws it; for a Dask ``like`` and an int seed (or None) one
    task on a worker draws it, a Generator draws on the client (it must advance)."""
    if _choose(like) == "dask" and not isinstance(seed, np.random.Generator):
        return _dask().permutation(like, seed)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    perm = rng.permutation(math.prod(like.shape)).reshape(tuple(like.shape))
    if _choose(like) == "dask":
        return _dask().from_numpy(perm, like)
    return xp.asarray(perm, device=device(like))


def lift(small: Array, like: Array) -> Array:
    """A small host array (a statistic: one value per feature) in ``like``'s library when
    ``like`` is a Dask array and ``small`` is not: sent to the workers. Else ``small``."""
    if _choose(like) == "dask" and _choose(small) == "host":
        return _dask().from_numpy(np.asarray(bridge.host_view(small)), like, whole=True)
    return small


# -- calibration --------------------------------------------------------------------------
def sum_squares(xp: ModuleType, x2: Array, acc: Any) -> Array:
    """``sum(x2[:, j] ** 2)`` over the rows of the 2-D ``x2``, accumulated in the float dtype ``acc``
    (Dask: lazy)."""
    backend = _choose(x2)
    if backend == "dask" and math.prod(x2.shape):
        return _dask().sum_squares(x2, acc)
    if backend == "host" and math.prod(x2.shape):
        return host.sum_squares(xp, x2, acc)
    return reference.sum_squares(xp, x2, acc)


# -- SparseGPT ----------------------------------------------------------------------------
def sparsegpt_sweep(
    xp: ModuleType, weights: Array, hessian: Array,
    prepare: Callable[[ModuleType, Array, Array], tuple[Array, Array]],
    counts: list[int] | None, nm: tuple[int, int] | None, block_size: int,
) -> tuple[Array, Array]:
    """SparseGPT's column sweep: ``(updated_weights, keep)`` in the weights' library.

    ``prepare(namespace, weights, hessian)`` gives the weights and ``U`` (the
    upper Cholesky factor of the dampened ``H^-1``) in that namespace: the
    host runs it in NumPy on the arrays' memory, the reference in ``xp``.
    Unstructured: ``counts`` is each block's pruned count; N:M: ``nm = (n, m)``.
    The result is in the compute dtype ``prepare`` chose.

    Dask weights are **eager**: the layer and its Hessian are computed (one
    ``dask.compute``), swept on the host, and the results sent back to the
    workers in the weights' chunks. Unstructured, a block's count is shared
    by all its rows, so rows are not independent; N:M rows are, but BLAS
    rounds a matrix product of a band of rows differently from the whole
    (measured: a few units in the last place), and the result must be NumPy's
    bit for bit.
    """
    if _choose(weights) == "dask":
        return _dask().sparsegpt_sweep(weights, hessian, prepare, counts, nm, block_size)
    if _choose(weights, hessian) == "host" and math.prod(weights.shape):
        return host.sparsegpt_sweep(weights, hessian, prepare, counts, nm, block_size)
    w, u = prepare(xp, weights, hessian)
    return reference.sparsegpt_sweep(xp, w, u, counts, nm, block_size)


def cholesky_inverse_base(xp: ModuleType, k: Array) -> Array:
    """``L^-1`` where ``L L^T = k``: the small base case of SparseGPT's recursive factorisation.

    The host kernel takes NumPy matrices, which is what the host sweep
    prepares on; a matrix of any other library (torch included: its
    importance scores prepare in torch) uses its library's ``cholesky`` and
    ``inv``. ``ValueError`` (or the library's error) when ``k`` is not
    positive definite.
    """
    if _choose(k) == "host" and isinstance(k, np.ndarray):
        return host.cholesky_inverse_base(k)
    return reference.cholesky_inverse_base(xp, k)


# -- formats: count, encode, decode -------------------------------------------------------
@dataclass(frozen=True)
class Counted:
    """The first pass of a two-pass compress: what the format's rules need, and the pass's state.

    The format reads ``nnz`` (``longest`` / ``first_longest`` for ELL) to size
    its outputs, then hands the whole record to the matching ``encode_*``,
    which runs on the backend that counted. A Dask first pass counts nothing
    (``exact=False``, ``nnz`` an upper bound: the band encodes size their own
    outputs) until :func:`count_exactly` is asked for the count.
    """

    backend: str
    nnz: int  # non-zeros (BSR: non-zero blocks); with exact=False an upper bound of them
    state: Any = field(repr=False)
    longest: int = 0  # ELL: the most non-zeros in one row
    first_longest: int = 0  # ELL: the first row holding that many
    exact: bool = True  # False: a lazy (Dask) first pass, nothing counted (see count_exactly)


def _formats_backend(x: Array) -> str:
    """The backend of a format job on ``x``: the host and CUDA codecs move items of up to
    :data:`.bridge.MAX_ITEMSIZE` bytes (complex128 runs the reference)."""
    name = _choose(x)
    if name == "dask":
        return name
    return name if name in _KERNELS and x.dtype.itemsize <= bridge.MAX_ITEMSIZE else "reference"


#: The backends with format codecs of their own; the others run the reference's.
_KERNELS = ("host", "cuda")
#: The codecs of each backend a format job may run on.
_CODECS: dict[str, ModuleType] = {"host": host_formats, "cuda": cuda, "reference": reference_formats}


def _dask_formats() -> ModuleType:
    from . import dask_formats

    return dask_formats


def count_exactly(counted: Counted) -> Counted:
    """``counted`` with its exact count: a lazy (Dask) first pass counts its bands now (eager,
    one integer per band reaches the client); any other is exact already."""
    if counted.exact:
        return counted
    return replace(counted, nnz=_dask_formats().count_exactly(counted.state), exact=True)


def reshape(xp: ModuleType, a: Array, shape: tuple[int, ...]) -> Array:
    """``xp.reshape(a, shape)``; an empty Dask array (which Dask cannot reshape) is made anew."""
    if _choose(a) == "dask" and not math.prod(a.shape):
        return _dask().empty(shape, a.dtype)
    return xp.reshape(a, shape)


def known_shape(a: Array) -> tuple[int, ...]:
    """The shape of ``a``; a Dask array of unknown chunk sizes has them computed (in place)."""
    if _choose(a) == "dask" and any(s != s for s in a.shape):
        a.compute_chunk_sizes()
    return tuple(int(s) for s in a.shape)


def count_nonzero(xp: ModuleType, values: Array) -> int:
    """Non-zeros (``!= 0``; -0.0 is zero, NaN is not) among a result's stored values
    (computed for a Dask array)."""
    backend = _formats_backend(values)
    if backend == "dask":
        return _dask_formats().count_nonzero(values)
    if backend != "reference":
        return _CODECS[backend].count_nonzero(values)
    return reference_formats.count_nonzero(xp, values)


def count_rows(xp: ModuleType, x2: Array) -> Counted:
    """First pass of CSR and COO: the non-zeros of the 2-D ``x2``, row by row (Dask: row bands,
    nothing counted)."""
    backend = _formats_backend(x2)
    if backend == "dask":
        return Counted("dask", *_dask_formats().count(x2, "rows"), exact=False)
    if backend != "reference":
        return Counted(backend, *_CODECS[backend].count_rows(x2))
    return Counted("reference", *reference_formats.count_rows(xp, x2))


def encode_csr(counted: Counted, index: str, *, coo: bool) -> tuple[Array, Array, Array]:
    """``(indptr, indices, data)``, or with ``coo`` ``(row, col, data)``; ``index`` is the
    index dtype's name (``"int32"`` / ``"int64"``)."""
    if counted.backend == "dask":
        return _dask_formats().encode(counted.state, index, coo=coo)
    return _CODECS[counted.backend].encode_csr(counted, index, coo=coo)


def count_cols(xp: ModuleType, x2: Array) -> Counted:
    """First pass of CSC: the non-zeros of the 2-D ``x2``, column by column (Dask: column bands,
    nothing counted)."""
    backend = _formats_backend(x2)
    if backend == "dask":
        return Counted("dask", *_dask_formats().count(x2, "cols"), exact=False)
    if backend != "reference":
        return Counted(backend, *_CODECS[backend].count_cols(x2))
    return Counted("reference", *reference_formats.count_cols(xp, x2))


def encode_csc(counted: Counted, index: str) -> tuple[Array, Array, Array]:
    """CSC's ``(indptr, indices, data)``; ``indices`` are row numbers."""
    if counted.backend == "dask":
        return _dask_formats().encode(counted.state, index)
    return _CODECS[counted.backend].encode_csc(counted, index)


def count_blocks(xp: ModuleType, x2: Array, block: tuple[int, int]) -> Counted:
    """First pass of BSR: the blocks of shape ``block`` (dividing ``x2``'s shape) holding a non-zero
    (Dask: row bands of whole block rows, nothing counted)."""
    backend = _formats_backend(x2)
    if backend == "dask":
        return Counted("dask", *_dask_formats().count(x2, "blocks", block), exact=False)
    if backend != "reference":
        return Counted(backend, *_CODECS[backend].count_blocks(x2, *block))
    return Counted("reference", *reference_formats.count_blocks(xp, x2, *block))


def encode_bsr(counted: Counted, index: str) -> tuple[Array, Array, Array]:
    """BSR's ``(indptr, indices, data)``: the non-zero blocks, block row by block row."""
    if counted.backend == "dask":
        return _dask_formats().encode(counted.state, index)
    return _CODECS[counted.backend].encode_bsr(counted, index)


def count_row_lengths(xp: ModuleType, x2: Array) -> Counted:
    """First pass of ELL: the row counts, with the longest row (Dask: counted, by row bands; no
    CUDA kernel: device arrays run the reference)."""
    backend = _formats_backend(x2)
    if backend == "dask":
        nnz, longest, first, state = _dask_formats().count_row_lengths(x2)
    elif backend == "host":
        nnz, longest, first, state = host_formats.count_row_lengths(x2)
    else:
        backend = "reference"
        nnz, longest, first, state = reference_formats.count_row_lengths(xp, x2)
    return Counted(backend, nnz, state, longest, first)


def encode_ell(counted: Counted, width: int, index: str) -> tuple[Array, Array]:
    """ELL's ``(indices, data)`` of shape ``(rows, width)``, padding index -1 and value 0."""
    if counted.backend == "dask":
        return _dask_formats().encode_ell(counted.state, width, index)
    return _CODECS[counted.backend].encode_ell(counted, width, index)


def encode_dia(xp: ModuleType, x2: Array, index: str) -> tuple[Array, Array, int]:
    """DIA's ``(offsets, data, nnz)`` (scipy.sparse's layout; Dask: the diagonals are found
    first, ``data`` is lazy)."""
    backend = _formats_backend(x2)
    if backend == "dask":
        return _dask_formats().encode_dia(x2, index)
    if backend == "host":
        return host_formats.encode_dia(x2, index)
    return reference_formats.encode_dia(xp, x2, index)


def encode_nm(
    xp: ModuleType, x2: Array, lay: Any, word: Callable[[Violation], Exception] | None = None
) -> tuple[Array, Array]:
    """N:M's ``(values, packed_positions)`` packed as ``lay`` (the format's
    :class:`~arraysparse.formats.nm.PackedLayout`) says; :class:`Violation` (row, group,
    non-zeros) when a group holds more than ``m - n`` non-zeros. Dask: lazy by row bands,
    and a band that finds a violation when computed raises ``word(violation)`` (a picklable
    callable giving the format's error)."""
    backend = _formats_backend(x2)
    if backend == "dask":
        return _dask_formats().encode_nm(x2, lay, word)
    if backend != "reference":
        return _CODECS[backend].encode_nm(x2, lay)
    return reference_formats.encode_nm(xp, x2, lay)


def encode_bitmask(xp: ModuleType, x2: Array) -> tuple[Array, Array, int]:
    """The bitmask format's ``(values, bitmask, nnz)`` (Dask: lazy by row bands, ``nnz`` None)."""
    backend = _formats_backend(x2)
    if backend == "dask":
        return _dask_formats().encode_bitmask(x2)
    if backend != "reference":
        return _CODECS[backend].encode_bitmask(x2)
    return reference_formats.encode_bitmask(xp, x2)


def _decoder(arrays: dict, dtype: Any, target: bridge.Host | None) -> bridge.Host | None:
    """The host decoding a result of ``dtype`` (the target, when decoding into one), or None
    for the reference. A result's arrays share a library and device: the first one decides."""
    if target is not None:
        return target
    first = next(iter(arrays.values()))
    return bridge.Host.for_result(first, dtype) if _choose(first) == "host" else None


def _on_device(arrays: dict, dtype: Any, target: bridge.Host | None) -> bool:
    """Whether the CUDA decoders take a result of ``dtype`` (its arrays share a device)."""
    first = next(iter(arrays.values()))
    return target is None and _choose(first) == "cuda" and getattr(dtype, "itemsize", 16) <= bridge.MAX_ITEMSIZE
def _lazy(arrays: dict) -> bool:
    """Whether a result's arrays are Dask arrays (the first one decides, as in :func:`_decoder`)."""
    return _choose(next(iter(arrays.values()))) == "dask"


def decode_target(arrays: dict, dtype: Any, out: Array, shape2: tuple[int, int]) -> bridge.Host | None:
    """What the host decoders write into for ``to_dense(out=out)``: ``out``'s own memory as a
    C-contiguous 2-D view, or None (then decode, and copy into ``out``)."""
    h = _decoder(arrays, dtype, None)
    view = bridge.Host.of(out) if h is not None else None
    if view is None or not view.values.flags.c_contiguous or not bridge.is_view_of(view.values, out):
        return None
    return replace(h, target=view.values.reshape(shape2))


def shared_array(target: bridge.Host, arrays: dict) -> str | None:
    """The name of the first of ``arrays`` sharing memory with the decode target, if any."""
    for name, a in arrays.items():
        if np.may_share_memory(target.target, target.view(a)):
            return name
    return None


def decode_compressed(
    xp: ModuleType, fmt: str, arrays: dict, shape2: tuple[int, int], dtype: Any, target: bridge.Host | None = None
) -> Array:
    """Dense 2-D array of a COO / CSR / CSC result (``fmt``), into ``target`` if given
    (Dask: lazy, band by band)."""
    if _lazy(arrays):
        return _dask_formats().decode_compressed(fmt, dict(arrays), shape2, dtype, (1, 1))
    if _on_device(arrays, dtype, target):
        return cuda.decode_compressed(fmt, arrays, shape2, dtype)
    h = _decoder(arrays, dtype, target)
    if h is not None:
        return host_formats.decode_compressed(h, fmt, arrays, shape2)
    return reference_formats.decode_compressed(xp, fmt, arrays, shape2)


def decode_bsr(
    xp: ModuleType, arrays: dict, shape2: tuple[int, int], block: tuple[int, int], dtype: Any,
    target: bridge.Host | None = None,
) -> Array:
    """Dense 2-D array of a BSR result (Dask: lazy, band by band)."""
    if _lazy(arrays):
        return _dask_formats().decode_compressed("bsr", dict(arrays), shape2, dtype, block)
    if _on_device(arrays, dtype, target):
        return cuda.decode_bsr(arrays, shape2, dtype)
    h = _decoder(arrays, dtype, target)
    if h is not None:
        return host_formats.decode_bsr(h, arrays, shape2)
    return reference_formats.decode_bsr(xp, arrays, shape2, block)


def decode_ell(
    xp: ModuleType, arrays: dict, shape2: tuple[int, int], dtype: Any, target: bridge.Host | None = None
) -> Array:
    """Dense 2-D array of an ELL result (Dask: lazy, by row chunks)."""
    if _lazy(arrays):
        return _dask_formats().decode_ell(arrays, shape2, dtype)
    h = _decoder(arrays, dtype, target)
    if h is not None:
        return host_formats.decode_ell(h, arrays, shape2)
    return reference_formats.decode_ell(xp, arrays, shape2)


def decode_dia(
    xp: ModuleType, arrays: dict, shape2: tuple[int, int], dtype: Any, target: bridge.Host | None = None
) -> Array:
    """Dense 2-D array of a DIA result (Dask: lazy, by column chunks)."""
    if _lazy(arrays):
        return _dask_formats().decode_dia(arrays, shape2, dtype)
    h = _decoder(arrays, dtype, target)
    if h is not None:
        return host_formats.decode_dia(h, arrays, shape2)
    return reference_formats.decode_dia(xp, arrays, shape2)


def decode_nm(
    xp: ModuleType, arrays: dict, shape2: tuple[int, int], lay: Any, dtype: Any,
    target: bridge.Host | None = None, word: Callable[[Violation], Exception] | None = None,
) -> Array:
    """Dense 2-D array of an N:M result packed as ``lay``; :class:`Violation` (row, group,
    positions) for the first group whose packed positions no encoder writes (Dask: lazy by
    row chunks; a chunk raises ``word(violation)`` when computed)."""
    if _lazy(arrays):
        return _dask_formats().decode_nm(arrays, shape2, lay, dtype, word)
    if _on_device(arrays, dtype, target):
        return cuda.decode_nm(arrays, shape2, lay, dtype)
    h = _decoder(arrays, dtype, target)
    if h is not None:
        return host_formats.decode_nm(h, arrays, shape2, lay)
    return reference_formats.decode_nm(xp, arrays, shape2, lay)


def unpack_nm_positions(
    xp: ModuleType, packed: Array, shape2: tuple[int, int], lay: Any,
    word: Callable[[Violation], Exception] | None = None,
) -> Array:
    """Each kept value's position in its group (uint8, one per kept value) from N:M
    ``packed_positions``; :class:`Violation` as :func:`decode_nm` (Dask: lazy, ``word``)."""
    backend = _choose(packed)
    if backend == "dask":
        return _dask_formats().unpack_nm_positions(packed, shape2, lay, word)
    if backend in _KERNELS:
        return _CODECS[backend].unpack_nm_positions(packed, shape2, lay)
    return reference_formats.unpack_nm_positions(xp, packed, shape2, lay)


def decode_bitmask(
    xp: ModuleType, arrays: dict, shape2: tuple[int, int], dtype: Any, target: bridge.Host | None = None
) -> Array:
    """Dense 2-D array of a bitmask result (Dask: lazy, band by band)."""
    if _lazy(arrays):
        return _dask_formats().decode_bitmask(arrays, shape2, dtype)
    if _on_device(arrays, dtype, target):
        return cuda.decode_bitmask(arrays, shape2, dtype)
    h = _decoder(arrays, dtype, target)
    if h is not None:
        return host_formats.decode_bitmask(h, arrays, shape2)
    return reference_formats.decode_bitmask(xp, arrays, shape2)


# -- CUTLASS 2:4 --------------------------------------------------------------------------
# ``lay`` is the format's layout record (arraysparse.formats.cutlass); its shape, dtype and
# meta checks are done. Violations come back as Violation for the format to word; on Dask the
# band that finds one raises ``word(violation)`` when it is computed (a picklable callable
# giving the format's error). Dask: lazy, by bands of rows (:mod:`.dask_formats`).
Word = Callable[[Violation], Exception] | None


def _empty_dask(fn: Callable[..., Array], *arrays: Array) -> Array:
    """An empty Dask input runs the host job on its (empty) NumPy array."""
    out = fn(*[np.asarray(a) for a in arrays])
    return _dask().from_numpy(np.asarray(out), out, whole=True)


def _cutlass(job: str, xp: ModuleType, lay: Any, word: Word, *arrays: Array) -> Any:
    """Run the CUTLASS ``job`` on ``arrays``: Dask's by bands (an empty Dask input runs the
    host job, as :func:`_empty_dask`), else the host or CUDA codec, else the reference. The
    codecs all take ``(xp, *arrays, lay)``; Dask's take ``(*arrays, lay, word)``."""
    if any(_choose(a) == "dask" for a in arrays):
        if not math.prod(arrays[0].shape):
            return _empty_dask(lambda *a: _cutlass(job, np, lay, None, *a), *arrays)
        return getattr(_dask_formats(), job)(*arrays, lay, word)
    backend = _choose(*arrays)
    return getattr(_CODECS[backend if backend in _KERNELS else "reference"], job)(xp, *arrays, lay)


def cutlass_encode(xp: ModuleType, dense: Array, lay: Any, word: Word = None) -> tuple[Array, Array]:
    """``(values, meta)`` of a non-empty ``dense``; :class:`Violation` (row, group, non-zeros)."""
    return _cutlass("cutlass_encode", xp, lay, word, dense)


def cutlass_decode(xp: ModuleType, values: Array, meta: Array, lay: Any, word: Word = None) -> Array:
    """The dense matrix of non-empty ``values`` and their ``meta``; :class:`Violation` (row, group, code)."""
    return _cutlass("cutlass_decode", xp, lay, word, values, meta)


def cutlass_pack(xp: ModuleType, positions: Array, lay: Any, word: Word = None) -> Array:
    """CUTLASS meta from the simple layout's ``positions``; :class:`Violation` (row, group, positions)."""
    return _cutlass("cutlass_pack", xp, lay, word, positions)


def cutlass_pack_nm(xp: ModuleType, packed: Array, lay: Any, word: Word = None) -> Array:
    """CUTLASS meta from a 2:4 result's ``packed_positions`` (its nibbles are the codes);
    :class:`Violation` (row, group, code)."""
    return _cutlass("cutlass_pack_nm", xp, lay, word, packed)


def cutlass_unpack(xp: ModuleType, meta: Array, lay: Any, word: Word = None) -> Array:
    """The simple layout's uint8 ``positions`` from CUTLASS ``meta``; :class:`Violation` (row, group, code)."""
    return _cutlass("cutlass_unpack", xp, lay, word, meta)


def kernel_cache() -> tuple[Any, list[tuple[str, str, float]]]:
    """The host kernels' cache directory and the kernels this process compiled so far."""
    return host.kernel_cache()
