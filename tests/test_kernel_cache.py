"""The host kernels' on-disk cache: a second process compiles nothing, whatever the package
directory's permissions; compiles are logged; threads never compile a kernel twice."""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import arraysparse as asp

ROOT = Path(__file__).resolve().parent.parent

# One small job per kernel family that a subprocess runs, then reports what it compiled
# (Numba's compile events, through the package's compile log) and what it loaded.
_JOB = """
import json, logging, sys, threading
import numpy as np
import arraysparse as asp
from arraysparse._kernels.cpu import _jit, nm

records = []
class Keep(logging.Handler):
    def emit(self, record):
        records.append(record.getMessage())
log = logging.getLogger("arraysparse.kernels")
log.addHandler(Keep())
log.setLevel(logging.INFO)

w = np.arange(64, dtype=np.float32).reshape(8, 8)[:, ::-1].copy()
mode = sys.argv[1]
if mode == "threads":
    barrier = threading.Barrier(2)
    def run():
        barrier.wait()
        asp.nm_mask(w, 2, 4)
    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads: t.start()
    for t in threads: t.join()
else:
    mask = asp.nm_mask(w, 2, 4)
    assert mask.satisfies()
    ro = w.copy(); ro.flags.writeable = False
    asp.nm_mask(ro, 2, 4)  # read-only input: the same compiled signature
hits = sum(nm._rank_rows.stats.cache_hits.values())
print(json.dumps({
    "compiled": [name for name, _, _ in _jit.compile_log.compiled],
    "hits": hits,
    "signatures": len(nm._rank_rows.signatures),
    "log": records,
    "cache": str(_jit.cache_dir()),
}))
"""


def _run(env: dict, *args: str, path: Path = ROOT) -> dict:
    full = {**os.environ, **env, "PYTHONPATH": str(path)}
    out = subprocess.run(
        [sys.executable, "-c", _JOB, *args], env=full, capture_output=True, text=True, timeout=600, check=False
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_second_process_compiles_nothing(tmp_path: Path) -> None:
    env = {"ARRAYSPARSE_CACHE_DIR": str(tmp_path / "cache")}
    first = _run(env, "once")
    assert "nm._rank_rows" in first["compiled"]
    assert first["signatures"] == 1  # read-only and writable inputs share one signature
    assert any("compiled nm._rank_rows" in line and " s " in line for line in first["log"])
    assert first["cache"].startswith(str(tmp_path / "cache"))
    second = _run(env, "once")
    assert second["compiled"] == []
    assert second["hits"] == 1
    assert second["log"] == []


def test_read_only_package_directory(tmp_path: Path) -> None:
    """Installed read-only (a system site-packages): the cache goes to the user's cache dir."""
    package = tmp_path / "site" / "arraysparse"
    shutil.copytree(ROOT / "arraysparse", package, ignore=shutil.ignore_patterns("__pycache__"))
    for p in [package, *package.rglob("*")]:
        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        env = {"XDG_CACHE_HOME": str(tmp_path / "xdg"), "ARRAYSPARSE_CACHE_DIR": "", "NUMBA_CACHE_DIR": ""}
        first = _run(env, "once", path=tmp_path / "site")
        assert first["compiled"] and first["cache"].startswith(str(tmp_path / "xdg" / "arraysparse"))
        assert _run(env, "once", path=tmp_path / "site")["compiled"] == []
        assert not list(package.rglob("*.nbi"))  # nothing written beside the sources
    finally:
        for p in [package, *package.rglob("*")]:
            p.chmod(p.stat().st_mode | stat.S_IWUSR)


def test_threads_compile_a_kernel_once(tmp_path: Path) -> None:
    got = _run({"ARRAYSPARSE_CACHE_DIR": str(tmp_path / "cache")}, "threads")
    assert got["compiled"].count("nm._rank_rows") == 1
    assert got["signatures"] == 1


def test_cache_dir_follows_the_sources() -> None:
    from arraysparse._kernels.cpu import _jit

    assert _jit.cache_dir().name == f"kernels-{_jit.sources_stamp()}"
    assert len(_jit.sources_stamp()) == 16


def test_static_values_are_types() -> None:
    from numba import typeof

    from arraysparse._kernels.cpu._jit import Static, static_value

    assert typeof(Static(4)) == typeof(Static(4))
    assert typeof(Static(4)) != typeof(Static(8))
    assert static_value(Static((0, True))) == (0, True)
    with pytest.raises(TypeError, match="Static"):
        static_value(4)


def test_writable_view_shares_memory() -> None:
    from arraysparse._kernels.cpu._jit import writable

    a = np.arange(6.0)
    a.flags.writeable = False
    v = writable(a)
    assert v.flags.writeable and np.shares_memory(v, a) and np.array_equal(v, a)
    b = np.arange(3)
    assert writable(b) is b


def test_precompile_reports_progress() -> None:
    buf = io.StringIO()
    seconds = asp.precompile(["float32"], progress=buf)
    assert seconds >= 0
    text = buf.getvalue()
    assert "precompile [1/" in text and "jobs" in text and "kernels compiled" in text


def test_precompile_rejects_unknown_dtype() -> None:
    with pytest.raises(ValueError, match="dtypes holds 'float8'"):
        asp.precompile(["float8"], progress=False)


@pytest.mark.parametrize("progress", [1, "yes", object()])
def test_precompile_rejects_unknown_progress(progress) -> None:
    with pytest.raises(TypeError, match="progress must be True, False or a writable text file"):
        asp.precompile(["float32"], progress=progress)
