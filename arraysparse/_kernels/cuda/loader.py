"""The GPU device of the launch plans: kernels compiled by ``cupy.RawModule``, launched on the caller's stream.

Each kernel instance is compiled on first use, from the source text of
:func:`.instances.source_text` with the options of :data:`.nvrtc.OPTIONS`
(CuPy adds :data:`.nvrtc.CUPY_ADDS`; the test suite compiles with both), by ``cupy.RawModule(code=...,
name_expressions=[instance])`` on the device it will run on. The function is
memoised per (source, instance, device) under a lock, so threads share one
compile; CuPy keeps the binary in its own disk cache across processes.

:func:`session` makes the caller's device and stream current for a job: a
torch tensor's work goes on torch's current stream of its device (a CuPy stream
over torch's, :func:`_external_stream`), a CuPy array's on CuPy's current stream, so a
job orders with the caller's other work without a device-wide sync. Only
:meth:`CupyDevice.host` waits: it reads a count or a flag back.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..._compat import optional_import
from . import instances
from .nvrtc import OPTIONS

_functions: dict[tuple[str, str, int], Any] = {}
_locks: dict[tuple[str, str, int], threading.Lock] = {}
_locks_lock = threading.Lock()


def function(source: str, instance: str, device_id: int) -> Any:
    """The ``cupy.RawKernel`` of ``instance`` on device ``device_id``, compiled on first use.

    One lock per kernel: threads asking for the same one share its compile, threads asking for
    different ones compile side by side (NVRTC releases the GIL)."""
    key = (source, instance, device_id)
    fn = _functions.get(key)
    if fn is not None:
        return fn
    with _locks_lock:
        lock = _locks.setdefault(key, threading.Lock())
    with lock:
        fn = _functions.get(key)
        if fn is None:
            instances.check_instance(source, instance)
            cupy = optional_import("cupy", purpose="the CUDA kernels")

            with cupy.cuda.Device(device_id):
                module = cupy.RawModule(
                    code=instances.source_text(source), options=OPTIONS, name_expressions=[instance]
                )
                fn = module.get_function(instance)
            _functions[key] = fn
    return fn


def warm(device_id: int = 0, threads: int = 1) -> int:
    """Compile every listed kernel instance for device ``device_id`` now, in ``threads``
    threads; the number of instances.

    A first call on a new machine otherwise compiles the instances it needs one by one (NVRTC,
    a fraction of a second each). CuPy keeps each binary in its disk cache
    (``~/.cupy/kernel_cache``), so later processes load them instead of compiling.
    """
    todo = [(s, i) for s, names in instances.INSTANCES.items() for i in names]
    if threads > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(threads, thread_name_prefix="arraysparse-nvrtc") as pool:
            list(pool.map(lambda job: function(*job, device_id), todo))
    else:
        for source, inst in todo:
            function(source, inst, device_id)
    return len(todo)


def compiled() -> list[tuple[str, str, int]]:
    """``(source, instance, device)`` of every kernel this process compiled (or loaded) so far."""
    return sorted(_functions)


class CupyDevice:
    """A launch device on one GPU: ``xp`` is CuPy; launches go on the current stream."""

    def __init__(self, device_id: int):
        cupy = optional_import("cupy", purpose="the CUDA kernels")

        self.xp = cupy
        self.device_id = device_id

    def launch(self, source: str, instance: str, grid: int | tuple, block: int | tuple, args: tuple) -> None:
        g = (grid,) if isinstance(grid, int) else tuple(grid)
        b = (block,) if isinstance(block, int) else tuple(block)
        if 0 in g:
            return
        function(source, instance, self.device_id)(g, b, args)

    def host(self, a: Any) -> Any:
        """A small device array on the host (waits for the current stream)."""
        return self.xp.asnumpy(a, stream=self.xp.cuda.get_current_stream())

    def upload(self, a: Any) -> Any:
        return self.xp.asarray(a)


def _torch_stream(t: Any) -> tuple[int, int]:
    torch = optional_import("torch", purpose="the CUDA kernels on torch tensors")

    index = t.device.index if t.device.index is not None else torch.cuda.current_device()
    return index, torch.cuda.current_stream(index).cuda_stream


class _StreamHandle:
    """A raw ``cudaStream_t`` under the CUDA stream protocol."""

    def __init__(self, ptr: int):
        self.ptr = ptr

    def __cuda_stream__(self) -> tuple[int, int]:
        return 0, self.ptr


def _external_stream(cupy: Any, ptr: int, device_id: int) -> Any:
    """torch's stream ``ptr`` as a CuPy stream that CuPy never destroys.

    CuPy 14 deprecates ``ExternalStream`` (a DeprecationWarning on every job) for
    ``Stream.from_external``, which reads the pointer through ``__cuda_stream__`` and
    leaves the device unset: entered inside ``Device(device_id)``, it is that device's.
    CuPy 13 has only ``ExternalStream``.
    """
    from_external = getattr(cupy.cuda.Stream, "from_external", None)
    if from_external is None:
        return cupy.cuda.ExternalStream(ptr, device_id)
    return from_external(_StreamHandle(ptr))


@contextmanager
def session(x: Any) -> Iterator[CupyDevice]:
    """The device of ``x`` (a CuPy array or a CUDA torch tensor) with its stream current."""
    cupy = optional_import("cupy", purpose="the CUDA kernels")

    if type(x).__module__.split(".")[0] == "torch":
        index, stream = _torch_stream(x)
        with cupy.cuda.Device(index), _external_stream(cupy, stream, index):
            yield CupyDevice(index)
    else:
        index = x.device.id
        with cupy.cuda.Device(index):
            yield CupyDevice(index)
