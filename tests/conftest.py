"""The backend matrix every behaviour test runs across.

``backend`` is parametrised over the libraries installed here; GPU backends
are skipped without a GPU. ``NUMPY_READONLY`` feeds read-only arrays (inputs
must never be written), ``ARRAY_API_STRICT`` proves the standard-only path.
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
def backend(request) -> Backend:
    reason = request.param.available()
    if reason:
        pytest.skip(reason)
    return request.param
