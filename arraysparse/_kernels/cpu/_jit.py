"""How the host kernels are compiled: Numba, with a cache on disk that every process shares.

Every kernel is a module-level function decorated with :func:`kernel`. Its
specialisations are argument types, never closures over other dispatchers
(Numba cannot cache those): a compile-time constant such as a group size
``m`` or a key kind travels as a :class:`Static` argument, whose Numba type
carries the value, so the compiled code sees a constant and the cache keys
on it like on any other type.

The cache lives in one directory per version of the kernels' sources
(``kernels-<hash>`` under :func:`cache_root`), so an edit of any kernel
module, or of a helper another module inlines, starts a fresh cache instead
of loading stale machine code (Numba's own stamp looks at one file only).
The root is, in order: ``$ARRAYSPARSE_CACHE_DIR``, ``$NUMBA_CACHE_DIR/arraysparse``,
``$XDG_CACHE_HOME/arraysparse``, ``~/.cache/arraysparse``; a read-only
package directory is no obstacle, since nothing is written next to the
sources. Where no directory is writable the kernels still compile, uncached.

A compile is logged on the ``arraysparse.kernels`` logger (INFO) with its
signature and duration, so a user sees why a first call waits.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numba
import numpy as np
from numba.core import caching, cgutils, types
from numba.core import event as numba_event
from numba.extending import NativeValue, intrinsic, models, overload, register_model, typeof_impl, unbox

log = logging.getLogger("arraysparse.kernels")

_SOURCES = Path(__file__).resolve().parent
_lock = threading.Lock()
_stamp: str | None = None


# -- compile-time constants as argument types ------------------------------------------
class Static:
    """A hashable value that a kernel sees as a compile-time constant.

    ``kernel(x, Static(4))`` compiles (and caches) one specialisation per
    value; inside the kernel ``static_value(arg)`` is that constant.
    """

    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value

    def __repr__(self) -> str:
        return f"Static({self.value!r})"


class StaticType(types.Dummy):
    """Numba type of a :class:`Static`: the value is part of the type."""

    def __init__(self, value: Any):
        self.value = value
        super().__init__(name=f"Static({value!r})")

    @property
    def key(self) -> Any:
        return self.value


@typeof_impl.register(Static)
def _typeof_static(val: Static, c: Any) -> StaticType:
    return StaticType(val.value)


register_model(StaticType)(models.OpaqueModel)


@unbox(StaticType)
def _unbox_static(typ: StaticType, obj: Any, c: Any) -> NativeValue:
    return NativeValue(c.context.get_dummy_value())


def static_value(s):
    """Inside a kernel: the constant a :class:`Static` argument carries."""
    if isinstance(s, Static):
        return s.value
    msg = f"static_value expects a Static, got {type(s).__name__}"
    raise TypeError(msg)


@overload(static_value, inline="always")
def _ol_static_value(s):  # noqa: ANN001 (Numba compares the overload's signature with the stub's)
    if isinstance(s, StaticType):
        value = s.value
        return lambda s: value
    return None


# -- the on-disk cache ----------------------------------------------------------------
def cache_root() -> Path:
    """The directory that holds every version's cache of compiled kernels."""
    env = os.environ.get("ARRAYSPARSE_CACHE_DIR")
    if env:
        return Path(env)
    numba_dir = os.environ.get("NUMBA_CACHE_DIR")
    if numba_dir:
        return Path(numba_dir) / "arraysparse"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "arraysparse"


def sources_stamp() -> str:
    """Hash of every kernel source file and the compiler's versions: the cache's version."""
    global _stamp
    if _stamp is None:
        h = hashlib.sha256()
        for path in sorted(_SOURCES.glob("*.py")):
            h.update(path.name.encode())
            h.update(path.read_bytes())
        for version in (numba.__version__, np.__version__):
            h.update(version.encode())
        _stamp = h.hexdigest()[:16]
    return _stamp


def cache_dir() -> Path:
    """Where this version of the kernels is cached."""
    return cache_root() / f"kernels-{sources_stamp()}"


class _Locator(caching._CacheLocator):
    """Every kernel in :func:`cache_dir`, stamped with :func:`sources_stamp`."""

    def __init__(self, path: Path, py_file: str):
        self._path = str(path)
        self._py_file = py_file  # Numba's warnings point at it
        self._module = Path(py_file).stem

    def get_cache_path(self) -> str:
        return self._path

    def get_source_stamp(self) -> str:
        return sources_stamp()

    def get_disambiguator(self) -> str:
        return self._module

    @classmethod
    def from_function(cls, py_func: Any, py_file: str) -> _Locator | None:
        path = _writable_cache_dir()
        return None if path is None else cls(path, py_file)


