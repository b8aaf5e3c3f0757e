"""Backends for the test matrix and a way back to NumPy for comparisons."""

from __future__ import annotations

import enum
import importlib.util

import numpy as np


class Backend(enum.Enum):
    NUMPY = "numpy"
    NUMPY_READONLY = "numpy_readonly"
    ARRAY_API_STRICT = "array_api_strict"
    TORCH = "torch"
    TORCH_STANDARD = "torch_standard"  # CPU tensors taken as device tensors: the path of CUDA torch without CuPy
    JAX = "jax"
    CUPY = "cupy"
    TORCH_CUDA = "torch_cuda"

    def available(self) -> str | None:
        """``None`` when usable, else the reason to skip."""
        module = {"numpy_readonly": "numpy", "torch_cuda": "torch", "torch_standard": "torch"}.get(self.value, self.value)
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed"
        if self is Backend.CUPY:
            try:
                import cupy

                cupy.cuda.runtime.getDeviceCount()
            except Exception:  # noqa: BLE001 - no driver / no device
                return "no CUDA device for cupy"
        if self is Backend.TORCH_CUDA:
            import torch

            if not torch.cuda.is_available():
                return "no CUDA device for torch"
        return None

    def asarray(self, a: np.ndarray):
        """``a`` (NumPy) as an array of this backend, values and dtype kept."""
        a = np.asarray(a)
        if self is Backend.NUMPY:
            return a.copy()
        if self is Backend.NUMPY_READONLY:
            r = a.copy()
            r.flags.writeable = False
            return r
        if self is Backend.ARRAY_API_STRICT:
            import array_api_strict

            return array_api_strict.asarray(a.copy())
        if self in (Backend.TORCH, Backend.TORCH_CUDA, Backend.TORCH_STANDARD):
            import torch

            t = torch.from_numpy(a.copy())
            return t.cuda() if self is Backend.TORCH_CUDA else t
        if self is Backend.JAX:
            import jax.numpy as jnp

            return jnp.asarray(a)
        import cupy

        return cupy.asarray(a)


def to_numpy(x) -> np.ndarray:
    """Any backend's array as a NumPy array (a copy for device arrays)."""
    mod = type(x).__module__.split(".")[0]
    if mod == "torch":
        return x.detach().cpu().numpy()
    if mod == "cupy":
        return x.get()
    if mod == "array_api_strict":
        return np.from_dlpack(x)
    return np.asarray(x)
