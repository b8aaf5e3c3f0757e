"""save / load: compressed arrays, compressed models and model masks in a checkpoint file.

:func:`save` writes an object held in memory; :class:`ModelWriter` writes a
model entry by entry (each array to the file as it comes); :func:`load`
reads either back.

What a file holds
-----------------
:func:`save` writes a ``.safetensors`` or ``.npz`` checkpoint
(:mod:`arraysparse.io.checkpoint`) whose tensors are the objects' arrays and
whose string metadata describes them; any safetensors or NumPy reader opens
it, and the metadata says how to put the objects back together:

``arraysparse.layout``
    ``"1"``: the version of this layout. :func:`load` refuses a larger one
    (a file from a newer arraysparse) by name.
``arraysparse.version``
    The arraysparse version that wrote the file (for the record).
``arraysparse.content``
    ``"result"`` (one :class:`~arraysparse.SparseCompressionResult`),
    ``"model"`` (a nested mapping of results, dense arrays and masks) or
    ``"model_mask"`` (a :class:`~arraysparse.model.ModelMask`).
``arraysparse.entries``
    A JSON list, one object per leaf of the content, in order. Every entry
    has ``"path"`` (the list of keys from the top of the mapping; ``[]`` for
    a lone result) and ``"kind"``:

    * ``"sparse"``: a compressed array, with ``"format"`` (``"csr"``, ``"2:4"``,
      ...), ``"shape"``, ``"dtype"`` (canonical name: ``"bfloat16"`` stays
      bfloat16), ``"params"`` (the format's: ``{"block": [2, 2]}``,
      ``{"n": 2, "m": 4}``, ``{"width": 3}``, ``{}``), ``"nnz"`` (or null
      when not counted), ``"backend"`` (the library it was saved from) and
      ``"arrays"``: the format's array names to tensor names;
    * ``"dense"``: an array left dense, ``"tensor"``, ``"dtype"``, ``"shape"``;
    * ``"mask"``: a pruning mask, ``"tensor"`` (uint8, the mask's C-order
      bits packed as ``numpy.packbits(mask, bitorder="little")``), ``"shape"``,
      ``"pattern"`` (``{"kind", "axis", "block", "n", "m"}``) and, in a model
      mask, ``"rule"`` and ``"pruned"`` (its report line; ``"zeros"`` too when
      the report counted the pruned model's zeros, as ``prune_model``'s does);
    * ``"mapping"``: an empty mapping (so the tree comes back whole).

Tensor names are the path joined with ``"."`` (a state_dict's names: a dense
``fc.bias`` is stored as ``fc.bias``), then ``"." + array`` for a compressed
array (``fc.weight.indptr``); a lone result's tensors are its array names.
The entries name the tensors explicitly, so readers need no naming rule.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._compat import backend_name
from ..formats.base import SparseCompressionResult, SparseFormat
from ..masks import PruningMask
from ..patterns import PatternKind, SparsityPattern
from . import _dtypes
from ._atomic import Committable
from ._shards import parse_size
from .checkpoint import CheckpointWriter, open_checkpoint, str_metadata, write_prepared

__all__ = ["LAYOUT", "ModelWriter", "load", "save"]

#: The layout version this arraysparse writes, and the newest it reads.
LAYOUT = 1
"""The version of the file layout this release writes; load() refuses a newer one."""
PREFIX = "arraysparse."
#: The arrays of each format, as compress() names them.
FORMAT_ARRAYS: dict[SparseFormat, tuple[str, ...]] = {
    SparseFormat.COO: ("row", "col", "data"),
    SparseFormat.CSR: ("indptr", "indices", "data"),
    SparseFormat.CSC: ("indptr", "indices", "data"),
    SparseFormat.BSR: ("indptr", "indices", "data"),
    SparseFormat.ELL: ("indices", "data"),
    SparseFormat.DIA: ("offsets", "data"),
    SparseFormat.STRUCTURED_N_TO_M: ("values", "packed_positions"),
    SparseFormat.STRUCTURED_2_TO_4: ("values", "packed_positions"),
    SparseFormat.BITMASK: ("values", "bitmask"),
}

Array = Any


def _version() -> str:
    import arraysparse

    return arraysparse.__version__


# -- save -----------------------------------------------------------------------------
def save(
    path: str | os.PathLike,
    obj: Any,
    /,
    *,
    metadata: Mapping[str, str] | None = None,
    max_shard_size: int | str | None = None,
    overwrite: bool = False,
) -> Path:
    """Save a compressed array, a compressed model or a model mask to a ``.safetensors`` or ``.npz`` file.

    Parameters
    ----------
    path : str or path-like
        The file; its suffix chooses the format. Written atomically: an
        existing file is replaced only once the new one is complete. With
        ``max_shard_size``, a directory of safetensors shards.
    obj : SparseCompressionResult, mapping or ModelMask
        * a :class:`~arraysparse.SparseCompressionResult`;
        * a model: a mapping, nested or flat, of names to
          ``SparseCompressionResult``, dense arrays and
          :class:`~arraysparse.PruningMask` (e.g. what
          :func:`arraysparse.compress_model` returns);
        * a :class:`~arraysparse.model.ModelMask`.

        Arrays of any library arraysparse supports: NumPy (ml_dtypes'
        bfloat16 and float8 included), dense torch tensors (bfloat16 as
        BF16), JAX, array-api-strict, CuPy. Host arrays are read in place
        (DLPack / ``np.asarray``, no copy). Device arrays (CuPy, CUDA torch,
        JAX on a GPU) are copied to the host here: saving is an explicit
        request for their bytes, so this is the one place arraysparse moves
        them there for you. Dask arrays are refused with a ``TypeError``
        (:func:`arraysparse.to_zarr` writes them band by band).
    metadata : mapping of str to str, optional
        Your own entries, stored beside the layout's (keys must not start
        with ``"arraysparse."``).
    max_shard_size : int or str, optional
        Write ``path`` as a directory of safetensors shards of at most this
        many bytes of tensor data (``"5GB"``, ``"2GiB"``, an int) and its
        Hugging Face index, which holds the layout's metadata, as
        :func:`arraysparse.io.write_checkpoint` does; :func:`load` reads the
        directory back.
    overwrite : bool
        With ``max_shard_size``: replace a checkpoint the directory already
        holds (refused otherwise; other files in it stay).

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    TypeError
        ``obj`` of another type, an entry that is not an array, a result or
        a mask, a Dask array.
    ValueError
        Two entries stored under one tensor name, reserved metadata keys, a
        bad ``max_shard_size`` or path (see :func:`arraysparse.io.write_checkpoint`).

    Notes
    -----
    The layout (tensor names and metadata keys) is described in
    :mod:`arraysparse.io.results` and ``docs/persistence.md``.

    Examples
    --------
    >>> import numpy as np, tempfile, os, arraysparse as asp
    >>> r = asp.compress(np.array([[0.0, 2.0, 0.0], [1.0, 0.0, 3.0]]), "csr")
    >>> path = os.path.join(tempfile.mkdtemp(), "r.safetensors")
    >>> _ = asp.save(path, r)
    >>> back = asp.load(path)
    >>> back.format, back.shape, back.data
    (<SparseFormat.CSR: 'csr'>, (2, 3), array([2., 1., 3.]))
    >>> back.to_dense()
    array([[0., 2., 0.],
           [1., 0., 3.]])
    """
    meta = _user_metadata(metadata)
    if max_shard_size is not None:
        parse_size(max_shard_size)  # a bad size is refused before any array is read
    tensors: list[tuple[str, str, np.ndarray]] = []
    layout = _Layout(lambda name, dtype, bits: tensors.append((name, dtype, bits)))
    if isinstance(obj, SparseCompressionResult):
        content = "result"
        layout.result([], obj, "obj")
    elif _is_model_mask(obj):
        content = "model_mask"
        for rec in obj.report:
            entry = layout.mask([rec.name], obj[rec.name], f"obj[{rec.name!r}]")
            entry.update(rule=rec.rule, pruned=int(rec.pruned))
            if rec.zeros is not None:
                entry.update(zeros=int(rec.zeros))
    elif isinstance(obj, Mapping):
        content = "model"
        layout.tree([], obj)
    else:
        msg = (
            "obj must be a SparseCompressionResult, a mapping of names to results / arrays / masks, "
            f"or a ModelMask; got {type(obj).__name__}"
        )
        raise TypeError(msg)
    return write_prepared(path, tensors, {**meta, **layout.metadata(content)}, max_shard_size=max_shard_size,
                          overwrite=overwrite)


def _user_metadata(metadata: Any) -> dict[str, str]:
    metadata = str_metadata(metadata)
    for k in metadata:
        if k.startswith(PREFIX):
            msg = f"metadata key {k!r} is reserved: keys starting with {PREFIX!r} describe the layout"
            raise ValueError(msg)
    return metadata


def _is_model_mask(obj: Any) -> bool:
    from .._model.report import ModelMask

    return isinstance(obj, ModelMask)


def _where(path: list[str]) -> str:
    return "model" + "".join(f"[{k!r}]" for k in path)


class _Layout:
    """The entries of a file being written; each array goes to ``sink(name, dtype, bits)`` as it comes."""

    def __init__(self, sink: Callable[[str, str, np.ndarray], None]):
        self.sink = sink
        self.entries: list[dict[str, Any]] = []
        self.owner: dict[str, str] = {}

    def metadata(self, content: str) -> dict[str, str]:
        return {
            PREFIX + "layout": str(LAYOUT),
            PREFIX + "version": _version(),
            PREFIX + "content": content,
            PREFIX + "entries": json.dumps(self.entries, separators=(",", ":")),
        }

    def tensor(self, name: str, value: Array, what: str) -> tuple[str, tuple[int, ...]]:
        if name in self.owner:
            msg = f"{what} and {self.owner[name]} would both be stored as the tensor {name!r}; rename one of them"
            raise ValueError(msg)
        dtype, bits = _dtypes.host_bits(value, what=what)
        self.sink(name, dtype, bits)
        self.owner[name] = what
        return dtype, tuple(int(s) for s in bits.shape)

    def value(self, path: list[str], value: Any) -> None:
        """One entry of a model: a result, a mask, a sub-mapping or a dense array."""
        what = _where(path)
        if isinstance(value, SparseCompressionResult):
            self.result(path, value, what)
        elif isinstance(value, PruningMask):
            self.mask(path, value, what)
        elif isinstance(value, Mapping):
            self.tree(path, value)
        else:
            scalar = (str, bytes, int, float, complex, bool, type(None), list, tuple)
            if isinstance(value, scalar) and not isinstance(value, np.generic):  # NumPy scalars: 0-d arrays
                msg = (
                    f"{what} is a {type(value).__name__}; a saved model holds arrays, "
                    "SparseCompressionResult and PruningMask only"
                )
                raise TypeError(msg)
            dtype, shape = self.tensor(".".join(path), value, what)
            self.entries.append({"path": path, "kind": "dense", "tensor": ".".join(path), "dtype": dtype,
                                 "shape": list(shape)})

    def tree(self, path: list[str], tree: Mapping) -> None:
        if not tree and path:
            self.entries.append({"path": path, "kind": "mapping"})
        for key, value in tree.items():
            if not isinstance(key, str) or not key:
                msg = f"model keys must be non-empty str; {_where(path)} has the key {key!r}"
                raise TypeError(msg)
            self.value([*path, key], value)

    def result(self, path: list[str], r: SparseCompressionResult, what: str) -> None:
        names = {}
        for array_name, a in r.arrays.items():
            tensor = ".".join([*path, array_name])
            self.tensor(tensor, a, f"{what} ({r.format}) array {array_name!r}")
            names[array_name] = tensor
        try:
            params = json.loads(json.dumps(dict(r.params)))
        except TypeError:
            msg = f"{what} has parameters {dict(r.params)} that are not ints and tuples; they cannot be saved"
            raise TypeError(msg) from None
        self.entries.append({
            "path": path, "kind": "sparse", "format": r.format.value, "shape": list(r.shape),
            "dtype": _dtypes.name_of(r.dtype, what=what), "params": params,
            "nnz": getattr(r, "_nnz", None), "backend": r.backend, "arrays": names,
        })

    def mask(self, path: list[str], m: PruningMask, what: str) -> dict[str, Any]:
        _, bits = _dtypes.host_bits(m.mask, what=what)
        packed = np.packbits(bits.reshape(-1), bitorder="little")
        tensor = ".".join(path)
        self.tensor(tensor, packed, what)
        p = m.pattern
        pattern = {"kind": p.kind.value, "axis": p.axis, "block": list(p.block) if p.block else None,
                   "n": p.n, "m": p.m}
        entry = {"path": path, "kind": "mask", "tensor": tensor, "shape": list(m.shape), "pattern": pattern,
                 "backend": backend_name(m.mask)}
        self.entries.append(entry)
        return entry


class ModelWriter(Committable):
    """Save a model one entry at a time: what :func:`save` writes for a mapping, in about one entry's memory.

    Parameters
    ----------
    path : str or path-like
        The ``.safetensors`` or ``.npz`` file (written atomically, as by
        :func:`save`); with ``max_shard_size``, the directory of shards.
    metadata : mapping of str to str, optional
        Your own entries (keys must not start with ``"arraysparse."``).
    max_shard_size : int or str, optional
        Write a directory of safetensors shards of at most this many bytes
        of tensor data each, and its index (see :func:`save`); each shard is
        written when the next array would overflow it.
    overwrite : bool
        With ``max_shard_size``: replace a checkpoint the directory already holds.

    Notes
    -----
    :meth:`add` takes a key (one level: a dotted name such as ``"fc.weight"``
    stays one key, as in a state_dict) or a sequence of keys (a nested
    path), and a value as :func:`save` takes them in a model. Each array is
    handed to a :class:`~arraysparse.io.CheckpointWriter` at once, so a
    model can be compressed and written tensor by tensor; the layout's
    metadata is written on :meth:`commit`. :func:`load` gives the model back
    as nested dicts. As a context manager it commits on a clean exit and
    aborts (leaving the destination as it was) on an exception.

    Examples
    --------
    >>> import numpy as np, tempfile, os, arraysparse as asp
    >>> from arraysparse.io import ModelWriter
    >>> path = os.path.join(tempfile.mkdtemp(), "model.safetensors")
    >>> with ModelWriter(path) as w:
    ...     for name in ("fc1.weight", "fc2.weight"):
    ...         w.add(name, asp.compress(np.eye(4), "csr"))
    ...     w.add(("head", "bias"), np.zeros(4))
    >>> back = asp.load(path)
    >>> list(back), back["head"]
    (['fc1.weight', 'fc2.weight', 'head'], {'bias': array([0., 0., 0., 0.])})
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
        meta = _user_metadata(metadata)
        self._writer = CheckpointWriter(path, metadata=meta, max_shard_size=max_shard_size, overwrite=overwrite)
        self._layout = _Layout(self._writer.add_bits)
        self._taken: set[tuple[str, ...]] = set()
        self._inner: set[tuple[str, ...]] = set()

    @property
    def path(self) -> Path:
        """The destination file or directory (it appears there on :meth:`commit`)."""
        return self._writer.path

    def add(self, key: str | Sequence[str], value: Any, /) -> None:
        """Write one entry: a SparseCompressionResult, an array, a PruningMask or a mapping of them."""
        path = [key] if isinstance(key, str) else list(key) if isinstance(key, Sequence) else None
        if not path or not all(isinstance(k, str) and k for k in path):
            msg = f"key must be a non-empty str or a sequence of them, got {key!r}"
            raise TypeError(msg)
        here = tuple(path)
        clash = here in self._taken or here in self._inner or any(here[:i] in self._taken for i in range(1, len(here)))
        if clash:
            msg = f"key {key!r} is already written (or sits inside, or above, an entry already written)"
            raise ValueError(msg)
        self._layout.value(path, value)
        self._taken.add(here)
        self._inner.update(here[:i] for i in range(1, len(here)))

    def commit(self) -> Path:
        """Write the layout's metadata, and put the file in place; returns its path."""
        return self._writer.commit(metadata=self._layout.metadata("model"))

    def abort(self) -> None:
        """Drop everything written; the destination is left as it was."""
        self._writer.abort()


