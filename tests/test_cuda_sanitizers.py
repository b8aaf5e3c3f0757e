"""The CUDA kernels under AddressSanitizer (with UndefinedBehaviorSanitizer) and ThreadSanitizer.

The host emulation builds the kernel sources instrumented when
``ARRAYSPARSE_CUDA_EMULATION_SANITIZE`` says so (:mod:`arraysparse._kernels.cuda.emulate`);
the sanitizer's runtime must be preloaded into the interpreter, so every run here is a
subprocess with :func:`~arraysparse._kernels.cuda.emulate.sanitizer_env`'s environment:

* a representative subset of the emulation tests (every ``.cu`` source and kernel, the
  register and block N:M kernels, several blocks and grid-stride passes, the CuPy loader's
  and the CUDA backend's launch paths, a stalled barrier) must pass with no report;
* small kernels with a planted bug (one read past an array handed in as a view of a larger
  buffer, one past a shared array, a signed overflow; shared memory read before the barrier
  that orders its write, a lane's write ordered by a shuffle alone, two blocks writing one
  word) must each be reported, naming the planted line: the check cannot go blind silently.

Every process starts at once (two cores: the modes overlap) and each test waits for its own.
A mode whose compiler or runtime is missing skips with what is missing.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from arraysparse._kernels.cuda import emulate

ROOT = Path(__file__).resolve().parents[1]
MODES = tuple(emulate.SANITIZERS)
TIMEOUT_S = 1500  # a cold cache builds every source instrumented first (minutes on two cores)

#: Every source and kernel, both N:M kernels, every launch path (see the module docstring).
SUBSET = [
    "tests/test_kernels_cuda.py::test_nm_keep_equals_cpu[emulated-shape0--1-2-4-float32]",
    "tests/test_kernels_cuda.py::test_nm_keep_equals_cpu[emulated-shape4-1-70-100-float32]",
    "tests/test_kernels_cuda.py::test_nm_keep_counts_nan[emulated-64]",
    "tests/test_kernels_cuda.py::test_nan_count[emulated-float16]",
    "tests/test_kernels_cuda.py::test_topk_keep_equals_cpu[emulated-5000-float32-2500]",
    "tests/test_kernels_cuda.py::test_csr_coo_equal_cpu[emulated-int32-shape0-float32-0.3]",
    "tests/test_kernels_cuda.py::test_csc_equals_cpu[emulated-shape0-float32-0.3]",
    "tests/test_kernels_cuda.py::test_bsr_equals_cpu[emulated-shape1-block1-float16-0.3]",
    "tests/test_kernels_cuda.py::test_bitmask_equals_cpu[emulated-shape0-float32-0.3]",
    "tests/test_kernels_cuda.py::test_nm_pack_equals_cpu[emulated-6-8]",
    "tests/test_kernels_cuda.py::test_nm_pack_equals_cpu[emulated-100-200]",
    "tests/test_kernels_cuda.py::test_nm_pack_finds_the_first_violation_and_corrupt_group[emulated-6-8]",
    "tests/test_kernels_cuda.py::test_cutlass_equals_cpu[emulated-half-float16-shape0]",
    "tests/test_kernels_cuda.py::test_cutlass_finds_the_first_bad_group_and_code[emulated-byte-int8-shape1]",
    "tests/test_kernels_cuda.py::test_norms_of_subnormals_inf_and_signed_zeros_match_cpu[emulated-float32-2.0]",
    "tests/test_kernels_cuda.py::test_the_emulation_runs_blocks_warps_and_atomics_as_cuda_does",
    "tests/test_kernels_cuda.py::test_the_emulation_reports_a_barrier_not_every_thread_reaches",
    "tests/test_kernels_cuda.py::test_grid_stride_loops_with_tiny_grids_equal_cpu[emulated]",
    "tests/test_cuda_loader.py::test_the_loader_compiles_each_instance_once_per_device",
    "tests/test_cuda_backend.py::test_global_threshold_through_the_cuda_backend[none-integers]",
]

#: What a sanitizer's report starts with.
REPORTS = ("ERROR: AddressSanitizer", "runtime error:", "WARNING: ThreadSanitizer", "ERROR: ThreadSanitizer")

# Kernels with one bug each; `// BAD` marks the line a report must name.
PLANTS = r"""
namespace plant {
__global__ void past_end(const int* x, int* out) {
  const unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
  out[i] = x[i + 1];  // BAD past_end
}
__device__ int peek(const int* tile, unsigned i) {
  return tile[i];  // BAD shared_past_end
}
__global__ void shared_past_end(int* out) {
  __shared__ int tile[64];
  tile[threadIdx.x] = int(threadIdx.x);
  __syncthreads();
  out[threadIdx.x] = peek(tile, threadIdx.x + 1);
}
__global__ void overflow(const int* x, int* out) {
  out[threadIdx.x] = x[threadIdx.x] + 2147483647;  // BAD overflow
}
__global__ void early_read(const int* x, int* out) {
  __shared__ int tile[64];
  tile[threadIdx.x] = x[threadIdx.x];
  const int right = tile[(threadIdx.x + 1) % 64];  // BAD early_read
  __syncthreads();
  out[threadIdx.x] = right;
}
__global__ void no_syncwarp(int* out) {
  __shared__ int word;
  if (threadIdx.x == 0) word = 7;
  __syncthreads();
  const int seen = word;  // BAD no_syncwarp
  const int sum = __shfl_xor_sync(0xffffffffu, seen, 1);
  if (threadIdx.x == 0) word = sum;
  out[threadIdx.x] = seen;
}
__global__ void same_word(int* out) {
  if (threadIdx.x == 0) out[0] = int(blockIdx.x);  // BAD same_word
}
}
"""

#: plant -> (mode, grid, block, arguments as Python source)
PLANTED = {
    "past_end": ("address", 1, 64, "(np.arange(100, dtype=np.int32)[:64], np.zeros(64, np.int32))"),
    "shared_past_end": ("address", 1, 64, "(np.zeros(64, np.int32),)"),
    "overflow": ("address", 1, 32, "(np.ones(32, np.int32), np.zeros(32, np.int32))"),
    "early_read": ("thread", 1, 64, "(np.arange(64, dtype=np.int32), np.zeros(64, np.int32))"),
    "no_syncwarp": ("thread", 1, 32, "(np.zeros(32, np.int32),)"),
    "same_word": ("thread", 3, 32, "(np.zeros(1, np.int32),)"),
}

_PLANT_SCRIPT = """
import sys
import numpy as np
from arraysparse._kernels.cuda.emulate import Emulator
dev = Emulator()
dev.add_source("plant.cu", {source!r}, {names!r})
for name, grid, block, args in {runs}:
    print("=== plant", name, file=sys.stderr, flush=True)
    dev.launch("plant.cu", "plant::" + name, grid, block, eval(args))
