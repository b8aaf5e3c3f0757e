"""Sharded checkpoints: a directory of safetensors shards and its Hugging Face index, committed as a whole.

The layout is the one ``transformers``' ``save_pretrained(max_shard_size=...)``
and ``huggingface_hub``'s serialization helpers write:

* ``model-00001-of-00003.safetensors`` ... ``model-00003-of-00003.safetensors``:
  the tensors, in the order given, each shard holding at most
  ``max_shard_size`` bytes of tensor data (the limit counts tensor bytes,
  as Hugging Face's does; each file adds its header). A tensor larger than
  the limit gets a shard of its own. Each shard's header carries
  ``{"format": "pt"}``, which transformers' loader asks of any shard with
  metadata, and nothing else of the caller's;
* ``model.safetensors.index.json``: ``{"metadata": {"total_size": <bytes of
  tensor data>, ...the caller's metadata}, "weight_map": {tensor: shard}}``,
  in the order written. Unlike Hugging Face, one shard still gets an index
  (``model-00001-of-00001.safetensors``): a directory output always has one.

Shards are written as the tensors come (:class:`ShardedWriter`, one
:class:`~arraysparse.io._safetensors.SafetensorsWriter` per shard, so the
data is on disk twice for at most one shard) or planned up front
(:func:`write_planned_shards`), into a hidden *staging directory*
``.<name>.<pid>.<random>.tmp`` (flocked by its writer), then committed
(:class:`ShardDirectory`):

* **A new directory** (the path does not exist): the staging directory is
  made beside it and renamed to it, one atomic ``rename``: the directory
  appears complete or not at all.
* **An existing directory** (the user's files stay; the directory itself is
  never replaced): the staging directory is made inside it, and the commit
  point is an index renamed over the old one. Under an ``flock`` of the
  directory, a journal (``journal.json`` in the staging directory, with the
  inode of every file involved) is written first; then, in order: the new
  shards are renamed in under hidden names ``.<shard>.<pid>.<random>.new``
  (no reader looks at them); an index naming those hidden names is renamed
  over the old index (the commit: from here a reader sees the new
  checkpoint, whole); the old checkpoint's files are unlinked; each shard's
  own name is hard-linked to its hidden one; the final index, naming the
  shards' own names, replaces the first; the hidden names are unlinked.
  At no moment does an index name a missing or partial file, and no shard
  name of the new checkpoint is visible before an index is (a directory
  without an index is read as every ``*.safetensors`` in it, so a partly
  renamed set would read as a partial model). In-place replacement needs
  hard links (refused, before anything changes, on a file system without).

A writer that dies leaves its staging directory; the next writer to the same
path removes the staging directories of dead writers (pid gone, flock free)
and, inside a directory, finishes (committed: the index is one of the
journal's two) or undoes (not committed: the hidden new shards go) what the
journal lists, checking each file's inode so it never removes a file it did
not make or replace.

What an existing directory's *checkpoint* is, which ``overwrite=True``
replaces: the index ``model.safetensors.index.json`` and the shards it names,
plus a ``model.safetensors`` (which transformers would load before any
index); without an index, every ``*.safetensors`` file (what
:func:`~arraysparse.io.open_checkpoint` reads). Without ``overwrite`` such a
directory is refused; other files (``config.json``, tokenizers, ``.npz``)
never count and are never touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import warnings
from collections.abc import Callable, Iterable, Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from ._atomic import _TEMP, _alive, _lock, _unlock
from ._safetensors import SafetensorsWriter, _slot, write_planned

#: The index file of a sharded safetensors checkpoint (``huggingface_hub.constants.SAFETENSORS_INDEX_FILE``).
INDEX = "model.safetensors.index.json"
#: The single-file name transformers loads before an index: part of the checkpoint a directory holds.
SINGLE = "model.safetensors"
#: The metadata of every shard's header, as transformers writes it (its loader refuses shards without it).
SHARD_METADATA = {"format": "pt"}
#: The index's metadata key for the bytes of tensor data.
TOTAL_SIZE = "total_size"

_UNITS = {
    "": 1, "b": 1,
    "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
}
_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-zA-Z]*)\s*")
_JOURNAL = "journal.json"
_MID = "index-naming-hidden-shards.json"


def shard_name(k: int, n: int) -> str:
    """The name of shard ``k`` (from 1) of ``n``: ``model-00001-of-00003.safetensors``."""
    return f"model-{k:05d}-of-{n:05d}.safetensors"


def parse_size(value: Any, what: str = "max_shard_size") -> int:
    """Bytes from an int or a string such as ``"5GB"``, ``"500MB"``, ``"2GiB"`` or ``"1.5 GB"``.

    Units as ``huggingface_hub`` reads them, any case: KB, MB, GB, TB are
    powers of 1000; KiB, MiB, GiB, TiB powers of 1024; B or none, bytes.
    Fractions of a byte are dropped. ``ValueError`` naming ``what`` and the
    value for anything else, or a size under one byte.

    Examples
    --------
    >>> from arraysparse.io._shards import parse_size
    >>> parse_size("5GB"), parse_size("2GiB"), parse_size("1.5 kb"), parse_size(4096)
    (5000000000, 2147483648, 1500, 4096)
    """
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        size = int(value)
    elif isinstance(value, str):
        m = _SIZE.fullmatch(value)
        unit = m.group(2).lower() if m else None
        if m is None or unit not in _UNITS:
            msg = (
                f"{what}={value!r} is not a size: give bytes (an int) or a number and a unit, such as "
                "'5GB', '500MB' or '2GiB' (KB, MB, GB, TB: powers of 1000; KiB, MiB, GiB, TiB: powers of 1024)"
            )
            raise ValueError(msg)
        size = int(Fraction(m.group(1)) * _UNITS[unit])
    else:
        msg = f"{what} must be an int (bytes) or a str such as '5GB', got {type(value).__name__} {value!r}"
        raise TypeError(msg) if not isinstance(value, float) else ValueError(msg)
    if size < 1:
        msg = f"{what}={value!r} must be at least one byte"
        raise ValueError(msg)
    return size


def split(sizes: Iterable[int], limit: int) -> list[list[int]]:
    """The shards of tensors of these byte sizes, in order: each a list of indices.

    A tensor starts a new shard when the current one holds something and the
    tensor would take it past ``limit``; so every shard holds at most
    ``limit`` bytes, except one holding a single larger tensor.

    Examples
    --------
    >>> from arraysparse.io._shards import split
    >>> split([6, 6, 2, 6, 2, 2, 30, 1], 10)
    [[0], [1, 2], [3, 4, 5], [6], [7]]
    """
    shards: list[list[int]] = []
    held = 0
    for i, size in enumerate(sizes):
        if not shards or held + size > limit:
            shards.append([])
            held = 0
        shards[-1].append(i)
        held += size
    return shards


def shard_destination(path: Any, what: str = "path") -> Path:
    """``path`` as the directory of a sharded write: not a ``.safetensors`` / ``.npz`` name, not a
    file, its parent existing (ValueError / TypeError naming ``what`` otherwise)."""
    if not isinstance(path, (str, os.PathLike)):
        msg = f"{what} must be a str or os.PathLike, got {type(path).__name__}"
        raise TypeError(msg)
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".npz":
        msg = (
            f"{what}={str(p)!r}: sharding does not apply to .npz (one zip file); drop max_shard_size, "
            "or give a directory for safetensors shards"
        )
        raise ValueError(msg)
    if suffix == ".safetensors":
        msg = (
            f"{what}={str(p)!r} names a file, but max_shard_size writes a directory of shards; give a "
            "directory, or drop max_shard_size for one file"
        )
        raise ValueError(msg)
    if p.exists() and not p.is_dir():
        msg = f"{what}={str(p)!r} is a file; max_shard_size writes a directory of shards"
        raise ValueError(msg)
    if not p.parent.is_dir():
        msg = f"{what}={str(p)!r}: the directory {str(p.parent)!r} does not exist"
        raise ValueError(msg)
    return p


def check_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    """The index's metadata: the caller's, with ``total_size`` left to the writer."""
    return {k: v for k, v in metadata.items() if k != TOTAL_SIZE}


# -- the directory ------------------------------------------------------------------------
def _open_dir(path: Path | str, dir_fd: int | None = None) -> int:
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=dir_fd)


def _sync(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.fsync(fd)


def _ino(name: str, dir_fd: int) -> int | None:
    """The inode of ``name`` in the directory (the link itself, not its target), or None."""
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_ino
    except FileNotFoundError:
        return None


def _unlink_if(name: str, ino: int | None, dir_fd: int) -> None:
    """Unlink ``name`` if it is still the inode ``ino`` (never a file someone put there since)."""
    if ino is not None and _ino(name, dir_fd) == ino:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=dir_fd)


def _hidden(name: str, ending: str) -> str:
    return f".{name}.{os.getpid()}.{os.urandom(4).hex()}.{ending}"


def _write_json(name: str, doc: Any, dir_fd: int) -> int:
    """Write ``doc`` to a new file ``name`` in the directory, flushed; returns its inode."""
    data = (json.dumps(doc, indent=2) + "\n").encode("utf-8")
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666, dir_fd=dir_fd)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
        return os.fstat(fd).st_ino
    finally:
        os.close(fd)


def _plain(name: Any) -> bool:
    return isinstance(name, str) and name not in ("", ".", "..") and Path(name).name == name and "/" not in name


class _Old:
    """The checkpoint a directory holds (see the module's docstring): the files a replacement removes."""

    def __init__(self, directory: Path, dir_fd: int):
        self.files: list[str] = []
        self.indexed = False
        names = os.listdir(dir_fd)
        indexes = sorted(n for n in names if n.endswith(".safetensors.index.json"))
        foreign = [n for n in indexes if n != INDEX]
        if foreign:
            msg = (
                f"directory {str(directory)!r} holds the index {foreign[0]!r} of another checkpoint; "
                "remove it or write to another directory"
            )
            raise ValueError(msg)
        shards = sorted(n for n in names if n.endswith(".safetensors") and os.path.isfile(directory / n))
        if indexes:
            self.indexed = True
            named = list(dict.fromkeys(_read_index(directory / INDEX)["weight_map"].values()))
            self.files = named + [SINGLE] * (SINGLE in shards and SINGLE not in named)
        else:
            self.files = shards

    def __bool__(self) -> bool:
        return self.indexed or bool(self.files)

    def describe(self) -> str:
        if self.indexed:
            return INDEX
        return ", ".join(self.files[:3]) + (" ..." if len(self.files) > 3 else "")


def _read_index(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        msg = f"cannot replace the checkpoint of {str(path)!r}: the index is not valid JSON ({e}); remove it"
        raise ValueError(msg) from None
    weight_map = doc.get("weight_map") if isinstance(doc, dict) else None
    if not isinstance(weight_map, dict) or not all(_plain(v) for v in weight_map.values()):
        msg = (
            f"cannot replace the checkpoint of {str(path)!r}: its 'weight_map' is not an object of names "
            "to shard files in that directory; remove it"
        )
        raise ValueError(msg)
    return doc


class ShardDirectory:
    """One sharded write's staging directory, and its commit into ``path`` (see the module's docstring).

    :meth:`shard_path` names the files to write shard ``k`` to (plain files in
    the staging directory); :meth:`commit` names them, writes the index and
    puts them in place; :meth:`abort` removes the staging directory.
    """

    def __init__(self, path: Path, *, overwrite: bool):
        self.path = path
        self.overwrite = overwrite
        self.in_place = path.is_dir()
        self._home: int | None = None  # the directory holding the staging directory
        self._stage: int | None = None  # the staging directory, flocked
        self.stage_name = ""
        try:
            self._home = _open_dir(path if self.in_place else path.parent)
            if self.in_place:
                with self._locked():
                    self._recover_dead()
                    self._check_replaceable(_Old(path, self._home))
            else:
                self._remove_dead_siblings()
            self._make_stage(INDEX if self.in_place else path.name)
        except BaseException:
            self.abort()
            raise

    # -- staging ----------------------------------------------------------------------
    def _make_stage(self, base: str) -> None:
        while True:
            name = _hidden(base, "tmp")
            try:
                os.mkdir(name, 0o777, dir_fd=self._home)
            except FileExistsError:
                continue
            break
        self.stage_name = name
        self._stage = _open_dir(name, self._home)
        _lock(self._stage)

    @property
    def stage(self) -> Path:
        """The staging directory."""
        return (self.path if self.in_place else self.path.parent) / self.stage_name

    def shard_path(self, k: int) -> Path:
        """Where shard ``k`` (from 0) is written before the commit names it."""
        return self.stage / f"part-{k + 1:05d}.safetensors"

    def _remove_dead_siblings(self) -> None:
        """The staging directories of dead writers of a new directory ``path`` (they never touched it)."""
        self._remove_dead(f".{self.path.name}.", recover=False)

    def _recover_dead(self) -> None:
        """Finish or undo what dead writers left inside ``path`` (under the directory's lock)."""
        self._remove_dead(f".{INDEX}.", recover=True)

    def _remove_dead(self, prefix: str, *, recover: bool) -> None:
        for name in os.listdir(self._home):
            m = _TEMP.fullmatch(name, len(prefix)) if name.startswith(prefix) else None
            if m is not None and name != self.stage_name and not _alive(int(m[1])):
                self._remove_if_dead(name, recover=recover)

    def _remove_if_dead(self, name: str, *, recover: bool) -> None:
        try:
            fd = _open_dir(name, self._home)
        except OSError:  # not a directory (an AtomicFile's hidden file is not ours to judge here)
            return
        try:
            if not _lock(fd, wait=False):
                return
            if recover:
                journal = _read_journal(fd)
                if journal is not None:
                    _Commit(self.path, self._home, fd, journal).recover()
            shutil.rmtree(name, dir_fd=self._home)
        except OSError as e:
            warnings.warn(f"could not remove {name!r} in {str(self.path)!r}, left by a dead writer: {e}",
                          stacklevel=3)
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def _locked(self) -> Any:
        """The directory ``path`` flocked: one commit or recovery in it at a time (readers take no lock)."""
        _lock(self._home)
        try:
            yield
        finally:
            _unlock(self._home)

    def _check_replaceable(self, old: _Old) -> None:
        if old and not self.overwrite:
            msg = (
                f"directory {str(self.path)!r} already holds a checkpoint ({old.describe()}); pass "
                "overwrite=True (--overwrite) to replace it, or write to another directory"
            )
            raise ValueError(msg)

    # -- the commit -------------------------------------------------------------------
    def commit(self, shards: list[list[str]], total_size: int, metadata: Mapping[str, str]) -> Path:
        """Name the shards, write the index and put the checkpoint in place; returns ``path``."""
        try:
            n = len(shards)
            names = [shard_name(k + 1, n) for k in range(n)]
            for k, name in enumerate(names):
                os.rename(self.shard_path(k).name, name, src_dir_fd=self._stage, dst_dir_fd=self._stage)
            weight_map = {t: names[k] for k, tensors in enumerate(shards) for t in tensors}
            doc = {"metadata": {TOTAL_SIZE: int(total_size), **check_metadata(metadata)}, "weight_map": weight_map}
            _write_json(INDEX, doc, self._stage)
            _sync(self._stage)
            if self.in_place:
                with self._locked():
                    self._recover_dead()
                    old = _Old(self.path, self._home)
                    self._check_replaceable(old)
                    commit = _Commit.plan(self.path, self._home, self._stage, doc, names, old)
                    try:
                        commit.run()
                    except BaseException:
                        if not commit.undone:  # the journal stays for the next writer to finish or undo
                            self.stage_name = ""
                        raise
                    if commit.finished:  # still under the lock: no other commit before the journal goes
                        shutil.rmtree(self.stage_name, dir_fd=self._home)
            else:
                try:
                    os.rename(self.stage_name, self.path.name, src_dir_fd=self._home, dst_dir_fd=self._home)
                except OSError as e:
                    msg = (
                        f"{str(self.path)!r} appeared while the checkpoint was written ({e.strerror}); "
                        "nothing was written"
                    )
                    raise ValueError(msg) from None
                _sync(self._home)
            self.stage_name = ""
        except BaseException:
            self.abort()
            raise
        self._close()
        return self.path

    def abort(self) -> None:
        """Remove the staging directory; ``path`` is left as it was."""
        if self.stage_name and self._home is not None:
            with contextlib.suppress(OSError):
                shutil.rmtree(self.stage_name, dir_fd=self._home)
            self.stage_name = ""
        self._close()

    def _close(self) -> None:
        for attr in ("_stage", "_home"):
            fd = getattr(self, attr)
            if fd is not None:
                os.close(fd)
                setattr(self, attr, None)


def _read_journal(stage_fd: int) -> dict[str, Any] | None:
    try:
        fd = os.open(_JOURNAL, os.O_RDONLY | os.O_CLOEXEC, dir_fd=stage_fd)
    except FileNotFoundError:
        return None
    with open(fd, "rb") as f:
        return json.loads(f.read().decode("utf-8"))


class _Commit:
    """The in-place commit of one staging directory into ``path``, from its journal: run forward, or
    recovered (finished or undone) by a later writer. Every name is relative to a directory descriptor.

    The journal: ``new`` maps each shard's name to its hidden name in ``path`` and its inode; ``old``
    the old checkpoint's files to their inodes; ``mid`` and ``final`` are the inodes of the two
    indexes (naming the hidden names, then the shards' names).
    """

    def __init__(self, path: Path, home: int, stage: int, journal: dict[str, Any]):
        self.path, self.home, self.stage, self.j = path, home, stage, journal
        self.undone = False  # run() failed before the commit and put everything back
        self.finished = False  # run() committed and tidied: the journal is no longer needed

    @classmethod
    def plan(cls, path: Path, home: int, stage: int, doc: dict[str, Any], names: list[str], old: _Old) -> _Commit:
        """Prepare the commit (in the staging directory only) and write its journal, before ``path`` changes."""
        strangers = [n for n in names if _ino(n, home) is not None and n not in old.files]
        if strangers:
            msg = (
                f"{str(path / strangers[0])!r} is in the way: a shard name of the new checkpoint, but not a "
                f"file of the old one; remove it or write to another directory"
            )
            raise ValueError(msg)
        try:  # the names are hard links for a moment: refuse, before anything changes, where there are none
            os.link(INDEX, _JOURNAL + ".link", src_dir_fd=stage, dst_dir_fd=stage, follow_symlinks=False)
            os.unlink(_JOURNAL + ".link", dir_fd=stage)
        except OSError as e:
            msg = (
                f"cannot replace files in {str(path)!r} in place: its file system makes no hard links ({e.strerror}); "
                "write to a new directory"
            )
            raise ValueError(msg) from None
        hidden = {n: _hidden(n, "new") for n in names}
        mid = {**doc, "weight_map": {t: hidden[f] for t, f in doc["weight_map"].items()}}
        j = {
            "new": {n: [hidden[n], _ino(n, stage)] for n in names}, "old": {n: _ino(n, home) for n in old.files},
            "mid": _write_json(_MID, mid, stage), "final": _ino(INDEX, stage),
        }
        _write_json(_JOURNAL + ".tmp", j, stage)
        os.rename(_JOURNAL + ".tmp", _JOURNAL, src_dir_fd=stage, dst_dir_fd=stage)
        _sync(stage)
        return cls(path, home, stage, j)

    def run(self) -> None:
        """Forward: the new shards in under hidden names, the index naming them (the commit), the old
        files out, the shards' own names linked, the final index, the hidden names out."""
        j, home, stage = self.j, self.home, self.stage
        try:
            for name, (hidden, _) in j["new"].items():
                os.rename(name, hidden, src_dir_fd=stage, dst_dir_fd=home)
            _sync(home)
            os.rename(_MID, INDEX, src_dir_fd=stage, dst_dir_fd=home)  # the commit
            _sync(home)
        except BaseException:
            if not self.committed():
                with contextlib.suppress(OSError):
                    self.undo()
                    self.undone = True
            raise
        try:
            self.finish()
        except OSError as e:
            warnings.warn(
                f"the checkpoint in {str(self.path)!r} is written, but not tidied ({e}); the next write to it "
                "finishes the job", stacklevel=5,
            )
            return
        self.finished = True

    def committed(self) -> bool:
        return _ino(INDEX, self.home) in (self.j["mid"], self.j["final"])

    def recover(self) -> None:
        """What a later writer does with a dead writer's journal: finish a committed write, undo another."""
        if self.committed():
            self.finish()
        else:
            self.undo()

    def finish(self) -> None:
        """After the commit: unlink the old files (those still the inodes recorded), link the shards'
        names, put the final index in place of the one naming the hidden names, unlink those."""
        j, home, stage = self.j, self.home, self.stage
        for name, ino in j["old"].items():  # a name the new checkpoint took is another inode by now
            _unlink_if(name, ino, home)
        _sync(home)
        for name, (hidden, ino) in j["new"].items():
            if _ino(name, home) is None and _ino(hidden, home) == ino:
                os.link(hidden, name, src_dir_fd=home, dst_dir_fd=home, follow_symlinks=False)
        _sync(home)
        if not all(_ino(name, home) == ino for name, (_, ino) in j["new"].items()):
            msg = f"the shards of {str(self.path)!r} are not all in place; their hidden names stay in the index"
            raise OSError(msg)
        if _ino(INDEX, home) == j["mid"] and _ino(INDEX, stage) == j["final"]:
            os.rename(INDEX, INDEX, src_dir_fd=stage, dst_dir_fd=home)
            _sync(home)
        if _ino(INDEX, home) == j["final"]:
            for hidden, ino in j["new"].values():
                _unlink_if(hidden, ino, home)
            _sync(home)

    def undo(self) -> None:
        """Before the commit: unlink the hidden new shards; nothing else of ``path`` was touched."""
        for hidden, ino in self.j["new"].values():
            _unlink_if(hidden, ino, self.home)
        _sync(self.home)


# -- writers ----------------------------------------------------------------------------
class ShardedWriter:
    """Tensors added one at a time (:meth:`add`), into shards of at most ``limit`` bytes; the
    directory committed by :meth:`commit`. The interface of :class:`~arraysparse.io._safetensors.SafetensorsWriter`.

    A shard is written (its header, then its data copied behind it) when the
    next tensor would take it past the limit, so memory holds about one tensor
    and the disk one shard's data twice.
    """

    def __init__(self, path: Path, metadata: Mapping[str, str] | None, limit: int, *, overwrite: bool):
        self.path = path
        self.metadata = dict(metadata or {})
        self.limit = limit
        self._dir = ShardDirectory(path, overwrite=overwrite)
        self._shards: list[list[str]] = []
        self._current: SafetensorsWriter | None = None
        self._held = 0
        self._total = 0

    def add(self, name: str, dtype: str, bits: np.ndarray) -> None:
        nbytes = _slot(name, dtype, tuple(bits.shape), None).nbytes
        if self._current is not None and self._held + nbytes > self.limit:
            self._finish()
        if self._current is None:
            self._current = SafetensorsWriter(self._dir.shard_path(len(self._shards)), SHARD_METADATA)
            self._shards.append([])
            self._held = 0
        self._current.add(name, dtype, bits)
        self._shards[-1].append(name)
        self._held += nbytes
        self._total += nbytes

    def _finish(self) -> None:
        current, self._current = self._current, None
        assert current is not None
        current.commit()

    def commit(self) -> None:
        try:
            if self._current is not None:
                self._finish()
        except BaseException:
            self.abort()
            raise
        self._dir.commit(self._shards, self._total, self.metadata)

    def abort(self) -> None:
        if self._current is not None:
            self._current.abort()
            self._current = None
        self._dir.abort()


def write_planned_shards(
    path: Path,
    items: list[tuple[str, str, tuple[int, ...], Callable[[], np.ndarray]]],
    metadata: Mapping[str, str] | None,
    limit: int,
    *,
    overwrite: bool,
) -> Path:
    """Write ``(name, dtype, shape, fetch)`` items whose shapes are known into shards of at most
    ``limit`` bytes, each in one pass (:func:`~arraysparse.io._safetensors.write_planned`)."""
    sizes = [_slot(name, dtype, shape, None).nbytes for name, dtype, shape, _ in items]
    groups = split(sizes, limit)
    directory = ShardDirectory(path, overwrite=overwrite)
    try:
        for k, group in enumerate(groups):
            write_planned(directory.shard_path(k), [items[i] for i in group], SHARD_METADATA)
    except BaseException:
        directory.abort()
        raise
    return directory.commit([[items[i][0] for i in g] for g in groups], sum(sizes), dict(metadata or {}))