# -- load -----------------------------------------------------------------------------
def load(path: str | os.PathLike, /, *, like: Any = "numpy") -> Any:
    """Load what :func:`save` wrote: a SparseCompressionResult, a model (nested dicts) or a ModelMask.

    Parameters
    ----------
    path : str or path-like
        A ``.safetensors`` or ``.npz`` file written by :func:`save`, or a
        directory of shards it wrote with ``max_shard_size``.
    like : {"numpy", "torch", "jax", "cupy", "array_api_strict"} or array
        The library of the arrays given back, whatever library saved them.
        ``"numpy"`` (the default): NumPy arrays, bfloat16 and float8 as
        ml_dtypes arrays, read-only views of the mapped file (nothing is
        copied; ``.copy()`` one to write to it). ``"torch"``: CPU tensors
        (copies), ``torch.bfloat16`` for bfloat16. ``"jax"``: JAX arrays on
        the default device (bfloat16 and float8 too). ``"cupy"`` (the
        current GPU) and ``"array_api_strict"``: copies, standard dtypes only
        (``TypeError`` for bfloat16 / float8). An array: its library and its
        device (``like=cupy_array`` puts everything on that array's GPU,
        ``like=cuda_tensor`` on its CUDA device). A result's ``dtype`` is
        that library's. ``ValueError`` for anything else; a missing library
        is a ``ModuleNotFoundError`` naming the extra that installs it.

    Returns
    -------
    SparseCompressionResult, dict or ModelMask
        What was saved: a result equal to the saved one array for array
        (values, indices, dtypes, shape, format parameters); a model as
        nested dicts with the saved keys; a ModelMask with its report.

    Raises
    ------
    ValueError
        For a file that is not an arraysparse file (its tensors are still
        readable with :func:`arraysparse.io.open_checkpoint`), one written
        with a newer layout by a newer arraysparse, or an inconsistent one.

    Examples
    --------
    >>> import numpy as np, tempfile, os, arraysparse as asp
    >>> model = {"fc": {"weight": asp.compress(np.eye(4, dtype=np.float32), "bitmask"),
    ...                 "bias": np.zeros(4, np.float32)}}
    >>> path = os.path.join(tempfile.mkdtemp(), "model.npz")
    >>> _ = asp.save(path, model)
    >>> back = asp.load(path, like="torch")
    >>> back["fc"]["weight"].format, back["fc"]["weight"].dtype, back["fc"]["bias"]
    (<SparseFormat.BITMASK: 'bitmask'>, torch.float32, tensor([0., 0., 0., 0.]))
    """
    like = _dtypes.check_like(like)
    with open_checkpoint(path, like=like) as ckpt:
        where = str(ckpt.path)
        content, entries = _read_layout(ckpt.metadata, where)
        objects = [(e["path"], _build(ckpt, e, like, where)) for e in entries]
        _check_all_used(ckpt, entries, where)
    if content == "result":
        if len(objects) != 1 or objects[0][0] != [] or not isinstance(objects[0][1], SparseCompressionResult):
            raise _bad(where, "content 'result' must have exactly one sparse entry with path []")
        return objects[0][1]
    if content == "model_mask":
        return _model_mask(entries, objects, where)
    return _nest(objects, where)


