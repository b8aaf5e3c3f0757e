"""Streaming calibration statistics of a layer's inputs, for Wanda and SparseGPT.

arraysparse runs no model: your code runs the layer on calibration data and
feeds its *inputs* here, batch by batch. A batch is any array shaped
``(..., in_features)`` (tokens x features; leading axes are flattened, so
``(batch, seq, in_features)`` works as it is), from any supported library.
Any number of batches may be fed; the statistics are exact running values,
so feeding the data in several batches gives the result of one big batch
(up to floating-point rounding). ``mask=`` (``True`` = a real token) leaves
padding out: the statistics are those of the real tokens alone.

Feeding returns ``None``, as in-place updates do in Python, so ``update`` and
the strategies' ``calibrate`` can be called from a torch forward hook, whose
return value would replace the layer's output; :meth:`~InputNormAccumulator.hook`
builds such a hook.

* :class:`InputNormAccumulator`: the sum of squares of every input feature
  over all tokens, hence the L2 norm ``||X_j||_2`` Wanda scores with.
* :class:`HessianAccumulator`: ``H = 2 X^T X / n`` over all ``n`` tokens,
  the layer-wise Hessian SparseGPT prunes with, kept as a running mean
  exactly as the SparseGPT reference code does.

Both remember the number of features, the library and the device of the
first batch and refuse later batches that differ, naming the difference.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np

from . import _backends
from ._compat import array_namespace, backend_name, device, isdtype

__all__ = ["HessianAccumulator", "InputNormAccumulator"]

Array = Any

_FLOAT_NAMES = ("float32", "float64")
_OTHER_DTYPE_NAMES = frozenset(
    {"float16", "bfloat16", "complex64", "complex128", "bool"}
    | {f"{s}int{b}" for s in ("", "u") for b in (8, 16, 32, 64)}
)


def float_dtype_name(dtype: Any, name: str = "dtype") -> str:
    """``"float32"`` or ``"float64"`` from a string or any library's dtype object.

    ``TypeError`` for objects that are not dtypes, ``ValueError`` for other dtypes.
    """
    if isinstance(dtype, str):
        resolved = dtype
    elif dtype is None:  # np.dtype(None) would read it as float64
        resolved = "None"
    else:
        try:
            resolved = np.dtype(dtype).name
        except TypeError:
            resolved = str(dtype).rsplit(".", 1)[-1]
    known = resolved in _FLOAT_NAMES or resolved in _OTHER_DTYPE_NAMES
    if not isinstance(dtype, str) and not known:
        msg = f'{name} must be "float32" or "float64" (or such a dtype object), got {dtype!r}'
        raise TypeError(msg)
    if resolved not in _FLOAT_NAMES:
        msg = f'{name}={dtype!r} is not supported; use "float32" or "float64"'
        raise ValueError(msg)
    return resolved


def has_float64(xp: ModuleType, dev: Any) -> bool:
    """Whether ``xp`` offers float64 on ``dev`` (JAX without x64 does not)."""
    try:
        dtypes = xp.__array_namespace_info__().dtypes(device=dev, kind="real floating")
    except Exception:  # noqa: BLE001 - an old or partial namespace: assume the standard's float64
        return hasattr(xp, "float64")
    return "float64" in dtypes


class _Accumulator:
    """What both accumulators share: batch checks and the token count."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget every batch seen (the next batch may have any features, library and device)."""
        self._features: int | None = None
        self._backend: str | None = None
        self._device: Any = None
        self._n = 0

    @property
    def n_samples(self) -> int:
        """Number of tokens (rows after flattening the leading axes) seen so far."""
        return self._n

    @property
    def in_features(self) -> int | None:
        """Number of input features, fixed by the first batch (``None`` before it)."""
        return self._features

    @property
    def is_empty(self) -> bool:
        """True until a batch with at least one token has been fed."""
        return self._n == 0

    def update(self, x: Array, /, *, mask: Array | None = None) -> None:
        """Add a batch of layer inputs shaped ``(..., in_features)``.

        Parameters
        ----------
        x : array
            The layer's inputs; leading axes are tokens (``(batch, seq,
            in_features)`` works as it is).
        mask : array, optional
            ``True`` (or 1) for a real token, ``False`` (0) for padding; its
            shape broadcasts to ``x.shape[:-1]`` (an attention mask ``(batch,
            seq)``), same library and device as ``x``. Only real tokens enter
            the statistics and the token count.

        Returns ``None`` (so that a torch forward hook may call it).
        """
        xp, x2 = self._tokens(x, mask)
        self._add(xp, x2)
        self._remember(x, int(x2.shape[0]))

    def _add(self, xp: ModuleType, x2: Array) -> None:
        """Fold the real tokens ``x2`` (tokens, features) into the statistics (before the count moves)."""
        raise NotImplementedError

    def hook(self, *, mask: Callable[[], Array | None] | None = None) -> Callable[..., None]:
        """A torch forward hook (or forward pre-hook) feeding the module's first positional input.

        ``layer.register_forward_hook(acc.hook())`` feeds every input the
        layer sees; the hook returns ``None``, so the layer's output is left
        as it is. ``mask`` is called with no arguments at every forward and
        returns the batch's mask (or ``None``): ``mask=lambda: batch_mask``
        reads a variable your calibration loop sets before each forward.
        """
        if mask is not None and not callable(mask):
            msg = (
                f"mask must be a function returning the current batch's mask, got {type(mask).__name__}; "
                "for example mask=lambda: attention_mask"
            )
            raise TypeError(msg)

        def feed(module: Any, inputs: tuple, *output: Any) -> None:
            if not isinstance(inputs, tuple) or not inputs:
                msg = (
                    f"the hooked {type(module).__name__} got no positional input to calibrate on "
                    f"(inputs={inputs!r}); call update(x) yourself"
                )
                raise ValueError(msg)
            self.update(inputs[0], mask=None if mask is None else mask())

        return feed

    def check_partner(self, a: Array, name: str) -> None:
        """``a`` (say the weights) must share the calibration batches' library and device.

        ``TypeError`` / ``ValueError`` naming ``name`` and the calibration
        statistics, before an internal array would be named instead.
        """
        array_namespace(**{name: a})
        if self._backend is None:
            return
        lib = backend_name(a)
        if lib == "dask" and self._backend == "numpy":
            return  # NumPy statistics are small: they go to the workers with the weights' tasks
        if lib != self._backend:
            msg = (
                f"{name} is a {lib} array but the calibration statistics are {self._backend} arrays "
                f"(from the batches fed to calibrate() / update()); arrays of two libraries do not "
                f"mix: convert {name} to {self._backend}, or calibrate on {lib} inputs"
            )
            raise TypeError(msg)
        if str(device(a)) != str(self._device):
            msg = (
                f"{name} is on device {device(a)} but the calibration statistics are on "
                f"{self._device} (from the batches fed to calibrate() / update()); move one of them"
            )
            raise ValueError(msg)

    def _tokens(self, x: Array, mask: Array | None = None) -> tuple[ModuleType, Array]:
        """Check a batch against the earlier ones; return its real tokens as a ``(tokens, features)`` matrix."""
        xp = array_namespace(x=x)
        if backend_name(x) == "torch" and x.requires_grad:  # a hook sees activations that track grad
            x = x.detach()
        if x.dtype == xp.bool or not isdtype(xp, x.dtype, ("integral", "real floating")):
            msg = f"x has dtype {x.dtype}; layer inputs must be real numbers"
            raise TypeError(msg)
        if x.ndim == 0:
            msg = "x is 0-d; give a batch shaped (..., in_features)"
            raise ValueError(msg)
        features = int(x.shape[-1])
        lib, dev = backend_name(x), device(x)
        if self._features is not None:
            if features != self._features:
                msg = (
                    f"x has {features} input features (shape {tuple(x.shape)}) but earlier "
                    f"batches had {self._features}"
                )
                raise ValueError(msg)
            if lib != self._backend:
                msg = f"x is a {lib} array but earlier batches were {self._backend} arrays"
                raise TypeError(msg)
            if str(dev) != str(self._device):
                msg = f"x is on device {dev} but earlier batches were on {self._device}"
                raise ValueError(msg)
        tokens = math.prod(x.shape[:-1])
        x2 = xp.reshape(x, (tokens, features))
        if mask is None:
            return xp, x2
        real = _real_tokens(xp, x, mask)
        count = int(xp.count_nonzero(real))
        if count == tokens:
            return xp, x2
        (rows,) = xp.nonzero(real)
        return xp, xp.take(x2, rows, axis=0)

    def _remember(self, x: Array, tokens: int) -> None:
        self._features = int(x.shape[-1])
        self._backend = backend_name(x)
        self._device = device(x)
        self._n += tokens

    def _check_ready(self, what: str) -> None:
        if self._n == 0:
            msg = f"no calibration data yet: feed batches of layer inputs with update() before asking for {what}"
            raise ValueError(msg)


