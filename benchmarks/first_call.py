"""First-call times of the public functions in a fresh process: cold cache and warm cache.

Usage::

    python benchmarks/first_call.py [--output PATH]

For every job a new Python process runs the call twice and reports both
times: the first call (import of the kernels, loading or compiling them, the
work) and the second (the work alone). Each job runs in two processes over one
new, empty cache directory: the first process finds the cache cold and
compiles; the second finds it warm. The target (issue 10): the warm process's
first call within 0.3 s of its second call. Then ``examples/quickstart.py``
is timed as a whole process, cold and warm (targets 20 s and 5 s).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SETUP = """
import numpy as np
rng = np.random.default_rng(0)
w = rng.standard_normal((1024, 1024), dtype=np.float32)
x = rng.standard_normal((2048, 1024), dtype=np.float32)
"""

JOBS = {
    "topk_mask 50%": "asp.topk_mask(w, 0.5, magnitude=True)",
    "nm_mask 2:4": "asp.nm_mask(w, 2, 4, magnitude=True)",
    "nm_mask 16:32": "asp.nm_mask(w, 16, 32, magnitude=True)",
    "compress csr": "asp.compress(w, 'csr')",
    "compress 2:4": "asp.compress(w24, '2:4')",
    "compress bsr": "asp.compress(w, 'bsr', block=(4, 4))",
    "to_cutlass (float16)": "asp.to_cutlass(w24h)",
    "StructuredPruning": "asp.StructuredPruning(asp.SparsityPattern.rows()).prune(w, 0.25)",
    "WandaPruning": "s = asp.WandaPruning(); s.calibrate(x); s.prune(w, 0.5)",
    "SparseGPTPruning": "s = asp.SparseGPTPruning(); s.calibrate(x); s.prune(w, 0.5)",
    "prune_model (global)": "asp.prune_model(model, 0.5)",
}

# inputs that some jobs need, made with NumPy alone so no kernel runs before the timed call
PREP = """
w24 = w.copy().reshape(-1, 4); w24[:, :2] = 0; w24 = w24.reshape(w.shape)
w24h = w24.astype(np.float16)
model = {f"layer{i}": rng.standard_normal((256, 256), dtype=np.float32) for i in range(8)}
"""

CHILD = """
import json, sys, time
t0 = time.perf_counter()
import arraysparse as asp
t_import = time.perf_counter() - t0
{setup}
{prep}
t = time.perf_counter(); {call}; first = time.perf_counter() - t
t = time.perf_counter(); {call}; second = time.perf_counter() - t
print(json.dumps({{"import": t_import, "first": first, "second": second}}))
"""


def _child(call: str, env: dict) -> dict:
    code = CHILD.format(setup=SETUP, prep=PREP, call=call)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _wall(cmd: list[str], env: dict) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, env=env, capture_output=True, check=True)
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, help="also write the table here")
    args = parser.parse_args()
    lines = [
        f"First calls, {datetime.date.today()}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}",
        "",
        "| job | cold: first call (s) | warm: first call (s) | second call (s) "
        "| warm first - second (s) | target ≤ 0.3 s |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    base = {**os.environ, "PYTHONPATH": str(ROOT)}
    for label, call in JOBS.items():
        with tempfile.TemporaryDirectory() as cache:
            env = {**base, "ARRAYSPARSE_CACHE_DIR": cache}
            cold = _child(call, env)
            warm = _child(call, env)
        gap = warm["first"] - warm["second"]
        verdict = "met" if gap <= 0.3 else "NOT met"
        lines.append(
            f"| {label} | {cold['first']:.2f} | {warm['first']:.3f} | {warm['second']:.3f} | {gap:.3f} | {verdict} |"
        )
        print(lines[-1], flush=True)
    with tempfile.TemporaryDirectory() as cache:
        env = {**base, "ARRAYSPARSE_CACHE_DIR": cache}
        quick = [sys.executable, str(ROOT / "examples" / "quickstart.py")]
        cold_s = _wall(quick, env)
        warm_s = _wall(quick, env)
    lines += [
        "",
        f"`python examples/quickstart.py` as a whole process: cold cache {cold_s:.1f} s (target ≤ 20 s), "
        f"warm cache {warm_s:.1f} s (target ≤ 5 s).",
    ]
    print("\n".join(lines))
    if args.output:
        args.output.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