def _bad(where: str, what: str) -> ValueError:
    return ValueError(f"{where!r} is not a consistent arraysparse file: {what}")


def _read_layout(metadata: Mapping[str, str], where: str) -> tuple[str, list[dict[str, Any]]]:
    layout = metadata.get(PREFIX + "layout")
    if layout is None:
        msg = (
            f"{where!r} is not an arraysparse file (its metadata has no {PREFIX + 'layout'!r}); "
            "read its tensors with arraysparse.io.open_checkpoint"
        )
        raise ValueError(msg)
    try:
        number = int(layout)
    except ValueError:
        raise _bad(where, f"layout {layout!r} is not a number") from None
    if number > LAYOUT:
        version = metadata.get(PREFIX + "version", "unknown")
        msg = (
            f"{where!r} was written with layout {number} by arraysparse {version}; this arraysparse "
            f"({_version()}) reads layouts up to {LAYOUT}: upgrade arraysparse to load it"
        )
        raise ValueError(msg)
    content = metadata.get(PREFIX + "content")
    if content not in ("result", "model", "model_mask"):
        raise _bad(where, f"{PREFIX + 'content'} is {content!r}")
    try:
        entries = json.loads(metadata.get(PREFIX + "entries", ""))
    except json.JSONDecodeError:
        entries = None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise _bad(where, f"{PREFIX + 'entries'} is not a JSON list of objects")
    for e in entries:
        path = e.get("path")
        if not isinstance(path, list) or not all(isinstance(k, str) and k for k in path):
            raise _bad(where, f"entry path {path!r} is not a list of keys")
    return content, entries