def _real_tokens(xp: ModuleType, x: Array, mask: Array) -> Array:
    """The mask over ``x``'s tokens, flat and boolean, after checking it."""
    array_namespace(x=x, mask=mask)
    if mask.dtype != xp.bool and not isdtype(xp, mask.dtype, "integral"):
        msg = f"mask has dtype {mask.dtype}; give booleans (True = real token) or 0/1 integers"
        raise TypeError(msg)
    lead = tuple(int(s) for s in x.shape[:-1])
    shape = tuple(int(s) for s in mask.shape)
    if len(shape) > len(lead) or any(m not in (1, t) for m, t in zip(reversed(shape), reversed(lead))):
        msg = (
            f"mask has shape {shape}, which does not broadcast to the token axes {lead} of x "
            f"(shape {tuple(x.shape)}); give one flag per token, e.g. the (batch, seq) attention mask"
        )
        raise ValueError(msg)
    if mask.dtype != xp.bool:
        odd = (mask != 0) & (mask != 1)
        if bool(xp.any(odd)):
            (where,) = xp.nonzero(xp.reshape(odd, (-1,)))
            value = int(xp.reshape(mask, (-1,))[int(where[0])])
            msg = (
                f"mask holds {value}, not only 0 and 1: give the attention mask (1 = real token, "
                "0 = padding), not token ids"
            )
            raise ValueError(msg)
        mask = mask != 0
    return xp.reshape(xp.broadcast_to(mask, lead), (-1,))


