"""Checkpoints: named arrays in safetensors or .npz files, read lazily, written atomically.

* :func:`open_checkpoint` opens a ``.safetensors`` file, an ``.npz`` file or
  a directory of safetensors shards as a read-only mapping of names to
  arrays (:class:`Checkpoint`). Opening reads the headers only; each
  ``checkpoint[name]`` maps that one tensor.
* :func:`write_checkpoint` writes a mapping, or an iterable of
  ``(name, array)`` pairs consumed one at a time, to a ``.safetensors`` or
  ``.npz`` file, or with ``max_shard_size`` to a directory of safetensors
  shards and its Hugging Face index; :class:`CheckpointWriter` takes the
  arrays one call at a time.

Both file formats are the ones every other tool reads: safetensors as
Hugging Face's ``safetensors`` package reads and writes it, .npz as
``numpy.load`` does. The details (strict header checks, atomic replacement,
the tensors' layout, dtypes without a safetensors tag, shard directories
committed as a whole) are in :mod:`arraysparse.io._safetensors`,
:mod:`arraysparse.io._npz`, :mod:`arraysparse.io._atomic`,
:mod:`arraysparse.io._shards` and :mod:`arraysparse.io._dtypes`.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from .._compat import optional_import
from . import _dtypes
from ._atomic import Committable, check_not_source, destination, same_file, source_of
from ._npz import METADATA, NpzReader, NpzWriter
from ._safetensors import CARRIED_KEY, SafetensorsReader, SafetensorsWriter, write_planned
from ._shards import ShardedWriter, parse_size, shard_destination, write_planned_shards

__all__ = ["Checkpoint", "CheckpointWriter", "TensorInfo", "open_checkpoint", "write_checkpoint"]

Array = Any
SUFFIXES = (".safetensors", ".npz")


@dataclass(frozen=True)
class TensorInfo:
    """What a checkpoint holds under one name, known without reading its data.

    Attributes
    ----------
    dtype : str
        The canonical dtype name, NumPy's or ml_dtypes' (``"float32"``,
        ``"bfloat16"``, ``"float8_e4m3fn"``), whatever library reads it.
    shape : tuple of int
    file : pathlib.Path
        The file (shard) holding it.
    """

    dtype: str
    shape: tuple[int, ...]
    file: Path

    @property
    def size(self) -> int:
        """Number of elements."""
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        """Bytes of the data."""
        return self.size * (_dtypes.itemsize(self.dtype) or 0)


class Checkpoint(Mapping[str, Array]):
    """A read-only mapping of names to arrays over one or more checkpoint files.

    Made by :func:`open_checkpoint`; see there. ``checkpoint[name]`` reads
    that one tensor; :meth:`info` says what it is without reading it;
    :attr:`metadata` is the files' string metadata. Close it (or use it as a
    context manager) to release the files; arrays already read stay valid.
    """

    def __init__(
        self, path: Path, readers: list[Any], index: dict[str, Any], metadata: Mapping[str, str], like: _dtypes.Like
    ):
        self._path = path
        self._readers = readers
        self._index = index
        self._metadata = MappingProxyType(dict(metadata))
        self._like = like
        self._closed = False

    @property
    def path(self) -> Path:
        """The file or directory opened."""
        return self._path

    @property
    def files(self) -> tuple[Path, ...]:
        """The files read (one, or the shards of a directory)."""
        return tuple(r.path for r in self._readers)

    @property
    def metadata(self) -> Mapping[str, str]:
        """The string metadata: the safetensors header's ``__metadata__`` (for a directory, the
        index file's ``"metadata"``, else the first shard's), the .npz's ``__metadata__`` member."""
        return self._metadata

    @property
    def like(self) -> str:
        """The library arrays are read as: ``"numpy"``, ``"torch"``, ``"jax"``, ``"cupy"`` or ``"array_api_strict"``."""
        return self._like.lib

    def info(self, name: str) -> TensorInfo:
        """Dtype, shape and file of the tensor ``name``, from the header alone."""
        reader = self._reader(name)
        r = reader.records[name]
        return TensorInfo(r.dtype, tuple(r.shape), reader.path)

    def _reader(self, name: str) -> Any:
        try:
            return self._index[name]
        except KeyError:
            raise KeyError(name) from None

    def bits(self, name: str, *, copy: bool = False) -> tuple[str, np.ndarray]:
        """``(dtype, bits)`` of a tensor: its bytes as a NumPy array whatever the dtype (the item's
        unsigned integer for bfloat16 and the like), for copying tensors between files without
        converting them. A read-only view of the file, or with ``copy`` a new writable array."""
        reader = self._reader(name)
        if self._closed:
            msg = f"checkpoint {str(self._path)!r} is closed"
            raise ValueError(msg)
        return reader.records[name].dtype, reader.bits(name, copy=copy)

    def __getitem__(self, name: str) -> Array:
        what = f"tensor {name!r} of {str(self._path)!r}"
        if self._like.lib == "torch" and sys.byteorder == "little" and not self._closed:
            # read straight into a new tensor: no mapped pages faulted in, no second copy
            reader = self._reader(name)
            r = reader.records[name]
            torch = optional_import("torch", purpose="like='torch'")
            out = torch.empty(tuple(r.shape), dtype=_dtypes.torch_dtype(r.dtype, what=what))
            bits = _dtypes.host_bits(out, what=what)[1]
            if reader.read_into(name, bits):
                _check_bools(r.dtype, bits, what)
                return _dtypes.to_device(out, self._like)
        dtype, bits = self.bits(name, copy=self._like.lib == "torch")
        _check_bools(dtype, bits, what)
        return _dtypes.from_bits(bits, dtype, self._like, what=what)

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def close(self) -> None:
        """Release the files. Arrays read before stay valid."""
        for r in self._readers:
            r.close()
        self._closed = True

    def __enter__(self) -> Checkpoint:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = ", closed" if self._closed else ""
        return f"Checkpoint({str(self._path)!r}, {len(self)} tensors, like={self._like.lib!r}{state})"