def _array(ckpt: Any, tensor: Any, like: _dtypes.Like, where: str, entry: str) -> Array:
    if not isinstance(tensor, str) or tensor not in ckpt:
        raise _bad(where, f"entry {entry} names a tensor {tensor!r} the file does not hold")
    return ckpt[tensor]


def _build(ckpt: Any, e: dict[str, Any], like: _dtypes.Like, where: str) -> Any:
    entry = ".".join(e["path"]) or "(the result)"
    kind = e.get("kind")
    if kind == "mapping":
        return {}
    if kind == "dense":
        info = ckpt.info(e.get("tensor")) if e.get("tensor") in ckpt else None
        if info is None or info.dtype != e.get("dtype") or list(info.shape) != e.get("shape"):
            raise _bad(where, f"dense entry {entry} does not match its tensor {e.get('tensor')!r}")
        return ckpt[e["tensor"]]
    if kind == "mask":
        return _mask(ckpt, e, like, where, entry)
    if kind != "sparse":
        raise _bad(where, f"entry {entry} has an unknown kind {kind!r}")
    try:
        fmt = SparseFormat.parse(e.get("format"))
        shape = tuple(int(s) for s in e["shape"])
        dtype_name = str(e["dtype"])
        params = {k: tuple(v) if isinstance(v, list) else v for k, v in dict(e["params"]).items()}
        names = dict(e["arrays"])
    except (KeyError, TypeError, ValueError) as err:
        raise _bad(where, f"sparse entry {entry} is incomplete ({err})") from None
    if tuple(names) != FORMAT_ARRAYS[fmt]:
        raise _bad(where, f"sparse entry {entry} ({fmt}) has arrays {list(names)}, not {list(FORMAT_ARRAYS[fmt])}")
    arrays = {k: _array(ckpt, t, like, where, entry) for k, t in names.items()}
    values = names.get("data", names.get("values"))
    if ckpt.info(values).dtype != dtype_name:
        raise _bad(where, f"sparse entry {entry} has dtype {dtype_name} but its values are {ckpt.info(values).dtype}")
    dtype = arrays["data" if "data" in arrays else "values"].dtype  # the library's own dtype object
    nnz = e.get("nnz")
    return SparseCompressionResult(fmt, shape, dtype, arrays, params, nnz=nnz if isinstance(nnz, int) else None)


