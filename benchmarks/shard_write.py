"""Writing 16 float32 arrays of 32 MiB: one .safetensors file against shards of 100MB.

    python benchmarks/shard_write.py [--runs 10] [--dir DIR]

Each write runs in a fresh process (``--one MODE KIND OUT``), the four kinds
(file / shards, a dict / a generator) interleaved run by run, so a busy disk
weighs on all of them alike. Reported: the best and the median seconds (fsync
included, as every write of ours does), and the peak of anonymous memory above
the process's size before the call, sampled every 0.5 ms (a generator's one
array is made during the call, a dict's before it).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

N, ITEMS = 16, 8 << 20  # 16 arrays of 8 Mi float32 = 32 MiB


def _anon() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("RssAnon:"))


def one(mode: str, kind: str, out: str) -> dict:
    import numpy as np

    from arraysparse.io import write_checkpoint

    if kind == "dict":
        arrays = {f"layer{i}.weight": np.full(ITEMS, i, np.float32) for i in range(N)}
        items = arrays
    else:
        buf = np.empty(ITEMS, np.float32)

        def gen():
            for i in range(N):
                buf.fill(i)
                yield f"layer{i}.weight", buf

        items = gen()
    state = {"peak": _anon(), "stop": False}
    base = state["peak"]

    def sample() -> None:
        while not state["stop"]:
            state["peak"] = max(state["peak"], _anon())
            time.sleep(0.0005)

    t = threading.Thread(target=sample)
    t.start()
    t0 = time.perf_counter()
    if mode == "file":
        write_checkpoint(out + ".safetensors", items)
    else:
        write_checkpoint(out, items, max_shard_size="100MB")
    seconds = time.perf_counter() - t0
    state["stop"] = True
    t.join()
    return {"mode": mode, "kind": kind, "seconds": seconds, "anon": max(state["peak"], _anon()) - base}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--dir", help="where to write (default: a temporary directory)")
    parser.add_argument("--one", nargs=3, metavar=("MODE", "KIND", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(*args.one)))
        return
    root = Path(args.dir or tempfile.mkdtemp())
    rows = []
    for _ in range(args.runs):
        for mode in ("file", "shards"):
            for kind in ("dict", "stream"):
                out = root / "out"
                r = subprocess.run([sys.executable, __file__, "--one", mode, kind, str(out)], check=True,
                                   capture_output=True, text=True)
                rows.append(json.loads(r.stdout))
                shutil.rmtree(out, ignore_errors=True)
                (root / "out.safetensors").unlink(missing_ok=True)
    print(f"{N} float32 arrays of {ITEMS * 4 >> 20} MiB, {args.runs} runs each")
    print(f"{'write':<24} {'best':>7} {'median':>7} {'peak anon':>10}")
    for mode in ("file", "shards"):
        for kind in ("dict", "stream"):
            mine = [r for r in rows if r["mode"] == mode and r["kind"] == kind]
            s = [r["seconds"] for r in mine]
            label = f"{'one file' if mode == 'file' else '100MB shards'}, {kind}"
            print(f"{label:<24} {min(s):6.2f}s {statistics.median(s):6.2f}s "
                  f"{max(r['anon'] for r in mine) / 2**20:8.1f} MiB")


if __name__ == "__main__":
    main()
