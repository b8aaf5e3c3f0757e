"""The safetensors file format: a strict lazy reader and two atomic writers.

The format (https://github.com/huggingface/safetensors):

* 8 bytes: ``N``, the header's length, unsigned little-endian;
* ``N`` bytes: a UTF-8 JSON object, ``{name: {"dtype": tag, "shape": [...],
  "data_offsets": [begin, end]}, ..., "__metadata__": {str: str}}``, which may
  end in spaces (writers pad it so the data starts 8-byte aligned);
* the data: every tensor's items, C order, little-endian, at
  ``[begin, end)`` counted from the end of the header. The tensors tile the
  data exactly: no gap, no overlap, nothing after the last.

:class:`SafetensorsReader` checks all of that when it opens a file (a
``ValueError`` naming the file and the fault) and reads nothing else: a
tensor's bytes are mapped on request (:meth:`SafetensorsReader.bits`): a
read-only view of one shared read-only mapping of the file, so reading
copies nothing and nothing can write to the file through it.

Writers lay the tensors out by item size, largest first (as safetensors'
own writer does), so every tensor starts aligned to its item size.
:func:`write_planned` writes a file whose tensors' shapes are known up front
in one pass; :class:`SafetensorsWriter` takes tensors one at a time,
appends their bytes to an unnamed temporary file and, at the end, writes
the header and copies the bytes behind it (kernel-side where the system
can), so it holds about one tensor in memory.

Dtypes safetensors has no tag for travel as their bits (see
:mod:`arraysparse.io._dtypes`), named in the metadata key
``"arraysparse.dtypes"``: a JSON object ``{tensor: dtype}``, which the
reader applies and hides from the metadata it gives back.
"""

from __future__ import annotations

import json
import math
import mmap
import os
import struct
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from . import _dtypes
from ._atomic import AtomicFile, copy_range, read_into, register_source, write_all, write_bits

#: Largest header read (safetensors' own limit): a corrupt length cannot make us read gigabytes.
MAX_HEADER = 100_000_000
#: The metadata key naming the dtypes carried as their bits.
CARRIED_KEY = "arraysparse.dtypes"


@dataclass(frozen=True)
class Record:
    """One tensor of a file: its tag and shape as stored, its bytes, and the dtype and shape it is read as."""

    name: str
    tag: str
    file_shape: tuple[int, ...]
    begin: int
    end: int
    dtype: str  # canonical: the tag's, or the carried dtype

    @property
    def shape(self) -> tuple[int, ...]:
        """The array's shape (complex128 is stored as F64 pairs: the last axis of 2 dropped)."""
        if self.dtype == "complex128" and self.tag == "F64":
            return self.file_shape[:-1]
        return self.file_shape

    @property
    def nbytes(self) -> int:
        return self.end - self.begin


class SafetensorsError(ValueError):
    """A file that is not valid safetensors (a ``ValueError`` naming the file)."""


def _fail(path: Path, what: str) -> SafetensorsError:
    return SafetensorsError(f"{str(path)!r} is not a valid safetensors file: {what}")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            msg = f"the header names {key!r} twice"
            raise SafetensorsError(msg)
        out[key] = value
    return out


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def parse_header(f: BinaryIO, path: Path, size: int) -> tuple[dict[str, Record], dict[str, str], int]:
    """``(records by name in header order, metadata, data start)`` of an open file of ``size`` bytes, checked."""
    if size < 8:
        raise _fail(path, f"truncated: {size} bytes, shorter than the 8-byte header length")
    f.seek(0)
    (n,) = struct.unpack("<Q", f.read(8))
    if n < 2:
        raise _fail(path, f"header length {n} is too small for a JSON object")
    if n > MAX_HEADER:
        raise _fail(path, f"header length {n} exceeds the limit of {MAX_HEADER} bytes (a corrupt length?)")
    if 8 + n > size:
        raise _fail(path, f"header length {n} runs past the end of the file ({size} bytes; truncated?)")
    raw = f.read(n)
    if raw[:1] != b"{":
        raise _fail(path, f"the header does not start with '{{' (starts with {raw[:16]!r})")
    try:
        text = raw.decode("utf-8")
        header = json.loads(text, object_pairs_hook=_unique_keys)
    except SafetensorsError as e:
        raise _fail(path, str(e)) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _fail(path, f"the header is not UTF-8 JSON ({e})") from None
    if not isinstance(header, dict):
        raise _fail(path, "the header is not a JSON object")
    data_start = 8 + n
    data_len = size - data_start
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise _fail(path, "__metadata__ must be an object of strings to strings")
    records: dict[str, Record] = {}
    for name, entry in header.items():
        records[name] = _record(path, name, entry)
    _check_tiling(path, records, data_len)
    return _carried(path, records, metadata), metadata, data_start