print("=== done", file=sys.stderr, flush=True)
"""


def _unavailable(mode: str) -> str | None:
    if not sys.platform.startswith("linux"):
        return "the sanitized emulation preloads its runtime with LD_PRELOAD (Linux)"
    if os.environ.get(emulate.SANITIZE_ENV):
        return f"already under {emulate.SANITIZE_ENV}={os.environ[emulate.SANITIZE_ENV]}"
    try:
        emulate.sanitizer_runtime(mode)
    except emulate.EmulationUnavailable as e:
        return f"the {mode} sanitizer is unavailable: {e}"
    return None


def _env(mode: str, **extra: str) -> dict[str, str]:
    env = emulate.sanitizer_env(mode)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.update(extra)
    return env


def _plant_line(name: str) -> int:
    return next(i for i, ln in enumerate(PLANTS.split("\n"), 1) if ln.endswith(f"// BAD {name}"))


class _Run:
    """A subprocess started now, its output in a file; ``result()`` waits for it."""

    def __init__(self, cmd: list[str], env: dict[str, str], log: Path):
        self.log = log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)

    def result(self) -> tuple[int, str]:
        try:
            rc = self.proc.wait(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        return rc, self.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every sanitized process of this module, started together: ``runs[key]`` with key a
    mode (the subset) or a plant's name; None where the mode is unavailable."""
    tmp = tmp_path_factory.mktemp("sanitizers")
    started: dict[str, _Run | None] = {}
    for mode in MODES:
        if _unavailable(mode):
            started[mode] = None
            started.update({name: None for name, p in PLANTED.items() if p[0] == mode})
            continue
        cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--capture=sys", *SUBSET]
        started[mode] = _Run(cmd, _env(mode), tmp / f"subset-{mode}.log")
        plants = [(name, g, b, args) for name, (m, g, b, args) in PLANTED.items() if m == mode]
        # AddressSanitizer and UBSan stop at the first report: a process per plant; ThreadSanitizer
        # goes on (halt_on_error=0), so one process runs its plants in turn
        groups = [[p] for p in plants] if mode == "address" else [plants]
        for group in groups:
            script = _PLANT_SCRIPT.format(source=PLANTS, names=[f"plant::{n}" for n in PLANTED], runs=group)
            env = _env(mode)
            if mode == "thread":  # go on after a report, and report each plant (their memory may be reused)
                env["TSAN_OPTIONS"] = env["TSAN_OPTIONS"].replace("halt_on_error=1", "halt_on_error=0")
                env["TSAN_OPTIONS"] += ":suppress_equal_addresses=0"
            run = _Run([sys.executable, "-c", script], env, tmp / f"plant-{group[0][0]}.log")
            started.update({p[0]: run for p in group})
    yield started
    for run in {id(r): r for r in started.values() if r is not None}.values():
        if run.proc.poll() is None:
            run.proc.kill()
            run.proc.wait()


