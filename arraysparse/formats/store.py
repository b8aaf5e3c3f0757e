"""A compressed result in a Zarr store, written chunk by chunk where each chunk is computed.

:func:`to_zarr` writes every chunk of every array of a
:class:`~arraysparse.SparseCompressionResult` as its own Zarr array, from the
task that computes it: for a result of :func:`~arraysparse.compress` on a Dask
array that is the worker encoding the band, so the bands go from the workers
to the store and no machine ever holds the whole result. A NumPy result is
written from the client, one chunk per array.

Layout of the store (a Zarr group)::

    zarr.json                 attributes "arraysparse": format, shape, dtype, params,
                              nnz (if known), and per array its dtype and chunk count
    <array>/<i>/...           chunk i of the array <array> (indptr, indices, data, ...)

:func:`from_zarr` reads it back: lazily as Dask arrays (one chunk per stored
chunk, so a banded result decodes band by band again), or into NumPy with
``lazy=False``; either equals the result that was written. Types without a
Zarr data type (bfloat16 and the other ``ml_dtypes``) are stored as their
unsigned bits and viewed back. On a cluster the store must be a path or URL
every worker can write (a shared file system, an object store).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .._compat import is_dask, is_numpy, ml_dtype
from .base import SparseCompressionResult

__all__ = ["from_zarr", "to_zarr"]

Array = Any

_KEY = "arraysparse"
_VERSION = 1


def _store(store: Any) -> str:
    if not isinstance(store, (str, os.PathLike)):
        msg = f"store must be a path or URL (str or os.PathLike) every worker can open, got {type(store).__name__}"
        raise TypeError(msg)
    return os.fspath(store)


def _stored_dtype(dtype: np.dtype) -> tuple[np.dtype, str]:
    """The dtype Zarr stores for ``dtype`` (its bits for the ml_dtypes types) and its name."""
    ml = ml_dtype(dtype)
    return (ml.bits if ml is not None else np.dtype(dtype)), np.dtype(dtype).name


def _write_chunk(block: np.ndarray, store: str, name: str, i: int, stored: str) -> int:
    """Write one chunk (run by the task that computes it, on its worker); its length."""
    import zarr

    block = np.ascontiguousarray(block)
    if block.dtype != np.dtype(stored):
        block = block.view(stored)
    out = zarr.create_array(store, name=f"{name}/{i}", shape=block.shape, dtype=block.dtype, overwrite=True)
    if block.size:
        out[...] = block
    return int(block.shape[0]) if block.ndim else 1


def to_zarr(result: SparseCompressionResult, store: str | os.PathLike, /, *, overwrite: bool = False) -> None:
    """Write ``result`` to the Zarr store ``store``, each chunk by the task that computes it.

    For a result of :func:`~arraysparse.compress` on a Dask array this
    computes the result (every band once) on the workers, which write their
    bands themselves; only the chunks' lengths come back to the client.

    Parameters
    ----------
    result : SparseCompressionResult
        A NumPy or Dask result.
    store : str or os.PathLike
        A directory or URL (fsspec) that every worker can write; a Zarr group
        is created there.
    overwrite : bool
        Replace what ``store`` holds; otherwise an existing group raises.

    Examples
    --------
    >>> import tempfile, numpy as np, dask.array as da, arraysparse as asp
    >>> x = da.from_array(np.array([[0.0, 2.0], [3.0, 0.0], [0.0, 0.0]]), chunks=(2, 2))
    >>> path = tempfile.mkdtemp() + "/w.zarr"
    >>> asp.to_zarr(asp.compress(x, "csr"), path)
    >>> asp.from_zarr(path, lazy=False).indptr
    array([0, 1, 2, 2], dtype=int32)
    """
    import dask
    import zarr

    if not isinstance(result, SparseCompressionResult):
        msg = f"result must be a SparseCompressionResult, got {type(result).__name__}"
        raise TypeError(msg)
    path = _store(store)
    arrays = dict(result.arrays)
    lazy = is_dask(next(iter(arrays.values())))
    for name, a in arrays.items():
        if not (is_dask(a) if lazy else is_numpy(a)):
            msg = f"to_zarr writes NumPy or Dask results; the {name!r} array is {type(a).__module__}.{type(a).__name__}"
            raise TypeError(msg)
    group = zarr.open_group(path, mode="w" if overwrite else "w-")
    described = {}
    writes = []
    for name, a in arrays.items():
        stored, dtype = _stored_dtype(a.dtype)
        group.create_group(name)
        if lazy:
            if a.ndim > 1:
                a = a.rechunk({ax: -1 for ax in range(1, a.ndim)})
            blocks = a.to_delayed().ravel().tolist()
            write = dask.delayed(_write_chunk, pure=True)
            writes += [write(b, path, name, i, stored.str) for i, b in enumerate(blocks)]
        else:
            blocks = [a]
            _write_chunk(a, path, name, 0, stored.str)
        described[name] = {"dtype": dtype, "stored": stored.name, "chunks": len(blocks)}
    if writes:
        dask.compute(*writes)
    params = {k: list(v) if isinstance(v, tuple) else v for k, v in result.params.items()}
    group.attrs[_KEY] = {
        "version": _VERSION,
        "format": result.format.value,
        "shape": list(result.shape),
        "dtype": np.dtype(result.dtype).name,
        "params": params,
        "nnz": result._nnz,
        "arrays": described,
    }


def _numpy_dtype(name: str) -> np.dtype:
    try:
        return np.dtype(name)
    except TypeError:
        import ml_dtypes

        return np.dtype(getattr(ml_dtypes, name))


def from_zarr(store: str | os.PathLike, /, *, lazy: bool = True) -> SparseCompressionResult:
    """The result :func:`to_zarr` wrote to ``store``.

    ``lazy=True`` gives Dask arrays, one chunk per stored chunk (a banded
    result decodes band by band, on the workers); ``lazy=False`` reads every
    array into NumPy.

    Examples
    --------
    >>> import tempfile, numpy as np, arraysparse as asp
    >>> path = tempfile.mkdtemp() + "/w.zarr"
    >>> asp.to_zarr(asp.compress(np.array([[0.0, 2.0], [3.0, 0.0]]), "coo"), path)
    >>> r = asp.from_zarr(path)
    >>> r.to_dense().compute()
    array([[0., 2.],
           [3., 0.]])
    """
    import zarr

    path = _store(store)
    group = zarr.open_group(path, mode="r")
    meta = group.attrs.get(_KEY)
    if not isinstance(meta, dict) or meta.get("version") != _VERSION:
        msg = f"store={path!r} holds no arraysparse result (no {_KEY!r} attributes of version {_VERSION})"
        raise ValueError(msg)
    arrays = {}
    for name, d in meta["arrays"].items():
        dtype = _numpy_dtype(d["dtype"])
        parts = [group[f"{name}/{i}"] for i in range(d["chunks"])]
        if lazy:
            import dask.array as da

            chunks = [da.from_zarr(p, chunks=p.shape or ()) for p in parts]
            a = chunks[0] if len(chunks) == 1 else da.concatenate(chunks)
        else:
            a = np.concatenate([p[...] for p in parts]) if len(parts) > 1 else parts[0][...]
        if a.dtype != dtype:
            a = a.view(dtype)
        arrays[name] = a
    params = {k: tuple(v) if isinstance(v, list) else v for k, v in meta["params"].items()}
    return SparseCompressionResult(
        meta["format"], tuple(meta["shape"]), _numpy_dtype(meta["dtype"]), arrays, params, nnz=meta["nnz"]
    )