class InputNormAccumulator(_Accumulator):
    """Per-input-feature sums of squares over streamed batches: Wanda's ``||X_j||_2``.

    The sums are accumulated in float64 where the batches' library has it on
    their device, else in float32 (JAX without ``jax_enable_x64``, some GPU
    backends); :attr:`dtype` says which. They live in the batches' library
    and device.

    Examples
    --------
    >>> import numpy as np
    >>> from arraysparse.calibration import InputNormAccumulator
    >>> acc = InputNormAccumulator()
    >>> acc.update(np.array([[3.0, 0.0], [4.0, 1.0]]))
    >>> acc.update(np.array([[0.0, 0.0], [9.0, 9.0]]), mask=np.array([True, False]))  # padding left out
    >>> acc
    InputNormAccumulator(in_features=2, n_samples=3, dtype=float64)
    >>> acc.norms
    array([5., 1.])
    """

    def reset(self) -> None:
        """Forget every batch seen, sums included (the next batch may have any features, library and device)."""
        super().reset()
        self._sumsq: Array = None

    @property
    def dtype(self) -> str | None:
        """Name of the accumulation dtype (``None`` before the first batch)."""
        return None if self._sumsq is None else str(self._sumsq.dtype).rsplit(".", 1)[-1]

    def _add(self, xp: ModuleType, x2: Array) -> None:
        acc = xp.float64 if has_float64(xp, device(x2)) else xp.float32
        part = _backends.sum_squares(xp, x2, acc)
        self._sumsq = part if self._sumsq is None else self._sumsq + part

    @property
    def sum_squares(self) -> Array:
        """``sum over tokens of X[:, j] ** 2`` for every feature ``j``."""
        self._check_ready("sum_squares")
        return self._sumsq

    @property
    def norms(self) -> Array:
        """``||X[:, j]||_2`` for every input feature ``j``, shape ``(in_features,)``."""
        self._check_ready("norms")
        xp = array_namespace(sum_squares=self._sumsq)
        return xp.sqrt(self._sumsq)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(in_features={self._features}, n_samples={self._n}, "
            f"dtype={self.dtype})"
        )


class HessianAccumulator(_Accumulator):
    """The layer Hessian ``H = 2 X^T X / n`` over streamed batches of inputs.

    Each batch of ``t`` tokens updates the running mean as the SparseGPT
    reference code does: ``H *= n / (n + t)``, ``X *= sqrt(2 / (n + t))``,
    ``H += X^T X``, ``n += t``. Here ``n`` counts tokens (rows after
    flattening the leading axes); the reference counts sequences, which
    scales ``H`` by a constant when all sequences have one length. SparseGPT's
    result does not depend on the scale of ``H`` (its dampening is relative).

    Parameters
    ----------
    dtype : {"float32", "float64"} or a dtype object
        Accumulation dtype; float32 (the reference's) by default.

    Examples
    --------
    >>> import numpy as np
    >>> from arraysparse.calibration import HessianAccumulator
    >>> x = np.array([[1.0, 2.0], [3.0, 0.0]])
    >>> acc = HessianAccumulator(dtype="float64")
    >>> acc.update(x[:1])
    >>> acc.update(x[1:])
    >>> acc.hessian
    array([[10.,  2.],
           [ 2.,  4.]])
    >>> np.allclose(acc.hessian, 2 * x.T @ x / 2)
    True
    """

    def __init__(self, *, dtype: Any = "float32") -> None:
        self._dtype_name = float_dtype_name(dtype)
        super().__init__()

    def reset(self) -> None:
        """Forget every batch seen, the Hessian included (the dtype stays)."""
        super().reset()
        self._h: Array = None

    @property
    def dtype(self) -> str:
        """Name of the accumulation dtype."""
        return self._dtype_name

    def _add(self, xp: ModuleType, x2: Array) -> None:
        dt = getattr(xp, self._dtype_name)
        dev = device(x2)
        if dt == xp.float64 and not has_float64(xp, dev):
            msg = f"dtype='float64' is not available for {backend_name(x2)} arrays on {dev}"
            raise ValueError(msg)
        tokens = int(x2.shape[0])
        features = int(x2.shape[1])
        if self._h is None:
            self._h = xp.zeros((features, features), dtype=dt, device=dev)
        if tokens:
            total = self._n + tokens
            xs = xp.astype(x2, dt) * math.sqrt(2.0 / total)
            self._h = self._h * (self._n / total) + xp.matmul(xp.matrix_transpose(xs), xs)

    @property
    def hessian(self) -> Array:
        """``2 X^T X / n``, shape ``(in_features, in_features)`` (the accumulator's own array)."""
        self._check_ready("the hessian")
        return self._h

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(in_features={self._features}, n_samples={self._n}, "
            f"dtype={self._dtype_name})"
        )