def _check_bools(dtype: str, bits: np.ndarray, what: str) -> None:
    """A bool tensor read from a file holds only the bytes 0 and 1 (else a ValueError naming it)."""
    if dtype == "bool":
        _dtypes.check_bool_bytes(bits, what=what)


def open_checkpoint(path: str | os.PathLike, /, *, like: Any = "numpy") -> Checkpoint:
    """Open a checkpoint for reading: a mapping of names to arrays, read lazily.

    Parameters
    ----------
    path : str or path-like
        A ``.safetensors`` file, an ``.npz`` file, or a directory of
        ``.safetensors`` shards: with a Hugging Face index
        (``*.safetensors.index.json``, whose ``weight_map`` names each
        tensor's shard) or without one (every ``*.safetensors`` file in it;
        a name in two shards is an error).
    like : {"numpy", "torch", "jax", "cupy", "array_api_strict"} or array
        The library of the arrays read. NumPy: bfloat16 and float8 as
        ml_dtypes arrays (``TypeError`` without ml_dtypes). torch: tensors
        of the torch dtype (``TypeError`` for one torch lacks). JAX: its
        arrays (bfloat16 and float8 included). CuPy (on the current GPU) and
        array-api-strict: copies, for the standard dtypes only (``TypeError``
        for bfloat16 and float8). An array: that array's library and device
        (a CUDA tensor or a CuPy array puts them on its GPU).

    Returns
    -------
    Checkpoint
        A read-only ``Mapping[str, array]``, also a context manager. Opening
        reads and checks the headers only (a ``ValueError`` naming the file
        and the fault for a malformed one). ``checkpoint[name]`` reads that
        one tensor: NumPy arrays are read-only views of the mapped file (no
        copy; pages are read as they are touched; ``.copy()`` one to write
        to it), torch tensors are copies (torch has no read-only tensors).
        ``checkpoint.info(name)`` gives its dtype and shape without reading it.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from arraysparse.io import open_checkpoint, write_checkpoint
    >>> path = os.path.join(tempfile.mkdtemp(), "model.safetensors")
    >>> _ = write_checkpoint(path, {"w": np.eye(2, dtype=np.float32)}, metadata={"step": "10"})
    >>> with open_checkpoint(path) as ckpt:
    ...     print(list(ckpt), ckpt.info("w").shape, dict(ckpt.metadata))
    ...     print(ckpt["w"])
    ['w'] (2, 2) {'step': '10'}
    [[1. 0.]
     [0. 1.]]
    """
    like = _dtypes.check_like(like)
    if not isinstance(path, (str, os.PathLike)):
        msg = f"path must be a str or os.PathLike, got {type(path).__name__}"
        raise TypeError(msg)
    p = Path(path)
    if p.is_dir():
        return _open_directory(p, like)
    if not p.exists():
        msg = f"no such checkpoint: {str(p)!r}"
        raise FileNotFoundError(msg)
    reader = _reader_for(p)
    return Checkpoint(p, [reader], dict.fromkeys(reader.records, reader), reader.metadata, like)


