"""Helpers of the CUDA kernel tests: the launch devices, skips with reasons, bits of test data.

``plan_device`` runs a plan test twice: on the host emulation (``emulated``) and on the
GPU (``gpu``, marked ``cuda``, skipped without one). Tests hand NumPy inputs to a plan
through :func:`run`, which uploads them to the device and brings the device arrays of
the result back, so one test body checks both.

The emulated device is GPU-shaped (:class:`GpuShapedEmulator`): its memory is
:class:`DeviceArray`, a NumPy array that NumPy refuses to mix with host arrays the way
CuPy does, so a plan that only works because the emulation's ``xp`` is NumPy (a host
array launched or mixed with device arrays, a NumPy function called on device memory)
fails here too, not first on a GPU.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pytest

from arraysparse._kernels.cuda import plans
from arraysparse._kernels.cuda.emulate import EmulationUnavailable, Emulator, compiler


def _need_compiler() -> None:
    try:
        compiler()
    except EmulationUnavailable as e:
        pytest.skip(f"CUDA emulation unavailable: {e}")


def emulator() -> Emulator:
    """A fresh emulated device, or a skip naming what is missing (no C++20 compiler)."""
    _need_compiler()
    return Emulator()


@functools.cache
def gpu_reason() -> str | None:
    """Why CuPy cannot reach a CUDA device here (no CuPy, driver or device), or None."""
    try:
        import cupy

        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # noqa: BLE001 - no cupy, driver or device
        return f"no CUDA device for cupy ({type(e).__name__})"
    return None if count > 0 else "no CUDA device for cupy (0 devices)"


# -- device memory that behaves like CuPy's --------------------------------------------------
class DeviceArray(np.ndarray):
    """A GPU-shaped emulator's memory: a NumPy array that, like a CuPy array, refuses host
    arrays in its ufuncs and in assignments (CuPy: TypeError, no implicit upload), and
    NumPy functions called on it (a plan calls ``dev.xp``; CuPy would answer with its own
    function at best). Views, slices, reshapes and ``astype`` stay device arrays; so do
    reductions (0-d, as in CuPy)."""

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        out = kwargs.get("out", ())
        if any(_is_host_array(a) for a in (*inputs, *out)):
            msg = f"{ufunc.__name__} mixes a host array with device arrays (CuPy refuses the implicit upload)"
            raise TypeError(msg)
        if out:
            kwargs["out"] = tuple(_base(o) for o in out)
        return _device(getattr(ufunc, method)(*map(_base, inputs), **kwargs))

    def __setitem__(self, key, value):
        if _is_host_array(value) and value.ndim:
            msg = "a host array assigned into device memory (CuPy refuses it: upload it first)"
            raise TypeError(msg)
        super().__setitem__(key, value)

    def __array_function__(self, func, types, args, kwargs):
        msg = f"numpy.{func.__name__} called on a device array: plans call dev.xp (CuPy's namespace on a GPU)"
        raise TypeError(msg)


def _is_host_array(a: Any) -> bool:
    return isinstance(a, np.ndarray) and not isinstance(a, DeviceArray)


def _base(a: Any) -> Any:
    return a.view(np.ndarray) if isinstance(a, DeviceArray) else a


def _device(r: Any) -> Any:
    if isinstance(r, tuple):
        return tuple(_device(v) for v in r)
    if isinstance(r, (np.ndarray, np.generic)):
        return np.asarray(r).view(DeviceArray)
    return r


class _DeviceXp:
    """NumPy as a GPU-shaped device's ``xp``: what it returns is device memory, and host
    arrays given to it are refused as CuPy refuses them (``asarray`` and ``array`` upload)."""

    _UPLOADS = frozenset({"asarray", "array"})
    ndarray = DeviceArray

    def __getattr__(self, name: str) -> Any:
        attr = getattr(np, name)
        if isinstance(attr, type) or not callable(attr):
            return attr  # dtypes (xp.bool_, xp.uint8), constants

        def call(*args, **kwargs):
            values = (*args, *kwargs.values())
            if name not in self._UPLOADS and any(_is_host_array(a) for a in values):
                msg = f"xp.{name} given a host array: CuPy takes device arrays (upload it first)"
                raise TypeError(msg)
            got = attr(*map(_base, args), **{k: _base(v) for k, v in kwargs.items()})
            return _device(got)

        return call


class _HostNumpy:
    """``numpy`` as the plans see it on a GPU-shaped emulator: a NumPy function given device
    memory (``np.asarray``, ``np.array``, ``np.frombuffer``... of a device array) raises the
    TypeError CuPy's ``__array__`` raises; everything else is NumPy's."""

    def __getattr__(self, name: str) -> Any:
        attr = getattr(np, name)
        if isinstance(attr, type) or not callable(attr):
            return attr

        def call(*args, **kwargs):
            if any(_holds_device(a) for a in (*args, *kwargs.values())):
                msg = f"numpy.{name} given a device array: CuPy refuses implicit conversion to NumPy (dev.host it)"
                raise TypeError(msg)
            return attr(*args, **kwargs)

        return call


def _holds_device(a: Any) -> bool:
    if isinstance(a, (list, tuple)):
        return any(_holds_device(v) for v in a)
    return isinstance(a, DeviceArray)


class GpuShapedEmulator(Emulator):
    """The emulation with a GPU's boundaries: memory is :class:`DeviceArray`, made by ``xp``
    or :meth:`upload`; a launch takes no host array (CuPy passes a NumPy array of one item
    by value, silently, and refuses larger ones); :meth:`host` reads only device memory and
    returns a copy, as a transfer does."""

    xp = _DeviceXp()

    def launch(self, source: str, instance: str, grid: int | tuple, block: int | tuple, args: tuple) -> None:
        for i, a in enumerate(args):
            if _is_host_array(a):
                msg = f"{instance} argument {i} is a host array; a kernel reads device memory (dev.upload it)"
                raise TypeError(msg)
        super().launch(source, instance, grid, block, args)

    def host(self, a: Any) -> np.ndarray:
        if not isinstance(a, DeviceArray):
            msg = f"host() of a {type(a).__name__}, not device memory"
            raise TypeError(msg)
        return a.view(np.ndarray).copy()

    def upload(self, a: np.ndarray) -> DeviceArray:
        return np.array(a).view(DeviceArray)


def gpu_shaped_emulator(monkeypatch: pytest.MonkeyPatch) -> GpuShapedEmulator:
    """A fresh :class:`GpuShapedEmulator` (or a skip without a C++ compiler), the plans
    module seeing :class:`_HostNumpy` as ``np`` until the test ends."""
    _need_compiler()
    monkeypatch.setattr(plans, "np", _HostNumpy())
    return GpuShapedEmulator()


def gpu_device() -> Any:
    """CuPy's launch device on GPU 0, recording ``launches`` as the emulator does; or a skip."""
    reason = gpu_reason()
    if reason is not None:
        pytest.skip(reason)
    from arraysparse._kernels.cuda.loader import CupyDevice

    class RecordingCupyDevice(CupyDevice):
        def __init__(self, device_id: int):
            super().__init__(device_id)
            self.launches: list[tuple[str, tuple[int, int, int], tuple[int, int, int]]] = []

        def launch(self, source: str, instance: str, grid: int | tuple, block: int | tuple, args: tuple) -> None:
            self.launches.append((instance, _dims(grid), _dims(block)))  # as the Emulator records them
            super().launch(source, instance, grid, block, args)

    return RecordingCupyDevice(0)


