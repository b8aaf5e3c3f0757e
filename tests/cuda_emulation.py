"""Helpers of the CUDA kernel tests: the emulated device, skips with reasons, bits of test data."""

from __future__ import annotations

import numpy as np
import pytest

from arraysparse._kernels.cuda import plans
from arraysparse._kernels.cuda.emulate import EmulationUnavailable, Emulator, compiler


def emulator() -> Emulator:
    """A fresh emulated device, or a skip naming what is missing (no C++20 compiler)."""
    try:
        compiler()
    except EmulationUnavailable as e:
        pytest.skip(f"CUDA emulation unavailable: {e}")
    return Emulator()


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


def launched(dev: Emulator) -> set[str]:
    """Kernel instances the device ran, without their template arguments."""
    return {inst.split("<")[0] for inst, _, _ in dev.launches}