def _reports(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if any(r in ln for r in REPORTS)]


@pytest.mark.parametrize("mode", MODES)
def test_the_kernels_run_clean_under_the_sanitizer(runs, mode):
    reason = _unavailable(mode)
    if reason:
        pytest.skip(reason)
    rc, out = runs[mode].result()
    assert _reports(out) == [], out[-20000:]
    assert rc == 0, out[-20000:]
    assert re.search(rf"\b{len(SUBSET)} passed\b", out), out[-5000:]  # every test ran, none skipped


@pytest.mark.parametrize("plant", list(PLANTED))
def test_the_sanitizer_reports_a_planted_bug(runs, plant):
    mode = PLANTED[plant][0]
    reason = _unavailable(mode)
    if reason:
        pytest.skip(reason)
    rc, out = runs[plant].result()
    assert rc != 0, out[-20000:]
    section = out.split(f"=== plant {plant}\n", 1)[1].split("=== plant ", 1)[0]
    assert _reports(section), out[-20000:]
    assert f"plant.cu:{_plant_line(plant)}" in section, section[-20000:]  # the planted line, named


# -- the pieces, in this process ------------------------------------------------------------
def test_shared_declarations_become_exact_per_block_allocations_on_their_line():
    text = "__shared__ u32 hist[256];\n  __shared__ U s_prefix;  // c\n__shared__ __align__(16) float t[4][ 8 ];\n"
    assert emulate.rewrite_shared(text).split("\n") == [
        "auto& hist = ::emu::shared<u32[256], 0>();",
        "  auto& s_prefix = ::emu::shared<U, 1>();  // c",
        "auto& t = ::emu::shared<float[4][8], 2, 16>();",
        "",
    ]
    assert emulate.rewrite_shared("extern __shared__ char dyn[];") == "extern __shared__ char dyn[];"  # not ours


def test_located_text_names_the_real_lines():
    text = emulate.located_text("nm.cu")
    lines = text.split("\n")
    assert lines[0] == f'#line 1 "{emulate.instances.DIRECTORY / "nm.cu"}"'
    assert f'#line 1 "{emulate.instances.DIRECTORY / "common.cuh"}"' in lines
    # with the #line marks dropped, the text is what NVRTC compiles
    plain = [ln for ln in lines if not ln.startswith("#line ")]
    source = emulate.instances.source_text("nm.cu").split("\n")
    assert [ln for ln in plain if ln.strip() and not ln.startswith("// ----")] == [
        ln for ln in source if ln.strip() and not ln.startswith("// ----")
    ]


def test_the_mode_is_checked_and_needs_its_runtime_preloaded(monkeypatch):
    monkeypatch.setenv(emulate.SANITIZE_ENV, "memory")
    with pytest.raises(ValueError, match="expected one of address, thread"):
        emulate.sanitize_mode()
    monkeypatch.setenv(emulate.SANITIZE_ENV, "")
    assert emulate.sanitize_mode() is None
    for mode in MODES:
        reason = _unavailable(mode)
        if reason:
            continue
        monkeypatch.setenv(emulate.SANITIZE_ENV, mode)
        assert emulate.sanitize_mode() == mode
        with pytest.raises(emulate.EmulationUnavailable, match="runtime is not loaded.*LD_PRELOAD="):
            emulate.Emulator().launch("nm.cu", "asp::nm_keep_small<unsigned int, 4>", 1, 32, ())
        env = emulate.sanitizer_env(mode, {})
        assert env[emulate.SANITIZE_ENV] == mode
        assert env["LD_PRELOAD"].split()[0] == str(emulate.sanitizer_runtime(mode))