def _mask(ckpt: Any, e: dict[str, Any], like: _dtypes.Like, where: str, entry: str) -> PruningMask:
    try:
        shape = tuple(int(s) for s in e["shape"])
        p = dict(e["pattern"])
        pattern = SparsityPattern(
            PatternKind(p["kind"]), axis=p.get("axis"), block=tuple(p["block"]) if p.get("block") else None,
            n=p.get("n"), m=p.get("m"),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise _bad(where, f"mask entry {entry} is incomplete ({err})") from None
    _array(ckpt, e.get("tensor"), like, where, entry)
    dtype, packed = ckpt.bits(e["tensor"])
    size = math.prod(shape)
    if dtype != "uint8" or packed.shape != ((size + 7) // 8,):
        raise _bad(where, f"mask entry {entry}: tensor {e['tensor']!r} is not the packed bits of shape {shape}")
    mask = np.unpackbits(packed, count=size, bitorder="little").view(bool).reshape(shape)  # 0 / 1: bools
    mask = _dtypes.from_bits(mask, "bool", like, what=f"mask entry {entry} of {where!r}")
    return PruningMask(mask, pattern)


def _check_all_used(ckpt: Any, entries: list[dict[str, Any]], where: str) -> None:
    used = set()
    for e in entries:
        used.update(e.get("arrays", {}).values() if e.get("kind") == "sparse" else [e.get("tensor")])
    extra = [n for n in ckpt if n not in used]
    if extra:
        raise _bad(where, f"tensors {extra[:3]} belong to no entry")


def _nest(objects: list[tuple[list[str], Any]], where: str) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for path, value in objects:
        if not path:
            raise _bad(where, "a model entry has an empty path")
        level = root
        for key in path[:-1]:
            level = level.setdefault(key, {})
            if not isinstance(level, dict):
                raise _bad(where, f"path {path} runs through a leaf")
        if path[-1] in level:
            raise _bad(where, f"path {path} appears twice")
        level[path[-1]] = value
    return root


def _model_mask(entries: list[dict[str, Any]], objects: list[tuple[list[str], Any]], where: str) -> Any:
    from .._model.report import LayerReport, ModelMask

    masks, report = {}, []
    for e, (path, m) in zip(entries, objects):
        if e.get("kind") != "mask" or len(path) != 1:
            raise _bad(where, "a model mask holds mask entries with one-key paths only")
        name = path[0]
        masks[name] = m
        pruned = e.get("pruned")
        if pruned != m.num_pruned:
            raise _bad(where, f"mask {name!r} prunes {m.num_pruned} values, its report says {pruned}")
        zeros = e.get("zeros")
        if zeros is not None and (not isinstance(zeros, int) or not m.num_pruned <= zeros <= m.size):
            msg = f"mask {name!r} prunes {m.num_pruned} of {m.size} values, its report says {zeros!r} zeros"
            raise _bad(where, msg)
        report.append(LayerReport(name, m.shape, m.size, m.num_pruned, str(e.get("rule", "given")), zeros))
    return ModelMask(masks, report=report)
