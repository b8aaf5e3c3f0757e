""".npz files (NumPy's zip of .npy files): a lazy reader and a streaming atomic writer.

Reading never unpickles (object arrays are refused, as ``np.load(...,
allow_pickle=False)`` refuses them) and reads one array per request. A stored
(uncompressed) member is a read-only view of the mapped file, as safetensors
tensors are; a compressed one is decompressed into memory.

The writer stores members uncompressed, each ``.npy`` padded (a zip extra
field) so its data starts 64-byte aligned in the file, and streams them: a
member is written as it comes, the zip directory at the end. Metadata (and
the dtypes carried as their bits: ml_dtypes' types, which ``.npy`` cannot
name) go in a member ``__metadata__.npy``, a uint8 array holding the UTF-8
JSON object ``{str: str}``; any NumPy reads it.
"""

from __future__ import annotations

import json
import math
import mmap
import os
import struct
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from . import _dtypes
from ._atomic import AtomicFile, read_into, register_source
from ._safetensors import CARRIED_KEY

METADATA = "__metadata__"
_ALIGN = 64
_PAD_ID = 0xD935  # the zip extra field id zipalign uses for padding


@dataclass(frozen=True)
class Member:
    """One array of an .npz: its zip entry, its header, and how it is read."""

    name: str
    info: zipfile.ZipInfo
    file_dtype: np.dtype
    shape: tuple[int, ...]
    fortran: bool
    data_offset: int | None  # absolute, for a stored member; None: decompress
    dtype: str  # canonical (a carried dtype resolved)


def _fail(path: Path, what: str) -> ValueError:
    return ValueError(f"{str(path)!r} is not a valid .npz file: {what}")


