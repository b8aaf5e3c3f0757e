"""Run the CUDA sources on the host: g++, a shim header, and the launch plans' own launches.

:class:`Emulator` is a launch device for :mod:`arraysparse._kernels.cuda.plans`
with NumPy arrays as device memory: a plan runs unchanged on it (the same
grid and block sizes, scratch buffers and scans between passes as on a GPU)
and each launch runs the real kernel source, compiled by the machine's C++
compiler with ``shim.h`` force-included (every block's threads as OS threads,
``__syncthreads`` a barrier, warp shuffles, ballots and atomics emulated; see
the header). That is how the test suite checks every kernel against the CPU
kernels on machines without a GPU.

Each source is compiled once into a shared library, cached by the hash of
its text, the shim and its instance list in ``$ARRAYSPARSE_CUDA_EMULATION_DIR``
(default: a per-user directory under the system's temporary directory). The
launch checks every argument against the kernel's parameter list (pointer or
value, item size), so a plan passing a wrong type fails here, not on a GPU.

Sanitizers: with ``ARRAYSPARSE_CUDA_EMULATION_SANITIZE=address`` (AddressSanitizer
and UndefinedBehaviorSanitizer) or ``=thread`` (ThreadSanitizer) the sources are
built instrumented, cached apart from the plain build, and debug information
names the ``.cu`` / ``common.cuh`` lines. The sanitizer's runtime must be in the
process before the library: :func:`sanitizer_env` gives the environment
(``LD_PRELOAD`` and the runtime's options) and ``python -m
arraysparse._kernels.cuda.emulate MODE [pytest arguments]`` runs pytest under it.
Under ``address`` every array a launch points to is copied into an allocation of
exactly its size (a view of a larger buffer would hide an overrun) and copied
back afterwards; shared memory is always one exact allocation per declaration
and block (see ``shim.h``).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from .. import instances

HERE = Path(__file__).resolve().parent
SHIM = HERE / "shim.h"
_FLAGS = ("-std=c++20", "-O1", "-shared", "-fPIC", "-pthread", "-fno-strict-aliasing", "-w")
_lock = threading.Lock()

#: The environment variable that selects a sanitized build: ``address`` or ``thread``.
SANITIZE_ENV = "ARRAYSPARSE_CUDA_EMULATION_SANITIZE"
#: Compiler flags of each sanitizer mode (added to the plain build's).
SANITIZERS: dict[str, tuple[str, ...]] = {
    "address": ("-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=undefined", "-g"),
    "thread": ("-fsanitize=thread", "-g"),
}
#: The runtime each mode needs preloaded (``$CXX -print-file-name=...``) and a symbol it defines.
RUNTIMES = {"address": ("libasan.so", "__asan_init"), "thread": ("libtsan.so", "__tsan_init")}
#: What the sanitizers suppress: reports from outside the emulation's code (see the file).
SUPPRESSIONS = {"address": HERE / "ubsan.supp", "thread": HERE / "tsan.supp"}


class EmulationUnavailable(RuntimeError):
    """No C++ compiler able to build the emulation (the reason is the message)."""


@functools.cache
def compiler() -> str:
    """The C++ compiler (``$CXX``, else ``g++``, else ``c++``); :class:`EmulationUnavailable` if none
    compiles C++20 with ``std::atomic_ref``."""
    candidates = [os.environ["CXX"]] if os.environ.get("CXX") else ["g++", "c++"]
    for cand in candidates:
        path = shutil.which(cand)
        if path is None:
            continue
        probe = "#include <atomic>\nint f(int* p) { return std::atomic_ref<int>(*p).fetch_add(1); }\n"
        with tempfile.TemporaryDirectory() as d:
            src = Path(d) / "probe.cpp"
            src.write_text(probe)
            done = subprocess.run(
                [path, "-std=c++20", "-c", str(src), "-o", str(Path(d) / "probe.o")],
                capture_output=True, text=True, check=False,
            )
        if done.returncode == 0:
            return path
    msg = f"no C++20 compiler found (tried {', '.join(candidates)}); set CXX to one"
    raise EmulationUnavailable(msg)


def cache_dir() -> Path:
    root = os.environ.get("ARRAYSPARSE_CUDA_EMULATION_DIR")
    if root:
        path = Path(root)
    else:
        user = os.getuid() if hasattr(os, "getuid") else os.getlogin()
        path = Path(tempfile.gettempdir()) / f"arraysparse-cuda-emulation-{user}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def sanitize_mode() -> str | None:
    """The sanitizer mode ``$ARRAYSPARSE_CUDA_EMULATION_SANITIZE`` asks for (None: a plain build)."""
    mode = os.environ.get(SANITIZE_ENV, "").strip().lower()
    if mode in ("", "0", "none", "off"):
        return None
    if mode not in SANITIZERS:
        msg = f"{SANITIZE_ENV}={mode!r}: expected one of {', '.join(SANITIZERS)} (or unset)"
        raise ValueError(msg)
    return mode


@functools.cache
def sanitizer_runtime(mode: str) -> Path:
    """The shared runtime of sanitizer ``mode`` that the compiler links against;
    :class:`EmulationUnavailable` (naming what is missing) if the compiler has none or
    cannot build a library with it."""
    cxx = compiler()
    lib, _ = RUNTIMES[mode]
    done = subprocess.run([cxx, f"-print-file-name={lib}"], capture_output=True, text=True, check=False)
    path = Path(done.stdout.strip())
    if done.returncode != 0 or not path.is_absolute() or not path.exists():
        package = {"address": "libasan", "thread": "libtsan"}[mode]
        msg = f"{cxx} has no {lib} (the {mode} sanitizer's runtime; on Debian the {package}N package of the compiler)"
        raise EmulationUnavailable(msg)
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "probe.cpp"
        src.write_text('#include <thread>\nextern "C" void f(int* v) { std::thread([=] { *v = 1; }).join(); }\n')
        cmd = [cxx, *_FLAGS, *SANITIZERS[mode], str(src), "-o", str(Path(d) / "probe.so")]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        msg = f"{cxx} cannot build with {' '.join(SANITIZERS[mode])}: {done.stderr.strip()[-500:]}"
        raise EmulationUnavailable(msg)
    return path.resolve()


def sanitizer_env(mode: str, base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) with what a process needs to run the
    emulation under sanitizer ``mode``: the mode, the runtime in ``LD_PRELOAD``, and the
    runtime's options (no leak check: Python itself leaks by design; suppressions of what
    is not ours; stop at the first report)."""
    env = dict(os.environ if base is None else base)
    # the C++ runtime too: a sanitizer intercepts __cxa_throw only if libstdc++ is there when
    # it starts (Python does not load it), and the emulation reports errors as C++ exceptions
    preload = [str(sanitizer_runtime(mode)), str(_cxx_runtime()), env.get("LD_PRELOAD", "")]
    env[SANITIZE_ENV] = mode
    env["LD_PRELOAD"] = " ".join(p for p in preload if p)
    if mode == "address":
        env["ASAN_OPTIONS"] = "detect_leaks=0:halt_on_error=1"
        env["UBSAN_OPTIONS"] = f"print_stacktrace=1:halt_on_error=1:suppressions={SUPPRESSIONS['address']}"
    else:
        env["TSAN_OPTIONS"] = f"halt_on_error=1:report_signal_unsafe=0:suppressions={SUPPRESSIONS['thread']}"
        # the host's own thread pools (Numba's and BLAS's OpenMP, torch's) synchronise in code
        # ThreadSanitizer does not see: one thread each, so their work is not reported as races
        for var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = "1"
    return env


