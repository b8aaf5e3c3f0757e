#!/usr/bin/env bash
# The GPU check (issue 11) in one run on a lent GPU machine, which has no network:
#   1. the machine, the driver and the library versions          -> $OUT/env.txt
#   2. every kernel instance compiled (threads, into CuPy's cache)   -> $OUT/warm.log
#      pytest -m cuda over the CUDA test files                     -> $OUT/cuda.log, cuda.xml
#   3. python benchmarks/run.py --gpu (4096^2 and 16384^2)         -> $OUT/gpu.md, bench.log
# Wheels the machine lacks travel in .whl/ (docs/cuda.md, "Running the GPU check"); they are
# installed to /tmp/site first. Each step has its own time limit (TEST_S, BENCH_S seconds), so
# one hang cannot cost the other step; the exit status is non-zero if either failed.
#
#   bash benchmarks/gpu_check.sh            # OUT defaults to ./gpu-check
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-gpu-check}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1
python=${PYTHON:-python3}

if compgen -G ".whl/*.whl" >/dev/null; then
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "gpu_check: the carried wheels in .whl/ did not install" >&2; exit 3; }
  export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # this checkout, not an installed copy

missing=$("$python" - <<'EOF'
import importlib.util
need = ["numpy", "numba", "array_api_compat", "cupy", "torch", "pytest", "hypothesis", "safetensors"]
print(" ".join(n for n in need if importlib.util.find_spec(n) is None))
EOF
)
if [ -n "$missing" ]; then
  echo "gpu_check: missing on this machine: $missing (carry them as wheels: docs/cuda.md)" >&2
  exit 3
fi

{
  date -Is
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1
  "$python" - <<'EOF'
import platform, numpy, numba, cupy, torch, array_api_compat
import arraysparse
print("python", platform.python_version(), "| numpy", numpy.__version__, "| numba", numba.__version__,
      "| array-api-compat", array_api_compat.__version__)
print("torch", torch.__version__, "CUDA", torch.version.cuda, "| cupy", cupy.__version__,
      "CUDA runtime", cupy.cuda.runtime.runtimeGetVersion(), "| device", torch.cuda.get_device_name(0))
print("arraysparse from", arraysparse.__file__)
EOF
} >"$out/env.txt" 2>&1
cat "$out/env.txt"

# the kernels compiled up front, in parallel threads, into CuPy's disk cache (a failure here is not
# fatal: the tests then compile what they use); the first instance alone times a first call
timeout "${WARM_S:-180}" "$python" - <<'EOF' 2>&1 | tee "$out/warm.log"
import os, time
from arraysparse._kernels.cuda import instances, loader
t = time.perf_counter()
loader.function("nm.cu", instances.name("nm_keep_small", "unsigned int", 4), 0)
print(f"first kernel instance (2:4 mask, float32) compiled and loaded in {time.perf_counter() - t:.2f} s")
t = time.perf_counter()
n = loader.warm(0, threads=min(16, os.cpu_count() or 1))
print(f"all {n} kernel instances compiled in {time.perf_counter() - t:.1f} s")
EOF

# four pytest workers where pytest-xdist is there (the lent image has it): each compiles the CPU
# reference kernels it needs (about two minutes cold in one process on the 2-core dev machine)
workers=$("$python" -c "import importlib.util as u; print('-n 4' if u.find_spec('xdist') else '')")
# shellcheck disable=SC2086
timeout "${TEST_S:-300}" "$python" -m pytest -m cuda $workers -q -rfEs -p no:cacheprovider --junitxml="$out/cuda.xml" \
  tests/test_kernels_cuda.py tests/test_cuda_backend.py tests/test_io.py 2>&1 | tee "$out/cuda.log"
tests=${PIPESTATUS[0]}
if grep -q "no CUDA device" "$out/cuda.log"; then  # all skipped is not a pass here
  echo "gpu_check: the GPU tests were skipped: CuPy or torch cannot reach the GPU (see $out/env.txt)" >&2
  tests=4
fi

timeout "${BENCH_S:-240}" "$python" benchmarks/run.py --gpu --output "$out/gpu.md" 2>&1 | tee "$out/bench.log"
bench=${PIPESTATUS[0]}

echo "gpu_check: pytest -m cuda exit $tests, benchmarks exit $bench (124: over its time limit)"
[ "$tests" -eq 0 ] && [ "$bench" -eq 0 ]
