"""The backend matrix every behaviour test runs across.

``backend`` is parametrised over the libraries installed here; GPU backends
are skipped without a GPU. ``NUMPY_READONLY`` feeds read-only arrays (inputs
must never be written), ``ARRAY_API_STRICT`` proves the standard-only path, and
``TORCH_STANDARD`` runs it on torch's semantics (CPU tensors taken for device tensors: the
path of CUDA torch tensors when CuPy is not installed).
"""

from __future__ import annotations

import importlib.util
import os

import pytest
from hypothesis import settings

from tests.backends import Backend
from tests.cuda_emulation import plan_device  # noqa: F401 - the CUDA plan tests' device fixture

settings.register_profile("ci", deadline=None, max_examples=40, derandomize=True)
settings.register_profile("dev", deadline=None, max_examples=25)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

if importlib.util.find_spec("jax") is not None:
    import jax

    jax.config.update("jax_enable_x64", True)

ALL_BACKENDS = list(Backend)


@pytest.fixture(params=ALL_BACKENDS, ids=lambda b: b.value)
def backend(request, monkeypatch) -> Backend:
    reason = request.param.available()
    if reason:
        pytest.skip(reason)
    if request.param is Backend.TORCH_STANDARD:
        # no CPU tensor is a host array for this test: every job on torch runs the standard-only
        # code, as it does for CUDA tensors without CuPy (the common GPU case), on torch's semantics
        from arraysparse import _compat

        monkeypatch.setattr(_compat, "is_torch_cpu_strided", lambda x: False)
    return request.param