@functools.cache
def _cxx_runtime() -> Path:
    done = subprocess.run([compiler(), "-print-file-name=libstdc++.so"], capture_output=True, text=True, check=False)
    path = Path(done.stdout.strip())
    if done.returncode != 0 or not path.is_absolute() or not path.exists():
        msg = f"{compiler()} names no libstdc++.so"
        raise EmulationUnavailable(msg)
    return path.resolve()


def _runtime_loaded(mode: str) -> bool:
    return hasattr(ctypes.CDLL(None), RUNTIMES[mode][1])


def _line(path: Path | str) -> str:
    return '"' + str(path).replace("\\", "\\\\").replace('"', '\\"') + '"'


def located_text(source: str) -> str:
    """``source``'s code as :func:`instances.source_text` has it (``common.cuh`` inlined), with
    ``#line`` marks: a compiler's messages and a sanitizer's reports name the real file and line."""
    instances.source_text(source)  # refuses a source without the include
    cu = instances.DIRECTORY / source
    common = instances.DIRECTORY / instances.COMMON
    head, tail = cu.read_text().split(f'#include "{instances.COMMON}"', 1)
    at = head.count("\n") + 1
    return (f"#line 1 {_line(cu)}\n{head}\n#line 1 {_line(common)}\n{common.read_text()}\n"
            f"#line {at} {_line(cu)}\n{tail}")


