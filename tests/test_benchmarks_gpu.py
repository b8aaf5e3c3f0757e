"""``benchmarks/run.py --gpu``: without a GPU it imports, says why, and exits 2 without timing anything."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _has_gpu() -> bool:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import gpu

        return gpu.unavailable() is None
    finally:
        sys.path.pop(0)


@pytest.mark.skipif(_has_gpu(), reason="a GPU is here: run.py --gpu would benchmark for minutes")
def test_gpu_benchmarks_refuse_cleanly_without_a_gpu():
    pytest.importorskip("torch")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--gpu", "--quick"],
        capture_output=True, text=True, env=env, cwd=ROOT, check=False, timeout=300,
    )
    assert done.returncode == 2, done.stderr
    assert "run.py --gpu needs a CUDA GPU with torch and CuPy" in done.stderr
    assert done.stdout == ""


def test_gpu_benchmark_cases_cover_the_issue_targets():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import gpu
    finally:
        sys.path.pop(0)
    names = {c.__name__ for c in gpu.CASES}
    assert names == {"case_nm_2_4", "case_topk_50", "case_csr_50", "case_bsr", "case_cutlass"}
    assert gpu.GPU_SHAPES == [(4096, 4096), (16384, 16384)]


@pytest.mark.skipif(_has_gpu(), reason="a GPU is here: the check would run for minutes")
def test_the_gpu_check_script_never_passes_without_a_gpu(tmp_path):
    # the one command a session with a lent GPU runs: here it must fail, naming why
    # (a missing package: exit 3; CuPy present but no device: the GPU tests skipped, exit != 0)
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable, "TEST_S": "120", "BENCH_S": "60"}
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh")], capture_output=True, text=True,
                          env=env, cwd=ROOT, check=False, timeout=400)
    assert done.returncode != 0
    if done.returncode == 3:
        assert "missing on this machine: " in done.stderr and "cupy" in done.stderr
    else:
        assert "the GPU tests were skipped" in done.stderr
        assert (tmp_path / "env.txt").exists() and (tmp_path / "cuda.log").exists()