class NpzReader:
    """An open .npz file: its members' headers read and checked, their data on request."""

    def __init__(self, path: Path):
        self.path = path
        self._file: BinaryIO | None = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._map: mmap.mmap | None = None
        try:
            self._zip = zipfile.ZipFile(self._file)
            self.records, self.metadata = self._read_members()
        except zipfile.BadZipFile as e:
            self._file.close()
            raise _fail(path, str(e)) from None
        except BaseException:
            self._file.close()
            raise

    def _read_members(self) -> tuple[dict[str, Member], dict[str, str]]:
        infos: dict[str, zipfile.ZipInfo] = {}
        for info in self._zip.infolist():
            if info.is_dir():
                continue
            if not info.filename.endswith(".npy"):
                raise _fail(self.path, f"member {info.filename!r} is not a .npy array")
            name = info.filename[:-4]
            if name in infos:
                raise _fail(self.path, f"two members are named {info.filename!r}")
            infos[name] = info
        metadata: dict[str, str] = {}
        meta_info = infos.pop(METADATA, None)
        if meta_info is not None:
            metadata = self._metadata(meta_info)
        carried = json.loads(metadata.pop(CARRIED_KEY, "{}"))
        size = os.fstat(self._file.fileno()).st_size
        records = {name: self._member(name, info, size) for name, info in infos.items()}
        if not isinstance(carried, dict):
            raise _fail(self.path, f"metadata {CARRIED_KEY!r} must be a JSON object of names to dtypes")
        for name, dtype in carried.items():
            m = records.get(name)
            size_ = _dtypes.itemsize(dtype) if isinstance(dtype, str) else None
            if m is None or size_ is None or _dtypes.is_standard(dtype) or m.file_dtype != _unsigned(size_):
                raise _fail(self.path, f"metadata {CARRIED_KEY!r} says {name!r} holds {dtype!r}, which it cannot")
            records[name] = Member(m.name, m.info, m.file_dtype, m.shape, m.fortran, m.data_offset, dtype)
        return records, metadata

    def _metadata(self, info: zipfile.ZipInfo) -> dict[str, str]:
        if info.file_size > 1 << 28:
            raise _fail(self.path, f"{METADATA}.npy has {info.file_size} bytes, too many for metadata")
        with self._zip.open(info) as f:
            try:
                a = np.lib.format.read_array(f, allow_pickle=False)
                meta = json.loads(a.tobytes().decode("utf-8")) if a.dtype == np.uint8 and a.ndim == 1 else None
            except (ValueError, UnicodeDecodeError):
                meta = None
        if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
            raise _fail(self.path, f"{METADATA}.npy must hold the UTF-8 JSON of an object of strings to strings")
        return meta

    def _member(self, name: str, info: zipfile.ZipInfo, file_size: int) -> Member:
        where = f"member {info.filename!r}"
        try:
            with self._zip.open(info) as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
                elif version == (2, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
                else:  # 3.0: a UTF-8 header, for field names only; read the whole array then
                    shape, fortran, dtype = None, False, None
                header_len = f.tell()
        except (ValueError, zipfile.BadZipFile, EOFError, OSError) as e:
            raise _fail(self.path, f"{where}: {e}") from None
        if dtype is None:
            a = self._decompress(info)
            shape, fortran, dtype, header_len = a.shape, False, a.dtype, None
        if dtype.hasobject:
            raise _fail(self.path, f"{where} holds Python objects (dtype {dtype}); they need pickle, which is refused")
        canonical = _dtypes.name_of(dtype, what=f"{str(self.path)!r} {where}")
        nbytes = math.prod(shape) * dtype.itemsize
        offset = None
        if header_len is not None and info.compress_type == zipfile.ZIP_STORED and not info.flag_bits & 0x1:
            if info.file_size != header_len + nbytes:
                raise _fail(self.path, f"{where} has {info.file_size} bytes; its header and shape {shape} "
                                       f"({dtype}) need {header_len + nbytes}")
            offset = self._data_start(info, where) + header_len
            if offset + nbytes > file_size:
                raise _fail(self.path, f"{where} runs past the end of the file (truncated?)")
        return Member(name, info, dtype, tuple(shape), bool(fortran), offset, canonical)

    def _data_start(self, info: zipfile.ZipInfo, where: str) -> int:
        f = self._file
        f.seek(info.header_offset)
        head = f.read(zipfile.sizeFileHeader)
        if len(head) != zipfile.sizeFileHeader or head[:4] != zipfile.stringFileHeader:
            raise _fail(self.path, f"{where}: bad local file header")
        fields = struct.unpack(zipfile.structFileHeader, head)
        return info.header_offset + zipfile.sizeFileHeader + fields[10] + fields[11]

    def _decompress(self, info: zipfile.ZipInfo) -> np.ndarray:
        try:
            with self._zip.open(info) as f:
                return np.lib.format.read_array(f, allow_pickle=False)
        except (ValueError, zipfile.BadZipFile, EOFError, OSError) as e:
            raise _fail(self.path, f"member {info.filename!r}: {e}") from None

    def bits(self, name: str, *, copy: bool = False) -> np.ndarray:
        """The bits of array ``name``: a read-only view of the mapped file (stored members), or with
        ``copy`` a new writable array read from it; compressed members are decompressed."""
        m = self.records[name]
        if self._file is None:
            msg = f"{str(self.path)!r} is closed"
            raise ValueError(msg)
        if m.data_offset is None:
            a = self._decompress(m.info)
        elif copy:
            a = np.empty(m.shape[::-1] if m.fortran else m.shape, m.file_dtype)
            read_into(self._file, a, m.data_offset)
            return a.T if m.fortran else a
        elif math.prod(m.shape) == 0:
            a = np.empty(m.shape, m.file_dtype)
        else:
            count = math.prod(m.shape)
            flat = np.frombuffer(self._mapping(), dtype=m.file_dtype, count=count, offset=m.data_offset)
            a = flat.reshape(m.shape[::-1]).T if m.fortran else flat.reshape(m.shape)
            if m.data_offset % max(1, m.file_dtype.alignment):
                a = a.copy()
        a.flags.writeable = copy
        return a

    def read_into(self, name: str, out: np.ndarray) -> bool:
        """Read array ``name``'s bytes into the C-contiguous ``out``; False where it cannot
        (compressed or Fortran-ordered members)."""
        m = self.records[name]
        if self._file is None:
            msg = f"{str(self.path)!r} is closed"
            raise ValueError(msg)
        nbytes = math.prod(m.shape) * m.file_dtype.itemsize
        if m.data_offset is None or m.fortran or m.file_dtype.byteorder == ">" or not out.flags.c_contiguous:
            return False
        if out.size * out.dtype.itemsize != nbytes:
            return False
        read_into(self._file, out, m.data_offset)
        return True

    def _mapping(self) -> mmap.mmap:
        if self._map is None:
            fd = self._file.fileno()
            self._map = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
            register_source(self._map, self.path)
        return self._map

    def close(self) -> None:
        if self._file is not None:
            self._zip.close()
            self._file.close()
            self._file = None
        self._map = None


def _unsigned(size: int) -> np.dtype:
    return np.dtype(f"<u{size}") if size > 1 else np.dtype(np.uint8)


class NpzWriter:
    """Arrays added one at a time, each streamed into the zip; the file put in place on :meth:`commit`."""

    def __init__(self, path: Path, metadata: Mapping[str, str] | None):
        self.metadata = dict(metadata or {})
        self._carried: dict[str, str] = {}
        self._out = AtomicFile(path)
        self._zip = zipfile.ZipFile(self._out.file, "w", zipfile.ZIP_STORED, allowZip64=True)

    def add(self, name: str, dtype: str, bits: np.ndarray) -> None:
        if not _dtypes.is_standard(dtype):
            self._carried[name] = dtype
        self._member(name, bits)

    def _member(self, name: str, a: np.ndarray) -> None:
        info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_STORED
        # local header (30) + name + this extra field (4 + pad) + the zip64 field zipfile adds (20),
        # then the .npy header, which NumPy pads to a multiple of 64: the data lands aligned
        start = self._out.file.tell() + zipfile.sizeFileHeader + len(info.filename.encode("utf-8")) + 4 + 20
        pad = -start % _ALIGN
        info.extra = struct.pack("<HH", _PAD_ID, pad) + b"\0" * pad
        with self._zip.open(info, "w", force_zip64=True) as f:
            np.lib.format.write_array(f, a, allow_pickle=False)

    def commit(self) -> None:
        meta = dict(self.metadata)
        if self._carried:
            meta[CARRIED_KEY] = json.dumps(self._carried, separators=(",", ":"))
        try:
            if meta:
                text = json.dumps(meta, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
                self._member(METADATA, np.frombuffer(text, np.uint8))
            self._zip.close()
        except BaseException:
            self._out.abort()
            raise
        self._out.commit()

    def abort(self) -> None:
        try:
            self._zip.close()
        except (OSError, ValueError):
            pass
        self._out.abort()