def _reader_for(p: Path) -> Any:
    suffix = p.suffix.lower()
    if suffix == ".safetensors":
        return SafetensorsReader(p)
    if suffix == ".npz":
        return NpzReader(p)
    msg = f"path={str(p)!r} must end in .safetensors or .npz, or be a directory of .safetensors shards"
    raise ValueError(msg)


def _open_directory(p: Path, like: _dtypes.Like) -> Checkpoint:
    indexes = sorted(p.glob("*.safetensors.index.json"))
    if len(indexes) > 1:
        names = ", ".join(i.name for i in indexes)
        msg = f"directory {str(p)!r} has several index files ({names}); open one shard set's files directly"
        raise ValueError(msg)
    readers: list[Any] = []
    try:
        if indexes:
            index, metadata = _indexed(p, indexes[0], readers)
        else:
            index, metadata = _unindexed(p, readers)
    except BaseException:
        for r in readers:
            r.close()
        raise
    return Checkpoint(p, readers, index, metadata, like)


def _indexed(p: Path, index_file: Path, readers: list[Any]) -> tuple[dict[str, Any], dict[str, str]]:
    try:
        doc = json.loads(index_file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        msg = f"{str(index_file)!r} is not a valid index: {e}"
        raise ValueError(msg) from None
    weight_map = doc.get("weight_map") if isinstance(doc, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        msg = f"{str(index_file)!r} is not a valid index: it needs a 'weight_map' object of names to shard files"
        raise ValueError(msg)
    shards: dict[str, Any] = {}
    for shard in dict.fromkeys(weight_map.values()):
        file = p / shard
        if Path(shard).name != shard or not file.is_file():
            msg = f"{str(index_file)!r} names a shard {shard!r} that is not a file in {str(p)!r}"
            raise ValueError(msg)
        shards[shard] = SafetensorsReader(file)
        readers.append(shards[shard])
    index: dict[str, Any] = {}
    for name, shard in weight_map.items():
        if name not in shards[shard].records:
            msg = f"{str(index_file)!r} places {name!r} in {shard!r}, which does not hold it"
            raise ValueError(msg)
        index[name] = shards[shard]
    for shard, reader in shards.items():
        extra = [n for n in reader.records if n not in index]
        if extra:
            msg = f"shard {shard!r} holds {extra[:3]} that {str(index_file.name)!r} does not list"
            raise ValueError(msg)
    raw = doc.get("metadata") or {}
    metadata = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in dict(raw).items()}
    return index, metadata


def _unindexed(p: Path, readers: list[Any]) -> tuple[dict[str, Any], dict[str, str]]:
    files = sorted(f for f in p.glob("*.safetensors") if f.is_file())
    if not files:
        msg = f"directory {str(p)!r} holds no .safetensors files"
        raise ValueError(msg)
    index: dict[str, Any] = {}
    for file in files:
        reader = SafetensorsReader(file)
        readers.append(reader)
        for name in reader.records:
            if name in index:
                msg = f"tensor {name!r} is in two shards: {index[name].path.name!r} and {file.name!r}"
                raise ValueError(msg)
            index[name] = reader
    return index, dict(readers[0].metadata)


# -- writing ---------------------------------------------------------------------
def str_metadata(metadata: Any) -> dict[str, str]:
    """``metadata`` (None for none) as a dict of str to str; TypeError for anything else. The
    rule every writer shares; each adds the keys it reserves."""
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        msg = f"metadata must be a mapping of str to str, got {type(metadata).__name__}"
        raise TypeError(msg)
    for k, v in metadata.items():
        if not isinstance(k, str) or not isinstance(v, str):
            msg = f"metadata must map str to str; got {k!r}: {v!r} ({type(k).__name__} to {type(v).__name__})"
            raise TypeError(msg)
    return dict(metadata)


def _check_metadata(metadata: Any) -> dict[str, str]:
    metadata = str_metadata(metadata)
    if CARRIED_KEY in metadata:
        msg = f"metadata key {CARRIED_KEY!r} is reserved (the writer records dtypes without a safetensors tag there)"
        raise ValueError(msg)
    return dict(metadata)


def _check_name(name: Any, seen: set[str]) -> str:
    if not isinstance(name, str):
        msg = f"tensor names must be str, got {type(name).__name__} {name!r}"
        raise TypeError(msg)
    if not name or name in (METADATA, "__metadata__"):
        msg = f"tensor name {name!r} is not allowed (empty, or the reserved '__metadata__')"
        raise ValueError(msg)
    if name in seen:
        msg = f"tensor name {name!r} is given twice"
        raise ValueError(msg)
    seen.add(name)
    return name


def _suffix(p: Path) -> str:
    suffix = p.suffix.lower()
    if suffix not in SUFFIXES:
        msg = f"path={str(p)!r} must end in .safetensors or .npz"
        raise ValueError(msg)
    return suffix


def _bits_of(name: str, value: Any, dest: Path) -> tuple[str, np.ndarray]:
    if isinstance(value, Mapping):
        msg = (
            f"items[{name!r}] is a mapping; checkpoints hold flat names "
            "(flatten nested models with arraysparse.model.flatten_model)"
        )
        raise TypeError(msg)
    dtype, bits = _dtypes.host_bits(value, what=f"items[{name!r}]")
    check_not_source(dest, source_of(bits), f"items[{name!r}]")
    return dtype, bits


class CheckpointWriter(Committable):
    """Write a checkpoint one array at a time; it appears complete on :meth:`commit`, or not at all.

    Parameters
    ----------
    path : str or path-like
        The ``.safetensors`` or ``.npz`` file to write (replaced atomically if
        it exists); with ``max_shard_size``, the directory of shards (see
        :func:`write_checkpoint`).
    metadata : mapping of str to str, optional
        Stored in the header (safetensors' ``__metadata__``, the .npz's
        ``__metadata__`` member); for shards, in the index's ``"metadata"``.
    max_shard_size : int or str, optional
        Write a directory of safetensors shards of at most this many bytes of
        tensor data each (``"5GB"``, ``"500MB"``, ``"2GiB"``, an int), and its
        Hugging Face index, as :func:`write_checkpoint` does.
    overwrite : bool
        With ``max_shard_size``: replace a checkpoint the directory already
        holds (refused otherwise). A file is always replaced.

    Raises
    ------
    ValueError
        A path of the wrong kind (no ``.safetensors`` / ``.npz`` suffix
        without ``max_shard_size``; a file name or ``.npz`` with it), a
        missing parent directory, a bad ``max_shard_size``, a directory
        holding a checkpoint without ``overwrite``, reserved metadata keys.

    Notes
    -----
    As a context manager it commits on a clean exit and aborts on an
    exception: the destination is then as it was and no temporary file is
    left. safetensors needs its header (every tensor's shape) before the
    data, so each array's bytes go to an unnamed temporary file in the
    destination's directory as they come, and are copied behind the header on
    commit (kernel-side where the system allows): memory stays at about one
    array, the disk briefly holds the data twice (with shards: one shard's
    data, each shard being written when the next tensor would overflow it).
    .npz members are streamed into the file directly.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from arraysparse.io import CheckpointWriter, open_checkpoint
    >>> path = os.path.join(tempfile.mkdtemp(), "layers.safetensors")
    >>> with CheckpointWriter(path, metadata={"note": "one at a time"}) as w:
    ...     for i in range(3):
    ...         w.add(f"layer{i}", np.full((2,), i, dtype=np.int16))
    >>> with open_checkpoint(path) as ckpt:
    ...     print(list(ckpt), ckpt["layer2"])
    ['layer0', 'layer1', 'layer2'] [2 2]
    """

    def __init__(
        self,
        path: str | os.PathLike,
        /,
        *,
        metadata: Mapping[str, str] | None = None,
        max_shard_size: int | str | None = None,
        overwrite: bool = False,
    ):
        limit = _limit(max_shard_size, overwrite)
        self.path = destination(path) if limit is None else shard_destination(path)
        """The destination file or directory (it appears there on :meth:`commit`)."""
        meta = _check_metadata(metadata)
        self._names: set[str] = set()
        if limit is not None:
            self._writer: Any = ShardedWriter(self.path, meta, limit, overwrite=overwrite)
        else:
            suffix = _suffix(self.path)
            self._writer = (SafetensorsWriter if suffix == ".safetensors" else NpzWriter)(self.path, meta)
        self._open = True

    def add(self, name: str, array: Array, /) -> None:
        """Append one array under ``name``: any library's (see :func:`write_checkpoint`)."""
        self._check_open()
        _check_name(name, self._names)
        dtype, bits = _bits_of(name, array, self.path)
        self._writer.add(name, dtype, bits)

    def add_bits(self, name: str, dtype: str, bits: np.ndarray, /) -> None:
        """Append a tensor given as ``(dtype, bits)``, as :meth:`Checkpoint.bits` and
        :func:`arraysparse.io._dtypes.host_bits` give it: copied without converting."""
        self._check_open()
        _check_name(name, self._names)
        check_not_source(self.path, source_of(bits), f"tensor {name!r}")
        self._writer.add(name, dtype, bits)

    def _check_open(self) -> None:
        if not self._open:
            msg = f"the writer of {str(self.path)!r} is already committed or aborted"
            raise ValueError(msg)

    def commit(self, *, metadata: Mapping[str, str] | None = None) -> Path:
        """Write the file (or the last shard and the index) and put it in place; returns its path.
        ``metadata`` adds to the metadata given at the start (for what is known only at the end,
        such as a count)."""
        self._check_open()
        extra = _check_metadata(metadata)
        self._open = False
        self._writer.metadata.update(extra)
        self._writer.commit()
        return self.path

    def abort(self) -> None:
        """Drop everything written; the destination is left as it was."""
        if self._open:
            self._open = False
            self._writer.abort()


def write_checkpoint(
    path: str | os.PathLike,
    items: Mapping[str, Array] | Iterable[tuple[str, Array]],
    /,
    *,
    metadata: Mapping[str, str] | None = None,
    max_shard_size: int | str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write named arrays to a ``.safetensors`` or ``.npz`` file, or to a directory of shards, atomically.

    Parameters
    ----------
    path : str or path-like
        The file; its suffix chooses the format. An existing file is replaced
        only once the new one is complete; an error (or a kill) meanwhile
        leaves it as it was. Refused when an array is read from that very file.
        With ``max_shard_size``: a directory (made if missing; its parent
        must exist), never a ``.safetensors`` or ``.npz`` name.
    items : mapping or iterable of (name, array)
        Flat names to arrays of any supported library: NumPy (ml_dtypes'
        bfloat16 / float8 included), dense torch (bfloat16 stored as BF16),
        JAX, array-api-strict, CuPy. Host arrays are read in place (DLPack /
        ``np.asarray``, no copy); device arrays (CuPy, CUDA torch, JAX on a
        GPU) are copied to the host here, explicitly: writing a file asks for
        their bytes. Dask arrays are refused (:func:`arraysparse.to_zarr`
        writes them band by band). An iterable (a
        generator, say) is consumed one pair at a time, so memory stays at
        about one array; an open :class:`Checkpoint` is copied tensor by
        tensor without converting anything.
    metadata : mapping of str to str, optional
        Stored in the file (see :class:`CheckpointWriter`); for shards, in
        the index's ``"metadata"``, beside the ``"total_size"`` it computes
        (a ``"total_size"`` given is replaced).
    max_shard_size : int or str, optional
        Bytes of tensor data a shard may hold: an int, or a number and a unit
        as ``huggingface_hub`` reads them, any case (``"5GB"``, ``"500MB"``;
        KB, MB, GB, TB are powers of 1000, KiB, MiB, GiB, TiB of 1024).
        Writes ``path`` as Hugging Face does with ``max_shard_size``: the
        tensors, in order, in ``model-00001-of-0000N.safetensors`` ... (a tensor
        larger than the limit gets a shard of its own), and
        ``model.safetensors.index.json`` (``{"metadata": {"total_size": ...},
        "weight_map": {name: shard}}``), which :func:`open_checkpoint` and
        transformers read. The limit counts tensor bytes, as Hugging Face's
        does; each file adds its header. One shard still gets an index.
    overwrite : bool
        With ``max_shard_size``, an existing directory that already holds a
        checkpoint (an index, ``*.safetensors`` files) is refused unless
        ``overwrite=True``, which replaces that checkpoint (the index, the
        shards it names and a ``model.safetensors``; without an index, every
        ``*.safetensors``) and nothing else: other files (``config.json``,
        tokenizers) stay. A file ``path`` is always replaced.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    ValueError
        A path of the wrong kind, a bad ``max_shard_size`` (the message names
        it and the value), a directory holding a checkpoint without
        ``overwrite``, a tensor name given twice or reserved, an array read
        from the file (or a file of the directory) being written. Nothing is written.
    TypeError
        Items that are not names and arrays, metadata that is not str to str.

    Notes
    -----
    safetensors: any tool reads the file (``safetensors.safe_open``,
    ``safetensors.torch.load_file``, ...). Tensors are laid out largest item
    first, each aligned to its item size; the header keeps the given order.
    Dtypes with no safetensors tag are stored as their bits (ml_dtypes'
    other float8 / int4 types as ``U8``; complex128 as ``F64`` with a last
    axis of 2) and named in the metadata key ``"arraysparse.dtypes"``, which
    :func:`open_checkpoint` applies and hides.
    .npz: ``numpy.load`` reads it; members are stored uncompressed and
    64-byte aligned, so they are mapped, not copied, when read back.
    Shards: written into a hidden staging directory and committed as a
    whole: a new directory appears complete by one ``rename``; in an
    existing one the index is the commit point, and at no moment does an
    index name a missing or partial file (the design is in
    :mod:`arraysparse.io._shards`). Memory stays at about one array.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from arraysparse.io import open_checkpoint, write_checkpoint
    >>> path = os.path.join(tempfile.mkdtemp(), "squares.npz")
    >>> _ = write_checkpoint(path, ((f"x{i}", np.arange(3) ** i) for i in range(3)))
    >>> sorted(np.load(path))
    ['x0', 'x1', 'x2']
    >>> open_checkpoint(path)["x2"]
    array([0, 1, 4])

    A directory of shards, as Hugging Face writes them:

    >>> folder = os.path.join(tempfile.mkdtemp(), "model")
    >>> layers = {f"layer{i}": np.ones((256, 256), np.float32) for i in range(3)}  # 256 KiB each
    >>> _ = write_checkpoint(folder, layers, max_shard_size="600KB")
    >>> sorted(os.listdir(folder))
    ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors', 'model.safetensors.index.json']
    >>> with open_checkpoint(folder) as ckpt:
    ...     print(list(ckpt), ckpt.info("layer2").file.name, ckpt.metadata["total_size"])
    ['layer0', 'layer1', 'layer2'] model-00002-of-00002.safetensors 786432
    """
    limit = _limit(max_shard_size, overwrite)
    if limit is not None:
        return _write_shards(path, items, _check_metadata(metadata), limit, overwrite)
    dest = destination(path)
    suffix = _suffix(dest)
    meta = _check_metadata(metadata)
    if isinstance(items, Checkpoint):
        for f in items.files:
            if same_file(dest, f):
                msg = f"items is the checkpoint {str(items.path)!r}, read from the file being written; write elsewhere"
                raise ValueError(msg)
        if suffix == ".safetensors":
            planned = [(n, items.info(n).dtype, items.info(n).shape, _fetch(items, n)) for n in items]
            write_planned(dest, planned, meta)
            return dest
        pairs: Iterable[tuple[str, Any]] = ((n, items.bits(n)) for n in items)
        return _stream(dest, pairs, meta, raw=True)
    if isinstance(items, dict) and suffix == ".safetensors":
        write_planned(dest, _prepared(items, dest), meta)
        return dest
    if isinstance(items, Mapping):
        items = items.items()
    elif isinstance(items, (str, bytes)) or not isinstance(items, Iterable):
        msg = f"items must be a mapping or an iterable of (name, array) pairs, got {type(items).__name__}"
        raise TypeError(msg)
    return _stream(dest, items, meta, raw=False)


def _prepared(items: dict[str, Any], dest: Path) -> list[tuple[str, str, tuple[int, ...], Any]]:
    """``(name, dtype, shape, bits getter)`` of every array of a dict, names checked, for a planned write."""
    seen: set[str] = set()
    prepared = []
    for name, value in items.items():
        _check_name(name, seen)
        dtype, bits = _bits_of(name, value, dest)
        prepared.append((name, dtype, tuple(bits.shape), _constant(bits)))
    return prepared


def _limit(max_shard_size: Any, overwrite: Any) -> int | None:
    """``max_shard_size`` in bytes (None: one file), and ``overwrite`` checked."""
    if not isinstance(overwrite, bool):
        msg = f"overwrite must be a bool, got {overwrite!r}"
        raise TypeError(msg)
    return None if max_shard_size is None else parse_size(max_shard_size)


def _write_shards(
    path: str | os.PathLike, items: Any, meta: dict[str, str], limit: int, overwrite: bool
) -> Path:
    """write_checkpoint's directory of shards: planned for a checkpoint or a dict, else streamed."""
    dest = shard_destination(path)
    if isinstance(items, Checkpoint):
        for f in items.files:
            check_not_source(dest, f, f"items (the checkpoint {str(items.path)!r})")
        planned = [(n, items.info(n).dtype, items.info(n).shape, _fetch(items, n)) for n in items]
        return write_planned_shards(dest, planned, meta, limit, overwrite=overwrite)
    if isinstance(items, dict):
        return write_planned_shards(dest, _prepared(items, dest), meta, limit, overwrite=overwrite)
    if isinstance(items, Mapping):
        items = items.items()
    elif isinstance(items, (str, bytes)) or not isinstance(items, Iterable):
        msg = f"items must be a mapping or an iterable of (name, array) pairs, got {type(items).__name__}"
        raise TypeError(msg)
    return _stream(dest, items, meta, raw=False, max_shard_size=limit, overwrite=overwrite)


def write_prepared(
    path: str | os.PathLike,
    prepared: Iterable[tuple[str, str, np.ndarray]],
    metadata: Mapping[str, str] | None,
    *,
    max_shard_size: int | str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``(name, dtype, bits)`` triples (from :func:`._dtypes.host_bits`) to a checkpoint:
    the writers' way in for callers that hold the arrays already (save / load)."""
    limit = _limit(max_shard_size, overwrite)
    dest = destination(path) if limit is None else shard_destination(path)
    suffix = _suffix(dest) if limit is None else ""
    seen: set[str] = set()
    triples = list(prepared)
    for name, _, bits in triples:
        _check_name(name, seen)
        check_not_source(dest, source_of(bits), f"tensor {name!r}")
    planned = [(n, d, tuple(b.shape), _constant(b)) for n, d, b in triples]
    if limit is not None:
        return write_planned_shards(dest, planned, metadata, limit, overwrite=overwrite)
    if suffix == ".safetensors":
        write_planned(dest, planned, metadata)
        return dest
    writer = NpzWriter(dest, metadata)
    try:
        for name, dtype, bits in triples:
            writer.add(name, dtype, bits)
    except BaseException:
        writer.abort()
        raise
    writer.commit()
    return dest


def _fetch(ckpt: Checkpoint, name: str) -> Any:
    return lambda: ckpt.bits(name)[1]


def _constant(bits: np.ndarray) -> Any:
    return lambda: bits


def _stream(
    dest: Path, pairs: Iterable[Any], meta: dict[str, str], *, raw: bool, max_shard_size: int | None = None,
    overwrite: bool = False,
) -> Path:
    with CheckpointWriter(dest, metadata=meta, max_shard_size=max_shard_size, overwrite=overwrite) as w:
        for pair in pairs:
            try:
                name, value = pair
            except (TypeError, ValueError):
                msg = f"items must yield (name, array) pairs, got {type(pair).__name__}"
                raise TypeError(msg) from None
            if raw:  # (dtype, bits) of a checkpoint: no conversion
                w.add_bits(name, *value)
            else:
                w.add(name, value)
            del pair, value  # let the array go before the iterator makes the next one
    return dest
