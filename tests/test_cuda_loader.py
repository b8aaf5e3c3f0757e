"""The CuPy loader, without CuPy: a stand-in ``cupy`` module whose RawModule runs the emulation.

The loader's own logic (one compile per instance and device, under a lock,
only listed instances, the options the suite compiles with, the device made
current while compiling, read-backs on the current stream) runs for real; only
NVRTC and the GPU are replaced. On a GPU, ``pytest -m cuda`` runs the real CuPy.
"""

from __future__ import annotations

import sys
import threading
import types
from contextlib import contextmanager

import numpy as np
import pytest

from arraysparse._kernels.cuda import instances, loader, nvrtc, plans
from tests.cuda_emulation import emulator, keys_of


class _FakeCupy(types.ModuleType):
    """NumPy's array functions, a RawModule that launches on the emulation, and a cuda namespace."""

    def __init__(self, dev):
        super().__init__("cupy")
        self.modules = []  # (code, options, name_expressions, current device) of every RawModule
        self.current_device = None
        self.current_stream = "null stream"
        outer = self

        class RawModule:
            def __init__(self, *, code, options, name_expressions):
                source = next(s for s in instances.INSTANCES if instances.source_text(s) == code)
                outer.modules.append((source, options, tuple(name_expressions), outer.current_device))
                self.source = source

            def get_function(self, name):
                return lambda grid, block, args: dev.launch(self.source, name, grid, block, args)

        @contextmanager
        def device(index):
            before, outer.current_device = outer.current_device, index
            try:
                yield
            finally:
                outer.current_device = before

        self.RawModule = RawModule
        self.cuda = types.SimpleNamespace(Device=device, get_current_stream=lambda: outer.current_stream)

    def __getattr__(self, name):
        return getattr(np, name)

    def asnumpy(self, a, stream=None):
        assert stream == self.current_stream  # read back on the job's stream
        return np.asarray(a)


@pytest.fixture
def fake_cupy(monkeypatch):
    dev = emulator()
    cupy = _FakeCupy(dev)
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    monkeypatch.setattr(loader, "_functions", {})
    return cupy


def test_the_loader_compiles_each_instance_once_per_device(fake_cupy):
    x = np.random.default_rng(0).standard_normal((64, 32)).astype(np.float32)
    bits, keys = keys_of(x, True)
    for device_id in (0, 0, 1):
        keep, nans = plans.nm_keep(loader.CupyDevice(device_id), bits, (1, 64 * 32, 1), 2, 4, keys)
        assert nans == 0 and keep.sum() == x.size // 2
    small = instances.name("nm_keep_small", "unsigned int", 4)
    assert [(m[0], m[2], m[3]) for m in fake_cupy.modules] == [("nm.cu", (small,), 0), ("nm.cu", (small,), 1)]
    assert all(m[1] == nvrtc.OPTIONS for m in fake_cupy.modules)  # what the suite compiles with
    assert loader.compiled() == [("nm.cu", small, 0), ("nm.cu", small, 1)]


