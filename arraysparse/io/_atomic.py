"""Atomic output: a file appears at its path complete, or not at all.

:class:`AtomicFile` writes into a hidden temporary file in the destination's
directory (``.<name>.<random>.tmp``), and :meth:`AtomicFile.commit` flushes
it to disk (``fsync``), renames it over the destination (``os.replace``,
atomic on POSIX and Windows) and syncs the directory. Until then the
destination is untouched. An exception (:meth:`AtomicFile.abort`) removes
the temporary file; a process killed mid-write leaves the destination as it
was and, at worst, the hidden temporary file.

Writers also refuse to write over a file they are reading from
(:func:`check_not_source`): the arrays of an open checkpoint are mapped from
their file, and replacing it under them would be a trap on some systems and a
surprise on all.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import weakref
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

# the open mappings of the checkpoint readers: (mapping, first address, end address, file)
_SOURCES: list[tuple[weakref.ref, int, int, str]] = []


def register_source(buffer: Any, path: Path) -> None:
    """Note that arrays whose memory lies in ``buffer`` (an mmap) come from the file ``path``."""
    view = np.frombuffer(buffer, np.uint8)
    start = view.__array_interface__["data"][0]
    end = start + view.size
    del view  # a live view would keep the mapping from being closed
    _SOURCES[:] = [s for s in _SOURCES if s[0]() is not None]
    _SOURCES.append((weakref.ref(buffer), start, end, str(path)))


def source_of(a: Any) -> str | None:
    """The file an array's memory is mapped from, if a checkpoint reader mapped it (NumPy or torch)."""
    if isinstance(a, np.ndarray):
        address = a.__array_interface__["data"][0]
    elif hasattr(a, "data_ptr"):
        address = a.data_ptr()
    else:
        return None
    for ref, start, end, path in _SOURCES:
        if start <= address < end and ref() is not None:
            return path
    return None


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name one existing file."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_not_source(dest: Path, source: str | os.PathLike | None, what: str) -> None:
    """ValueError when ``source`` (a file being read) is the destination ``dest``."""
    if source is not None and same_file(dest, source):
        msg = (
            f"{what} is read from {str(source)!r}, the file being written; write to another path "
            "(then rename it) instead of overwriting the input"
        )
        raise ValueError(msg)


def _umask() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # no way to read it without setting it elsewhere
    os.umask(mask)
    return mask


def destination(path: str | os.PathLike, *, what: str = "path") -> Path:
    """``path`` as a Path whose directory exists (ValueError / TypeError naming ``what`` otherwise)."""
    if not isinstance(path, (str, os.PathLike)):
        msg = f"{what} must be a str or os.PathLike, got {type(path).__name__}"
        raise TypeError(msg)
    p = Path(path)
    if p.is_dir():
        msg = f"{what}={str(p)!r} is a directory; give a file name"
        raise ValueError(msg)
    if not p.parent.is_dir():
        msg = f"{what}={str(p)!r}: the directory {str(p.parent)!r} does not exist"
        raise ValueError(msg)
    return p


class AtomicFile:
    """A binary file that replaces ``path`` on :meth:`commit` and vanishes on :meth:`abort`.

    Use it as a context manager: a clean exit commits, an exception aborts.
    """

    def __init__(self, path: Path):
        self.path = path
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        self.tmp: Path | None = Path(tmp)
        try:
            mode = os.stat(path).st_mode & 0o777 if path.exists() else 0o666 & ~_umask()
            os.chmod(fd, mode)
        except (OSError, NotImplementedError):
            pass  # keep mkstemp's 0o600
        self.file: BinaryIO = open(fd, "w+b", buffering=0)  # noqa: SIM115 - closed by commit / abort

    def commit(self) -> None:
        """Flush to disk and put the file in place of the destination."""
        tmp = self.tmp
        if tmp is None:
            msg = "the file is already committed or aborted"
            raise ValueError(msg)
        try:
            os.fsync(self.file.fileno())
            self.file.close()
            os.replace(tmp, self.path)
        except BaseException:
            self.abort()
            raise
        self.tmp = None
        with contextlib.suppress(OSError, AttributeError):  # the rename itself, durable (POSIX)
            dfd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)

    def abort(self) -> None:
        """Close and remove the temporary file; the destination stays as it was."""
        with contextlib.suppress(OSError):
            self.file.close()
        if self.tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.tmp)
            self.tmp = None

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(self, kind: Any, value: Any, tb: Any) -> None:
        if kind is None:
            self.commit()
        else:
            self.abort()