def _record(path: Path, name: str, entry: Any) -> Record:
    where = f"tensor {name!r}"
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
        keys = sorted(entry) if isinstance(entry, dict) else type(entry).__name__
        raise _fail(path, f"{where} must have exactly the keys dtype, shape, data_offsets; it has {keys}")
    tag, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if tag not in _dtypes.TAGS:
        if tag in _dtypes.PACKED_TAGS:
            raise _fail(path, f"{where} has dtype {tag} ({_dtypes.PACKED_TAGS[tag]}), which is not supported")
        raise _fail(path, f"{where} has an unknown dtype {tag!r}")
    if not isinstance(shape, list) or not all(_is_int(s) and s >= 0 for s in shape):
        raise _fail(path, f"{where} has shape {shape!r}; it must be a list of non-negative ints")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_int(o) for o in offsets)
            and 0 <= offsets[0] <= offsets[1]):
        raise _fail(path, f"{where} has data_offsets {offsets!r}; they must be [begin, end], 0 <= begin <= end")
    need = math.prod(shape) * _dtypes.TAG_ITEMSIZE[tag]
    if offsets[1] - offsets[0] != need:
        raise _fail(
            path,
            f"{where} has data_offsets {offsets} ({offsets[1] - offsets[0]} bytes), but dtype {tag} "
            f"and shape {shape} need {need} bytes",
        )
    return Record(name, tag, tuple(shape), offsets[0], offsets[1], _dtypes.TAGS[tag])


def _check_tiling(path: Path, records: dict[str, Record], data_len: int) -> None:
    end, last = 0, None
    for r in sorted(records.values(), key=lambda r: (r.begin, r.end)):
        if r.end > data_len:
            raise _fail(path, f"tensor {r.name!r} ends at byte {r.end} of the data, past its end ({data_len} bytes)")
        if r.begin < end:
            raise _fail(path, f"tensors {last!r} and {r.name!r} overlap (bytes {r.begin}..{end} of the data)")
        if r.begin > end:
            raise _fail(path, f"bytes {end}..{r.begin} of the data belong to no tensor (before {r.name!r})")
        end, last = r.end, r.name
    if end != data_len:
        raise _fail(path, f"the data has {data_len} bytes but its tensors end at byte {end} (trailing bytes)")


def _carried(path: Path, records: dict[str, Record], metadata: dict[str, str]) -> dict[str, Record]:
    text = metadata.pop(CARRIED_KEY, None)
    if text is None:
        return records
    try:
        carried = json.loads(text)
    except json.JSONDecodeError:
        carried = None
    if not isinstance(carried, dict):
        raise _fail(path, f"metadata {CARRIED_KEY!r} must be a JSON object of tensor names to dtypes")
    out = dict(records)
    for name, dtype in carried.items():
        r = records.get(name)
        if r is None:
            raise _fail(path, f"metadata {CARRIED_KEY!r} names a tensor {name!r} the file does not have")
        size = _dtypes.itemsize(dtype) if isinstance(dtype, str) else None
        if dtype == "complex128":
            ok = r.tag == "F64" and r.file_shape[-1:] == (2,)
        else:
            ok = size is not None and not _dtypes.is_standard(dtype) and r.tag == f"U{8 * size}"
        if not ok:
            raise _fail(path, f"metadata {CARRIED_KEY!r} says tensor {name!r} ({r.tag}{list(r.file_shape)}) "
                              f"holds {dtype!r}, which it cannot")
        out[name] = Record(r.name, r.tag, r.file_shape, r.begin, r.end, dtype)
    return out