def _dims(d: int | tuple) -> tuple[int, int, int]:
    t = (d,) if isinstance(d, (int, np.integer)) else tuple(d)
    return (*map(int, t), *(1,) * (3 - len(t)))  # type: ignore[return-value]


@pytest.fixture(params=["emulated", pytest.param("gpu", marks=pytest.mark.cuda)])
def plan_device(request, monkeypatch) -> Any:
    """The launch device of a plan test: the GPU-shaped emulation, or CuPy on GPU 0."""
    if request.param == "gpu":
        return gpu_device()
    return gpu_shaped_emulator(monkeypatch)


def run(plan: Any, dev: Any, *args: Any, **kwargs: Any) -> Any:
    """``plan(dev, *args, **kwargs)`` with every NumPy array among the arguments (in tuples,
    lists and dicts too) uploaded to ``dev``, and every device array of the result (in
    tuples, lists and dicts) brought back to the host. Other objects (``Keys``, ``Chunks``...)
    pass as they are, device arrays inside included. A host array in the result fails: a
    plan's results live on the device."""
    up = functools.partial(_to_device, dev)
    return _to_host(dev, plan(dev, *map(up, args), **{k: up(v) for k, v in kwargs.items()}))


def _to_device(dev: Any, a: Any) -> Any:
    if isinstance(a, (tuple, list)):
        return type(a)(_to_device(dev, v) for v in a)
    if isinstance(a, dict):
        return {k: _to_device(dev, v) for k, v in a.items()}
    return dev.upload(a) if _is_host_array(a) else a


def _to_host(dev: Any, r: Any) -> Any:
    if isinstance(r, (tuple, list)):
        return type(r)(_to_host(dev, v) for v in r)
    if isinstance(r, dict):
        return {k: _to_host(dev, v) for k, v in r.items()}
    if isinstance(r, dev.xp.ndarray):
        return dev.host(r)
    assert not isinstance(r, np.ndarray), "the plan returned a host array"
    return r


def bits_of(x) -> tuple[np.ndarray, str]:
    """A NumPy or CPU torch array as C-contiguous unsigned bits and its dtype name."""
    if type(x).__module__.split(".")[0] == "torch":
        import torch

        name = str(x.dtype).removeprefix("torch.")
        t = x.contiguous()
        a = t.view(torch.int16).numpy() if t.dtype == torch.bfloat16 else t.numpy()
    else:
        a = np.ascontiguousarray(x)
        name = a.dtype.name
    width = a.dtype.itemsize
    return a.view({1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[width]), name


def keys_of(x, magnitude: bool) -> tuple[np.ndarray, plans.Keys]:
    bits, name = bits_of(x)
    return bits, plans.Keys.of(name, magnitude)


def launched(dev: Any) -> set[str]:
    """Kernel instances the device ran, without their template arguments."""
    return {inst.split("<")[0] for inst, _, _ in dev.launches}