_SHARED = re.compile(
    r"\b__shared__[ \t]+(?:__align__\((?P<align>\d+)\)[ \t]+)?(?P<type>[A-Za-z_][\w:<>, \t]*?)[ \t]+"
    r"(?P<name>[A-Za-z_]\w*)[ \t]*(?P<dims>(?:\[[^\]\n]+\][ \t]*)*);"
)


def rewrite_shared(text: str) -> str:
    """Each ``__shared__ T name[N];`` of ``text`` as ``auto& name = ::emu::shared<T[N], id>();``
    (on the same line): the shim gives every block its own exact allocation of it. A
    declaration this does not recognise is left to fail the compile (the shim's
    ``__shared__`` names the problem)."""
    count = 0

    def one(m: re.Match) -> str:
        nonlocal count
        dims = re.sub(r"[ \t]+", "", m["dims"])
        align = f", {m['align']}" if m["align"] else ""
        out = f"auto& {m['name']} = ::emu::shared<{m['type'].strip()}{dims}, {count}{align}>();"
        count += 1
        return out

    return _SHARED.sub(one, text)


def _wrapper(names: list[str], text_path: Path) -> str:
    lines = [f'#include "{text_path}"', ""]
    for i, inst in enumerate(names):
        lines += [
            f"// {inst}",
            f'extern "C" int asp_emu_launch_{i}(unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,'
            " unsigned bz, void** args, char* err, int errlen) {",
            f"  return emu::launch(&{inst}, gx, gy, gz, bx, by, bz, args, err, errlen);",
            "}",
            f'extern "C" int asp_emu_describe_{i}(int* is_pointer, int* size) {{',
            f"  return emu::describe(&{inst}, is_pointer, size);",
            "}",
        ]
    return "\n".join(lines) + "\n"


def library(source: str) -> ctypes.CDLL:
    """The shared library of ``source`` with every instance, built (or found in the cache),
    for the sanitizer mode asked for now."""
    return _library(source, sanitize_mode())


@functools.cache
def _library(source: str, mode: str | None) -> ctypes.CDLL:
    return build(Path(source).stem, located_text(source), tuple(instances.INSTANCES[source]), mode)


def build(stem: str, text: str, names: tuple[str, ...], mode: str | None = None) -> ctypes.CDLL:
    """Compile ``text`` (CUDA source, header-free) with the shim into a shared library exporting
    a launcher and a parameter description for each of ``names``; cached by content and by
    sanitizer ``mode`` (None: plain), whose runtime must already be in the process."""
    cxx = compiler()
    flags = _FLAGS
    if mode is not None:
        flags = (*_FLAGS, *SANITIZERS[mode])
        if not _runtime_loaded(mode):
            env = sanitizer_env(mode, {})
            msg = (f"{SANITIZE_ENV}={mode}: the {mode} sanitizer's runtime is not loaded; run Python (the interpreter,"
                   f" not a wrapper script) with LD_PRELOAD={env['LD_PRELOAD']}, or use"
                   f" python -m arraysparse._kernels.cuda.emulate {mode} [pytest arguments]")
            raise EmulationUnavailable(msg)
    text = rewrite_shared(text)
    h = hashlib.sha256(text.encode())
    h.update("\n".join(names).encode())
    h.update(SHIM.read_bytes())
    h.update(" ".join(flags).encode())
    h.update(cxx.encode())
    stem = f"{stem}-{h.hexdigest()[:16]}" if mode is None else f"{stem}-{mode}-{h.hexdigest()[:16]}"
    out = cache_dir() / f"{stem}.so"
    with _lock:
        if not out.exists():
            work = Path(tempfile.mkdtemp(prefix=stem, dir=cache_dir()))
            try:
                src = work / "kernels.cu"
                src.write_text(text)
                wrapper = work / "wrapper.cpp"
                wrapper.write_text(_wrapper(list(names), src))
                tmp = work / "lib.so"
                cmd = [cxx, *flags, "-include", str(SHIM), str(wrapper), "-o", str(tmp)]
                done = subprocess.run(cmd, capture_output=True, text=True, check=False)
                if done.returncode != 0:
                    msg = f"emulation build of {stem} failed:\n{done.stderr[-6000:]}"
                    raise RuntimeError(msg)
                os.replace(tmp, out)  # atomic: a concurrent test process sees all of it or nothing
            finally:
                shutil.rmtree(work, ignore_errors=True)
    return ctypes.CDLL(str(out))