@functools.cache
def _writable_cache_dir() -> Path | None:
    """:func:`cache_dir`, else a per-user one under the temporary directory, whichever can be
    written (tried once per process, not once per kernel); None if neither."""
    for path in (cache_dir(), Path(tempfile.gettempdir()) / f"arraysparse-{os.getuid()}" / cache_dir().name):
        try:
            path.mkdir(parents=True, exist_ok=True)
            tempfile.TemporaryFile(dir=path).close()
        except OSError:
            continue
        return path
    log.warning("no writable cache directory for arraysparse's kernels (tried %s): they compile in every process",
                cache_dir())
    return None


class _CacheImpl(caching.CompileResultCacheImpl):
    _locator_classes = [_Locator]


class _Cache(caching.FunctionCache):
    _impl_class = _CacheImpl


def kernel(fn: Any = None, /, *, parallel: bool = False, inline: str = "never") -> Any:
    """``numba.njit(nogil=True)`` with the shared on-disk cache; use bare or with options."""

    def decorate(f: Any) -> Any:
        dispatcher = numba.njit(nogil=True, parallel=parallel, inline=inline)(f)
        dispatcher._arraysparse_kernel = True  # what the compile log reports
        if inline == "never":
            try:
                dispatcher._cache = _Cache(f)
            except RuntimeError:  # no writable directory (said once): compile in every process
                pass
        return dispatcher

    return decorate if fn is None else decorate(fn)


def writable(a: np.ndarray) -> np.ndarray:
    """``a`` as a writable array over the same memory, for a kernel that only reads it.

    Numba compiles a read-only array as a separate type, so every kernel would
    be compiled twice; the kernels never write their inputs (tests check it),
    so a read-only input is handed over as a writable view instead.
    """
    if a.flags.writeable:
        return a
    interface = dict(a.__array_interface__)
    interface["data"] = (interface["data"][0], False)
    holder = _Interface(interface, a)
    return np.asarray(holder)


class _Interface:
    __slots__ = ("__array_interface__", "_base")

    def __init__(self, interface: dict, base: np.ndarray):
        self.__array_interface__ = interface
        self._base = base  # keeps the memory alive as long as the view


# -- compile events --------------------------------------------------------------------
class _CompileLog(numba_event.Listener):
    """Logs each compile of an arraysparse kernel with its signature and duration."""

    def __init__(self) -> None:
        self._started: dict[tuple, float] = {}
        self.compiled: list[tuple[str, str, float]] = []

    @staticmethod
    def _ours(ev: Any) -> Any:
        dispatcher = ev.data.get("dispatcher") if isinstance(ev.data, dict) else None
        return dispatcher if getattr(dispatcher, "_arraysparse_kernel", False) else None

    @staticmethod
    def _key(ev: Any) -> tuple:
        return id(ev.data["dispatcher"]), tuple(map(str, ev.data["args"]))

    def on_start(self, ev: Any) -> None:
        if self._ours(ev) is not None:
            self._started[self._key(ev)] = time.perf_counter()

    def on_end(self, ev: Any) -> None:
        dispatcher = self._ours(ev)
        if dispatcher is None:
            return
        started = self._started.pop(self._key(ev), None)
        seconds = time.perf_counter() - started if started is not None else float("nan")
        name = f"{dispatcher.py_func.__module__.rsplit('.', 1)[-1]}.{dispatcher.py_func.__qualname__}"
        signature = ", ".join(map(str, ev.data["args"]))
        self.compiled.append((name, signature, seconds))
        log.info(
            "compiled %s(%s) in %.2f s (cached for later processes in %s)",
            name, signature, seconds, _writable_cache_dir(),
        )


compile_log = _CompileLog()
numba_event.register("numba:compile", compile_log)


# -- many arrays in one launch ------------------------------------------------------------
@intrinsic
def _as_pointer(typingctx, address):  # noqa: ANN001 (Numba's intrinsic protocol)
    def codegen(context, builder, signature, args):  # noqa: ANN001
        return builder.inttoptr(args[0], cgutils.voidptr_t)

    return types.voidptr(address), codegen


@kernel(inline="always")
def array_at(address, size, proto):
    """Inside a kernel: the 1-D array of ``size`` items of ``proto``'s dtype at ``address``.

    How a kernel takes a list of arrays without a typed list (whose methods
    Numba compiles again in every process): the caller passes the arrays'
    addresses (:func:`addresses`) and keeps the arrays alive during the call.
    """
    return numba.carray(_as_pointer(address), size, proto.dtype)


def addresses(arrays: list[np.ndarray]) -> np.ndarray:
    """The data addresses of C-contiguous arrays, for :func:`array_at`."""
    out = np.empty(len(arrays), np.int64)
    for i, a in enumerate(arrays):
        if not a.flags.c_contiguous:
            msg = "array_at needs C-contiguous arrays"
            raise ValueError(msg)
        out[i] = a.ctypes.data
    return out
