"""Compile the CUDA sources to cubin with NVRTC, no GPU or driver needed.

The test suite uses this to prove that every source and every template
instance of :mod:`.instances` compiles for the GPUs the CuPy loader serves
(sm_80, sm_90), with the loader's own options, through NVIDIA's NVRTC from
PyPI (``cuda-bindings`` + ``nvidia-cuda-nvrtc``). Results are cached by the
hash of the source text, its instances, the architecture and the NVRTC
version, so only an edited source is compiled again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import instances

#: What the CuPy loader passes to NVRTC besides the architecture.
OPTIONS = ("-std=c++17",)

#: What ``cupy.RawModule`` adds to every NVRTC compile (``cupy/cuda/compiler.py``): float32
#: arithmetic flushes subnormals to zero, and functions default to device code. The suite
#: compiles with them too, so it builds what the loader builds (and a test reads the PTX for
#: float32 instructions that would flush a value).
CUPY_ADDS = ("-ftz=true", "--device-as-default-execution-space")


#: Added by the suite only: ptxas's resource report in the log (the code is the same).
VERBOSE = ("--ptxas-options=-v",)


class NvrtcUnavailable(RuntimeError):
    """NVRTC cannot be loaded (the message says why)."""


class CompileError(RuntimeError):
    """NVRTC refused a source; the message holds its log."""


@dataclass(frozen=True)
class Compiled:
    """One source compiled for one architecture."""

    source: str
    arch: str
    cubin_bytes: int
    lowered: dict[str, str]  # name expression -> mangled kernel name
    log: str
    ptx: str  # the PTX assembled into the cubin

    def resources(self) -> dict[str, dict[str, int]]:
        """Per kernel (mangled name), from ptxas's report: ``registers``, ``stack`` (bytes of
        local memory a thread uses), ``spill_stores``, ``spill_loads`` and ``smem`` (static
        shared memory of a block, bytes)."""
        out = {}
        for part in re.split(r"Compiling entry function '", self.log)[1:]:
            name = part.split("'", 1)[0]

            def field(pattern: str, text: str = part) -> int:
                m = re.search(pattern, text)
                return int(m.group(1)) if m else 0

            out[name] = {
                "registers": field(r"Used (\d+) registers"),
                "stack": field(r"(\d+) bytes stack frame"),
                "spill_stores": field(r"(\d+) bytes spill stores"),
                "spill_loads": field(r"(\d+) bytes spill loads"),
                "smem": field(r"(\d+) bytes smem"),
            }
        return out


def _nvrtc():
    try:
        from cuda.bindings import nvrtc
    except ImportError as e:  # pragma: no cover - depends on the environment
        msg = f"cuda-bindings is not installed ({e}); pip install cuda-bindings nvidia-cuda-nvrtc"
        raise NvrtcUnavailable(msg) from e
    try:
        err, major, minor = nvrtc.nvrtcVersion()
    except Exception as e:  # noqa: BLE001 - the library itself is missing
        msg = f"libnvrtc could not be loaded ({e}); pip install nvidia-cuda-nvrtc"
        raise NvrtcUnavailable(msg) from e
    return nvrtc, f"{major}.{minor}"


def version() -> str:
    """The NVRTC version (``"13.5"``); :class:`NvrtcUnavailable` if it cannot be loaded."""
    return _nvrtc()[1]


def _check(nvrtc, result, what: str) -> None:
    if result != nvrtc.nvrtcResult.NVRTC_SUCCESS:
        raise CompileError(f"{what}: {result}")


def compile_source(source: str, arch: str) -> Compiled:
    """Compile every instance of ``source`` to cubin for ``arch`` (``"sm_80"``, ``"sm_90"``), with
    the loader's options and the ones CuPy adds."""
    nvrtc, _ = _nvrtc()
    text = instances.source_text(source).encode()
    err, prog = nvrtc.nvrtcCreateProgram(text, source.encode(), 0, [], [])
    _check(nvrtc, err, f"{source}: create")
    try:
        names = instances.INSTANCES[source]
        for inst in names:
            (err,) = nvrtc.nvrtcAddNameExpression(prog, inst.encode())
            _check(nvrtc, err, f"{source}: name {inst}")
        # -v: ptxas logs each kernel's registers, stack, spills and shared memory (see resources)
        opts = [o.encode() for o in OPTIONS + CUPY_ADDS + VERBOSE] + [f"--gpu-architecture={arch}".encode()]
        (result,) = nvrtc.nvrtcCompileProgram(prog, len(opts), opts)
        err, size = nvrtc.nvrtcGetProgramLogSize(prog)
        log = b" " * size
        nvrtc.nvrtcGetProgramLog(prog, log)
        log_text = log.decode(errors="replace").rstrip("\x00 \n")
        if result != nvrtc.nvrtcResult.NVRTC_SUCCESS:
            raise CompileError(f"{source} for {arch}:\n{log_text}")
        err, cubin_size = nvrtc.nvrtcGetCUBINSize(prog)
        _check(nvrtc, err, f"{source}: cubin size")
        err, ptx_size = nvrtc.nvrtcGetPTXSize(prog)
        _check(nvrtc, err, f"{source}: PTX size")
        ptx = b" " * ptx_size
        (err,) = nvrtc.nvrtcGetPTX(prog, ptx)
        _check(nvrtc, err, f"{source}: PTX")
        lowered = {}
        for inst in names:
            err, low = nvrtc.nvrtcGetLoweredName(prog, inst.encode())
            _check(nvrtc, err, f"{source}: lowered name of {inst}")
            lowered[inst] = low.decode()
        return Compiled(source, arch, int(cubin_size), lowered, log_text, ptx.decode().rstrip("\x00"))
    finally:
        nvrtc.nvrtcDestroyProgram(prog)


def _cache_file(source: str, arch: str, ver: str) -> Path:
    root = os.environ.get("ARRAYSPARSE_CUDA_EMULATION_DIR") or os.path.join(
        tempfile.gettempdir(), f"arraysparse-cuda-emulation-{os.getuid() if hasattr(os, 'getuid') else 0}"
    )
    path = Path(root) / "nvrtc"
    path.mkdir(parents=True, exist_ok=True)
    options = hashlib.sha256("\0".join(OPTIONS + CUPY_ADDS + VERBOSE).encode()).hexdigest()[:12]
    return path / f"{Path(source).stem}-{arch}-{ver}-{instances.source_hash(source)}-{options}.json"


def compile_cached(source: str, arch: str) -> Compiled:
    """:func:`compile_source`, remembered on disk for an unchanged source and options (the cubin
    itself is not kept: the suite needs to know that it compiles, what it weighs and its PTX)."""
    ver = version()
    path = _cache_file(source, arch, ver)
    if path.exists():
        try:
            data = json.loads(path.read_text())
            return Compiled(source, arch, data["cubin_bytes"], data["lowered"], data["log"], data["ptx"])
        except (OSError, ValueError, KeyError):
            pass
    done = compile_source(source, arch)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    record = {"cubin_bytes": done.cubin_bytes, "lowered": done.lowered, "log": done.log, "ptx": done.ptx}
    tmp.write_text(json.dumps(record))
    os.replace(tmp, path)
    return done