class _Kernel:
    def __init__(self, lib: ctypes.CDLL, index: int, label: str):
        self.label = label
        self.run = getattr(lib, f"asp_emu_launch_{index}")
        self.run.restype = ctypes.c_int
        self.run.argtypes = [ctypes.c_uint] * 6 + [ctypes.POINTER(ctypes.c_void_p), ctypes.c_char_p, ctypes.c_int]
        describe = getattr(lib, f"asp_emu_describe_{index}")
        describe.restype = ctypes.c_int
        is_pointer = (ctypes.c_int * 64)()
        size = (ctypes.c_int * 64)()
        count = describe(is_pointer, size)
        self.params = [(bool(is_pointer[i]), int(size[i])) for i in range(count)]
        self.read_only = [is_pointer[i] == 2 for i in range(count)]  # pointers to const

    def marshal(self, args: tuple, exact: bool = False) -> tuple[Any, list, list]:
        """The launch's argument pointers, what keeps them alive, and (with ``exact``) the
        exact copies of the arrays as ``(copy, array, copy back)``."""
        if len(args) != len(self.params):
            msg = f"{self.label} takes {len(self.params)} arguments, the plan gave {len(args)}"
            raise TypeError(msg)
        holders: list = []
        copies: list = []
        alone = _unaliased(args, self.params) if exact else set()
        ptrs = (ctypes.c_void_p * max(1, len(args)))()
        for i, (a, (is_pointer, size)) in enumerate(zip(args, self.params)):
            if is_pointer:
                if not isinstance(a, np.ndarray):
                    msg = f"{self.label} argument {i} is a pointer; the plan gave {type(a).__name__}"
                    raise TypeError(msg)
                if size and a.dtype.itemsize != size:
                    msg = f"{self.label} argument {i} points to {size}-byte items; the plan gave {a.dtype}"
                    raise TypeError(msg)
                if not a.flags.c_contiguous:
                    msg = f"{self.label} argument {i} must be C-contiguous"
                    raise ValueError(msg)
                if size and a.ctypes.data % min(size, 16):
                    msg = f"{self.label} argument {i} is not aligned to its {size}-byte items (a GPU faults on it)"
                    raise ValueError(msg)
                address = a.ctypes.data
                if i in alone:
                    address = _exact_copy(a)
                    copies.append((address, a, not self.read_only[i]))
                holder = ctypes.c_void_p(address)
            else:
                if not isinstance(a, np.generic) or a.dtype.itemsize != size:
                    got = a.dtype if isinstance(a, np.generic) else type(a).__name__
                    msg = f"{self.label} argument {i} is a {size}-byte value; the plan gave {got}"
                    raise TypeError(msg)
                holder = ctypes.create_string_buffer(a.tobytes(), size)
            holders.append(holder)
            ptrs[i] = ctypes.addressof(holder)
        return ptrs, holders, copies


@functools.cache
def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None)  # the process's malloc: the sanitizer's, once it is preloaded
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.restype = None
    libc.free.argtypes = [ctypes.c_void_p]
    return libc