def test_threads_share_one_compile(fake_cupy):
    barrier = threading.Barrier(4)
    got = []

    def fetch():
        barrier.wait()
        got.append(loader.function("select.cu", "asp::radix_pick", 3))

    threads = [threading.Thread(target=fetch) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(fake_cupy.modules) == 1
    assert all(g is got[0] for g in got)


def test_an_unlisted_instance_is_never_compiled(fake_cupy):
    with pytest.raises(KeyError, match="not listed"):
        loader.function("nm.cu", "asp::nm_keep_small<float, 4>", 0)
    assert fake_cupy.modules == []


def test_a_cupy_session_uses_the_array_s_device(fake_cupy):
    arr = types.SimpleNamespace(device=types.SimpleNamespace(id=2))
    with loader.session(arr) as dev:
        assert dev.device_id == 2
        assert fake_cupy.current_device == 2
        assert dev.xp is fake_cupy
    assert fake_cupy.current_device is None


@pytest.mark.parametrize("threads", [1, 4])
def test_warm_compiles_every_listed_instance_once(fake_cupy, threads):
    total = sum(len(v) for v in instances.INSTANCES.values())
    assert loader.warm(0, threads=threads) == total
    assert len(fake_cupy.modules) == total
    assert {(m[0], m[2][0]) for m in fake_cupy.modules} == {(s, i) for s, v in instances.INSTANCES.items() for i in v}
    loader.warm(0, threads=threads)  # memoised: nothing compiles twice
    assert len(fake_cupy.modules) == total


class _TorchLike:
    """What the session takes for a CUDA torch tensor (its type's module is torch's)."""


_TorchLike.__module__ = "torch"


@pytest.mark.parametrize("cupy_version", [13, 14])
def test_a_torch_session_runs_on_torch_s_stream_without_deprecated_calls(fake_cupy, monkeypatch, cupy_version):
    # CuPy 14 deprecates ExternalStream (a warning every job) for Stream.from_external;
    # CuPy 13 has only ExternalStream. Either way the job's stream is torch's, on its device.
    monkeypatch.setattr(loader, "_torch_stream", lambda t: (1, 0xBEEF))
    made = []

    @contextmanager
    def entered(kind, ptr, device_id):
        made.append((kind, ptr, device_id))
        before, fake_cupy.current_stream = fake_cupy.current_stream, ptr
        try:
            yield
        finally:
            fake_cupy.current_stream = before

    class Stream:
        if cupy_version >= 14:

            @staticmethod
            def from_external(obj):
                version, ptr = obj.__cuda_stream__()
                assert version == 0
                return entered("from_external", ptr, fake_cupy.current_device)

    def external_stream(ptr, device_id):
        if cupy_version >= 14:
            pytest.fail("ExternalStream is deprecated in CuPy 14")
        return entered("ExternalStream", ptr, device_id)

    monkeypatch.setattr(fake_cupy.cuda, "Stream", Stream, raising=False)
    monkeypatch.setattr(fake_cupy.cuda, "ExternalStream", external_stream, raising=False)
    x = np.arange(8, dtype=np.float32)
    with loader.session(_TorchLike()) as dev:
        assert dev.device_id == 1 and fake_cupy.current_device == 1
        assert fake_cupy.current_stream == 0xBEEF
        assert plans.nan_count(dev, *keys_of(x, False)) == 0  # read back on torch's stream
    kind = "from_external" if cupy_version >= 14 else "ExternalStream"
    assert made == [(kind, 0xBEEF, 1)]
    assert fake_cupy.current_stream == "null stream" and fake_cupy.current_device is None


def test_the_real_cupy_takes_torch_s_stream_without_a_warning_or_a_device(monkeypatch):
    cupy = pytest.importorskip("cupy")
    import gc
    import warnings

    raised_in_del = []
    monkeypatch.setattr(sys, "unraisablehook", raised_in_del.append)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # CuPy 14's ExternalStream: DeprecationWarning
        s = loader._external_stream(cupy, 0xBEEF, 0)
    assert s.ptr == 0xBEEF and s.__cuda_stream__() == (0, 0xBEEF)
    del s
    gc.collect()
    assert raised_in_del == []  # CuPy never destroys torch's stream (that needs a driver, absent or not)


def test_different_kernels_compile_side_by_side(fake_cupy, monkeypatch):
    # one lock per kernel: two threads compiling two kernels meet inside their compiles (a
    # single lock for all would keep the second out until the first is done: the barrier breaks)
    inside = threading.Barrier(2, timeout=10)
    real = fake_cupy.RawModule

    class Meeting(real):
        def __init__(self, **kw):
            inside.wait()
            super().__init__(**kw)

    monkeypatch.setattr(fake_cupy, "RawModule", Meeting)
    a, b = instances.INSTANCES["select.cu"][:2]
    threads = [threading.Thread(target=loader.function, args=("select.cu", i, 0)) for i in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not inside.broken
    assert len(fake_cupy.modules) == 2


def test_precompile_cuda_compiles_every_kernel_for_that_gpu(fake_cupy):
    import io

    import arraysparse as asp

    buf = io.StringIO()
    asp.precompile([], cuda=1, progress=buf)
    total = sum(len(v) for v in instances.INSTANCES.values())
    assert len(fake_cupy.modules) == total and {m[3] for m in fake_cupy.modules} == {1}
    assert f"precompile: {total} CUDA kernels for GPU 1" in buf.getvalue()


@pytest.mark.parametrize("cuda", [-1, True, 1.0, "cuda:0"])
def test_precompile_refuses_a_cuda_that_is_not_a_gpu_number(cuda):
    import arraysparse as asp

    with pytest.raises(ValueError, match=r"cuda must be a GPU number \(an int >= 0\) or None, got"):
        asp.precompile([], cuda=cuda, progress=False)