def write_all(f: BinaryIO, data: memoryview | bytes) -> None:
    """Write every byte of ``data`` (a raw file may write fewer bytes than asked)."""
    view = memoryview(data).cast("B")
    limit = 1 << 30
    while view.nbytes:
        n = f.write(view[:limit])
        if n is None or n <= 0:
            msg = f"could not write to {getattr(f, 'name', 'the file')!r}"
            raise OSError(msg)
        view = view[n:]


def write_bits(f: BinaryIO, bits: np.ndarray, *, chunk: int = 1 << 24) -> int:
    """Write an array's items, C order, little-endian, in chunks of about ``chunk`` bytes; returns the bytes written.

    A C-contiguous array is written from its own memory; any other is copied a
    chunk of its first axis at a time, so writing never holds a second copy of
    the whole array.
    """
    from ._dtypes import is_little, little_endian

    nbytes = bits.size * bits.dtype.itemsize
    if nbytes == 0:
        return 0
    if bits.flags.c_contiguous and is_little(bits.dtype):
        write_all(f, bits.reshape(-1).view(np.uint8).data)
        return nbytes
    if bits.ndim == 0:
        write_all(f, little_endian(bits.reshape(1)).tobytes())
        return nbytes
    row = max(1, nbytes // bits.shape[0])
    step = max(1, chunk // row)
    for start in range(0, bits.shape[0], step):
        part = little_endian(np.ascontiguousarray(bits[start : start + step]))
        write_all(f, part.reshape(-1).view(np.uint8).data)
    return nbytes


def read_into(f: BinaryIO, out: np.ndarray, offset: int) -> None:
    """Fill the C-contiguous array ``out`` with the file's bytes from ``offset`` (``pread``: the
    kernel writes the pages, which is much cheaper than faulting in a fresh array and copying)."""
    view = memoryview(out.reshape(-1).view(np.uint8))
    fd = f.fileno()
    while view.nbytes:
        chunk = view[: 1 << 30]
        if hasattr(os, "preadv"):
            n = os.preadv(fd, [chunk], offset)
        else:  # pragma: no cover - Windows
            f.seek(offset)
            n = f.readinto(chunk)
        if not n:
            msg = f"unexpected end of {getattr(f, 'name', 'the file')!r} at byte {offset}"
            raise ValueError(msg)
        view = view[n:]
        offset += n


def copy_range(src: BinaryIO, dst: BinaryIO, offset: int, count: int, *, buffer: int = 1 << 23) -> None:
    """Append ``count`` bytes of ``src`` from ``offset`` to ``dst`` (at its position).

    The kernel copies where it can (``os.copy_file_range``: no user-space
    buffer); otherwise a bounded buffer of ``buffer`` bytes does.
    """
    sfd, dfd = src.fileno(), dst.fileno()
    fast = hasattr(os, "copy_file_range")
    while count:
        if fast:
            try:
                n = os.copy_file_range(sfd, dfd, min(count, 1 << 30), offset)
            except OSError:
                fast = False
                continue
            if n == 0:
                fast = False
                continue
        else:
            data = os.pread(sfd, min(count, buffer), offset)
            if not data:
                msg = f"unexpected end of {getattr(src, 'name', 'the temporary file')!r}"
                raise OSError(msg)
            write_all(dst, data)
            n = len(data)
        offset += n
        count -= n