def _unaliased(args: tuple, params: list) -> set[int]:
    """The pointer arguments that share no memory with another (those are copied apart; the
    others keep their aliasing)."""
    # plain ndarray views: a device's array type may refuse NumPy functions (the tests' GPU-shaped memory)
    arrays = [(i, a.view(np.ndarray)) for i, (a, (p, _)) in enumerate(zip(args, params))
              if p and isinstance(a, np.ndarray)]
    shared = {
        k
        for x, (i, a) in enumerate(arrays)
        for j, b in arrays[x + 1 :]
        if np.may_share_memory(a, b)
        for k in (i, j)
    }
    return {i for i, _ in arrays} - shared


def _exact_copy(a: np.ndarray) -> int:
    """A malloc'd copy of ``a``'s bytes, exactly ``a.nbytes`` long (a sanitizer sees its end)."""
    address = _libc().malloc(a.nbytes)
    if not address:
        raise MemoryError(a.nbytes)
    if a.nbytes:
        ctypes.memmove(address, a.ctypes.data, a.nbytes)
    return address


def _release(copies: list, ok: bool) -> None:
    for address, a, back in copies:
        if ok and back and a.nbytes:
            ctypes.memmove(a.ctypes.data, address, a.nbytes)
        _libc().free(address)


def _dims(d: int | tuple[int, ...]) -> tuple[int, int, int]:
    t = (d,) if isinstance(d, (int, np.integer)) else tuple(d)
    return (*map(int, t), *(1,) * (3 - len(t)))  # type: ignore[return-value]


class Emulator:
    """A launch device whose memory is the host's: NumPy arrays in, kernels run by the emulation.

    The same interface as the CuPy loader's device (:mod:`..loader`):
    ``xp``, :meth:`launch`, :meth:`host`, :meth:`upload`. ``launches`` records
    ``(instance, grid, block)`` of every launch, for tests of the plans' paths.
    """

    xp: ModuleType = np

    def __init__(self) -> None:
        self.launches: list[tuple[str, tuple[int, int, int], tuple[int, int, int]]] = []
        self._kernels: dict[tuple[str, str, str | None], _Kernel] = {}
        self._extra: dict[str, tuple[str, tuple[str, ...]]] = {}

    def add_source(self, source: str, text: str, names: list[str]) -> None:
        """Make ``names`` of a source outside the package launchable here (tests of the
        emulation itself); the package's own sources need no registering."""
        self._extra[source] = (text, tuple(names))

    def _kernel(self, source: str, instance: str, mode: str | None) -> _Kernel:
        key = (source, instance, mode)
        if key not in self._kernels:
            if source in self._extra:
                text, names = self._extra[source]
                lib = build(Path(source).stem, f"#line 1 {_line(source)}\n{text}", names, mode)
            else:
                instances.check_instance(source, instance)
                lib, names = _library(source, mode), tuple(instances.INSTANCES[source])
            self._kernels[key] = _Kernel(lib, names.index(instance), instance)
        return self._kernels[key]

    def launch(self, source: str, instance: str, grid: int | tuple, block: int | tuple, args: tuple) -> None:
        """Run ``instance`` of ``source`` on ``grid`` x ``block`` with ``args`` (arrays, NumPy scalars)."""
        mode = sanitize_mode()
        k = self._kernel(source, instance, mode)
        g, b = _dims(grid), _dims(block)
        self.launches.append((instance, g, b))
        if 0 in g:
            return
        ptrs, holders, copies = k.marshal(args, exact=mode == "address")
        err = ctypes.create_string_buffer(1024)
        try:
            rc = k.run(*g, *b, ptrs, err, len(err))
        finally:
            _release(copies, ok=True)
        del holders
        if rc:
            msg = f"{instance} on grid {g}, block {b}: {err.value.decode(errors='replace')}"
            raise RuntimeError(msg)

    def host(self, a: np.ndarray) -> np.ndarray:
        """A device array on the host (here: itself)."""
        return np.asarray(a)

    def upload(self, a: np.ndarray) -> np.ndarray:
        """A host array as device memory (here: a copy)."""
        return np.array(a)