class SafetensorsReader:
    """An open safetensors file: its records and metadata, its tensors read on request."""

    def __init__(self, path: Path):
        self.path = path
        self._file: BinaryIO | None = open(path, "rb")  # noqa: SIM115 - closed by close()
        try:
            size = os.fstat(self._file.fileno()).st_size
            self.records, self.metadata, self._data_start = parse_header(self._file, path, size)
        except BaseException:
            self._file.close()
            raise
        self._map: mmap.mmap | None = None

    def bits(self, name: str, *, copy: bool = False) -> np.ndarray:
        """The bits of tensor ``name`` (see :mod:`._dtypes`): a read-only view of the mapped file,
        or with ``copy`` a new writable array read from the file."""
        r = self.records[name]
        dtype = _dtypes.bits_dtype(r.dtype).newbyteorder("<")
        start = self._data_start + r.begin
        if copy:
            a = np.empty(r.shape, dtype)
            read_into(self._open_file(), a, start)
            return a
        if r.nbytes == 0:
            a = np.empty(r.shape, dtype)
        else:
            a = np.frombuffer(self._mapping(), dtype=dtype, count=math.prod(r.shape), offset=start).reshape(r.shape)
            if start % dtype.itemsize:
                a = a.copy()  # a foreign writer left it unaligned; kernels want aligned items
        a.flags.writeable = False
        return a

    def read_into(self, name: str, out: np.ndarray) -> bool:
        """Read tensor ``name``'s bytes into the C-contiguous ``out`` (its bits view); True when done."""
        r = self.records[name]
        if not out.flags.c_contiguous or out.size * out.dtype.itemsize != r.nbytes:
            return False
        read_into(self._open_file(), out, self._data_start + r.begin)
        return True

    def _open_file(self) -> BinaryIO:
        if self._file is None:
            msg = f"{str(self.path)!r} is closed"
            raise ValueError(msg)
        return self._file

    def _mapping(self) -> mmap.mmap:
        if self._map is None:
            fd = self._open_file().fileno()
            self._map = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
            register_source(self._map, self.path)
        return self._map

    def close(self) -> None:
        """Close the file. Arrays already read stay valid (they keep the mapping alive)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self._map = None  # unmapped when the last array viewing it goes


# -- writing ------------------------------------------------------------------------
def file_form(name: str, dtype: str) -> tuple[str, bool]:
    """``(tag, carried)``: how an array of canonical ``dtype`` is stored."""
    tag = _dtypes.WRITE_TAGS.get(dtype)
    if tag is not None:
        return tag, False
    if dtype == "complex128":
        return "F64", True
    size = _dtypes.itemsize(dtype)
    if size not in (1, 2, 4, 8):
        msg = f"tensor {name!r} has dtype {dtype}, which cannot be stored in safetensors"
        raise TypeError(msg)
    return f"U{8 * size}", True


@dataclass
class _Slot:
    name: str
    tag: str
    file_shape: tuple[int, ...]
    nbytes: int
    carried: str | None
    source: Any = None  # the writer's own bookkeeping (offset in the temporary file, or a fetcher)
    begin: int = 0


def _slot(name: str, dtype: str, shape: tuple[int, ...], source: Any) -> _Slot:
    tag, carried = file_form(name, dtype)
    file_shape = (*shape, 2) if tag == "F64" and carried else tuple(shape)
    nbytes = math.prod(file_shape) * _dtypes.TAG_ITEMSIZE[tag]
    return _Slot(name, tag, file_shape, nbytes, dtype if carried else None, source)


def _layout(slots: list[_Slot]) -> list[_Slot]:
    """Offsets, largest items first (stable): every tensor aligned to its item size."""
    ordered = sorted(slots, key=lambda s: -_dtypes.TAG_ITEMSIZE[s.tag])
    at = 0
    for s in ordered:
        s.begin = at
        at += s.nbytes
    return ordered


def header_bytes(slots: list[_Slot], metadata: Mapping[str, str] | None) -> bytes:
    """The 8-byte length and the JSON header, padded with spaces so the data starts 8-byte aligned."""
    meta = dict(metadata or {})
    carried = {s.name: s.carried for s in slots if s.carried}
    if carried:
        meta[CARRIED_KEY] = json.dumps(carried, separators=(",", ":"))
    head: dict[str, Any] = {"__metadata__": meta} if meta else {}
    for s in slots:  # the caller's order
        head[s.name] = {"dtype": s.tag, "shape": list(s.file_shape), "data_offsets": [s.begin, s.begin + s.nbytes]}
    text = json.dumps(head, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text


def write_planned(
    path: Path,
    items: Iterable[tuple[str, str, tuple[int, ...], Callable[[], np.ndarray]]],
    metadata: Mapping[str, str] | None,
) -> None:
    """Write ``(name, dtype, shape, fetch)`` items whose shapes are known: header first, then
    each tensor's bits, fetched one at a time; one pass, atomic."""
    slots = [_slot(name, dtype, shape, fetch) for name, dtype, shape, fetch in items]
    ordered = _layout(slots)
    with AtomicFile(path) as out:
        write_all(out.file, header_bytes(slots, metadata))
        for s in ordered:
            bits = s.source()
            _check_fetched(s, bits)
            write_bits(out.file, bits)


def _check_fetched(s: _Slot, bits: np.ndarray) -> None:
    got = bits.size * bits.dtype.itemsize
    if got != s.nbytes:
        msg = f"tensor {s.name!r} changed while it was written: {got} bytes, {s.nbytes} planned"
        raise ValueError(msg)


class SafetensorsWriter:
    """Tensors added one at a time (:meth:`add`), the file written on :meth:`commit`.

    Each tensor's bytes go straight to an unnamed temporary file in the
    destination's directory; :meth:`commit` writes the header and copies the
    bytes behind it into the destination's (unnamed) temporary file, then
    puts it in place (:class:`~arraysparse.io._atomic.AtomicFile`). Memory: about one tensor
    (a non-contiguous one is copied a chunk at a time). Disk: the data twice, until the commit.
    """

    def __init__(self, path: Path, metadata: Mapping[str, str] | None):
        self.path = path
        self.metadata = dict(metadata or {})
        self._slots: list[_Slot] = []
        self._data: BinaryIO = tempfile.TemporaryFile(dir=path.parent, buffering=0)  # noqa: SIM115 - closed by commit / abort
        self._size = 0

    def add(self, name: str, dtype: str, bits: np.ndarray) -> None:
        slot = _slot(name, dtype, tuple(bits.shape), self._size)
        written = write_bits(self._data, bits)
        _check_fetched(slot, bits)
        self._size += written
        self._slots.append(slot)

    def commit(self) -> None:
        ordered = _layout(self._slots)
        try:
            with AtomicFile(self.path) as out:
                write_all(out.file, header_bytes(self._slots, self.metadata))
                for s in ordered:
                    copy_range(self._data, out.file, s.source, s.nbytes)
        finally:
            self._data.close()

    def abort(self) -> None:
        self._data.close()
