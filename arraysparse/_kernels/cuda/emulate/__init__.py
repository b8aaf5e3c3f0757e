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
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from .. import instances

SHIM = Path(__file__).resolve().parent / "shim.h"
_FLAGS = ("-std=c++20", "-O1", "-shared", "-fPIC", "-pthread", "-fno-strict-aliasing", "-w")
_lock = threading.Lock()


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


@functools.cache
def library(source: str) -> ctypes.CDLL:
    """The shared library of ``source`` with every instance, built (or found in the cache)."""
    return build(Path(source).stem, instances.source_text(source), tuple(instances.INSTANCES[source]))


def build(stem: str, text: str, names: tuple[str, ...]) -> ctypes.CDLL:
    """Compile ``text`` (CUDA source, header-free) with the shim into a shared library exporting
    a launcher and a parameter description for each of ``names``; cached by content."""
    cxx = compiler()
    h = hashlib.sha256(text.encode())
    h.update("\n".join(names).encode())
    h.update(SHIM.read_bytes())
    h.update(" ".join(_FLAGS).encode())
    h.update(cxx.encode())
    stem = f"{stem}-{h.hexdigest()[:16]}"
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
                cmd = [cxx, *_FLAGS, "-include", str(SHIM), str(wrapper), "-o", str(tmp)]
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

    def marshal(self, args: tuple) -> tuple[Any, list]:
        if len(args) != len(self.params):
            msg = f"{self.label} takes {len(self.params)} arguments, the plan gave {len(args)}"
            raise TypeError(msg)
        holders: list = []
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
                holder = ctypes.c_void_p(a.ctypes.data)
            else:
                if not isinstance(a, np.generic) or a.dtype.itemsize != size:
                    got = a.dtype if isinstance(a, np.generic) else type(a).__name__
                    msg = f"{self.label} argument {i} is a {size}-byte value; the plan gave {got}"
                    raise TypeError(msg)
                holder = ctypes.create_string_buffer(a.tobytes(), size)
            holders.append(holder)
            ptrs[i] = ctypes.addressof(holder)
        return ptrs, holders


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
        self._kernels: dict[tuple[str, str], _Kernel] = {}
        self._extra: dict[str, tuple[str, tuple[str, ...]]] = {}

    def add_source(self, source: str, text: str, names: list[str]) -> None:
        """Make ``names`` of a source outside the package launchable here (tests of the
        emulation itself); the package's own sources need no registering."""
        self._extra[source] = (text, tuple(names))

    def _kernel(self, source: str, instance: str) -> _Kernel:
        key = (source, instance)
        if key not in self._kernels:
            if source in self._extra:
                text, names = self._extra[source]
                lib = build(Path(source).stem, text, names)
            else:
                instances.check_instance(source, instance)
                lib, names = library(source), tuple(instances.INSTANCES[source])
            self._kernels[key] = _Kernel(lib, names.index(instance), instance)
        return self._kernels[key]

    def launch(self, source: str, instance: str, grid: int | tuple, block: int | tuple, args: tuple) -> None:
        """Run ``instance`` of ``source`` on ``grid`` x ``block`` with ``args`` (arrays, NumPy scalars)."""
        k = self._kernel(source, instance)
        g, b = _dims(grid), _dims(block)
        self.launches.append((instance, g, b))
        if 0 in g:
            return
        ptrs, holders = k.marshal(args)
        err = ctypes.create_string_buffer(1024)
        rc = k.run(*g, *b, ptrs, err, len(err))
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
