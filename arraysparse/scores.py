"""Importance scores: higher means more important, pruning removes the lowest.

Every function takes arrays of any supported library and returns an array of
the same library, dtype family and device.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from . import _backends
from ._compat import array_namespace, ensure_array
from ._validation import check_known_shape, check_real, check_same_shape, normalize_axis

__all__ = [
    "block_scores",
    "gradient_scores",
    "magnitude_scores",
    "random_scores",
    "structure_scores",
]

Array = Any


def magnitude_scores(weights: Array, /) -> Array:
    """``|weights|``: the magnitude criterion of ``torch.nn.utils.prune.l1_unstructured``.

    Examples
    --------
    >>> import numpy as np, arraysparse as asp
    >>> asp.magnitude_scores(np.array([-3.0, 1.0, -0.5]))
    array([3. , 1. , 0.5])
    """
    xp = array_namespace(weights=weights)
    if weights.dtype == xp.bool:
        msg = "weights has dtype bool; magnitude needs numbers"
        raise TypeError(msg)
    return ensure_array(xp.abs(weights))


def gradient_scores(weights: Array, gradients: Array, /) -> Array:
    """``|weights * gradients|``: first-order estimate of the loss change when a weight is removed.

    Raises ``ValueError`` when the shapes differ and ``TypeError`` when the two
    arrays come from different libraries.

    Examples
    --------
    >>> import numpy as np, arraysparse as asp
    >>> asp.gradient_scores(np.array([2.0, -1.0]), np.array([0.5, 3.0]))
    array([1., 3.])
    """
    if gradients is None:
        msg = "gradients is None; gradient scores need the loss gradient of every weight"
        raise ValueError(msg)
    xp = array_namespace(weights=weights, gradients=gradients)
    check_same_shape(weights, gradients, "weights", "gradients")
    for name, a in (("weights", weights), ("gradients", gradients)):
        if a.dtype == xp.bool:
            msg = f"{name} has dtype bool; gradient scores need numbers"
            raise TypeError(msg)
    return ensure_array(xp.abs(weights * gradients))


def structure_scores(weights: Array, /, axis: int = 0, *, ord: float = 2) -> Array:
    """Lp norm of every slice ``weights[..., i, ...]`` along ``axis``.

    Axis 0 of a Linear weight ``(out, in)`` scores output neurons (rows); axis 0
    of a conv weight ``(out, in, kh, kw)`` scores filters, axis 1 input channels.

    Parameters
    ----------
    weights : array, at least 1-D
    axis : int
        The axis whose index names a structure.
    ord : float
        Norm order: any ``p > 0`` or ``inf`` (the largest magnitude).

    Returns
    -------
    array of shape ``(weights.shape[axis],)``, floating.

    Examples
    --------
    >>> import numpy as np, arraysparse as asp
    >>> asp.structure_scores(np.array([[3.0, 4.0], [1.0, 0.0]]), axis=0)
    array([5., 1.])
    """
    return _structure_scores(weights, axis, ord, "weights")


def _structure_scores(x: Array, axis: int, ord: float, name: str) -> Array:
    xp = array_namespace(**{name: x})
    check_real(xp, x, name)
    if x.ndim == 0:
        msg = f"{name} is 0-d; structured pruning needs at least one axis"
        raise ValueError(msg)
    ax = normalize_axis(axis, x.ndim)
    return _backends.slice_norms(xp, x, ax, check_ord(ord))


def block_scores(weights: Array, /, block: tuple[int, ...], *, ord: float = 2) -> Array:
    """Lp norm of every tile of shape ``block`` over the trailing ``len(block)`` axes.

    Returns an array of shape ``weights.shape[:-k] + (s // b for each tiled axis)``.

    Examples
    --------
    >>> import numpy as np, arraysparse as asp
    >>> asp.block_scores(np.ones((4, 4)), (2, 2), ord=1)
    array([[4., 4.],
           [4., 4.]])
    """
    return _block_scores(weights, block, ord, "weights")


def _block_scores(x: Array, block: tuple[int, ...], ord: float, name: str) -> Array:
    from .patterns import SparsityPattern

    xp = array_namespace(**{name: x})
    check_real(xp, x, name)
    tiles = SparsityPattern.blocks(block).block or ()
    check_block_shape(x.shape, tiles)
    return _backends.block_norms(xp, x, tiles, check_ord(ord))


def random_scores(like: Array, /, *, seed: int | np.random.Generator | None = None) -> Array:
    """Random scores for random pruning: a random permutation of ``0 .. size-1``.

    The scores are distinct integers drawn on the host by NumPy's ``PCG64`` from
    ``seed``, so a given seed gives the same scores, hence the same mask, on every
    backend and device. ``seed=None`` draws fresh entropy. For a Dask ``like``
    and an int seed (or None) one task on a worker draws them (lazily, 8 bytes
    a value on that worker), in ``like``'s chunks; a Generator must advance on
    the client, so it draws there and the scores are sent to the workers.

    Examples
    --------
    >>> import numpy as np, arraysparse as asp
    >>> asp.random_scores(np.zeros((2, 3)), seed=0).shape
    (2, 3)
    """
    xp = array_namespace(like=like)
    check_known_shape(like, "like")
    if isinstance(seed, bool) or not (
        seed is None or isinstance(seed, (numbers.Integral, np.random.Generator))
    ):
        msg = f"seed must be None, an int or a numpy Generator, got {seed!r}"
        raise TypeError(msg)
    return _backends.permutation(xp, like, seed)


def check_ord(ord: Any) -> float:
    """A norm order: a real ``p > 0`` or ``inf``."""
    if isinstance(ord, bool) or not isinstance(ord, numbers.Real):
        msg = f"ord must be a positive number or inf, got {ord!r}"
        raise TypeError(msg)
    p = float(ord)
    if math.isnan(p) or p <= 0:
        msg = f"ord={ord!r} must be > 0 (1, 2, any p, or inf)"
        raise ValueError(msg)
    return p


def check_block_shape(shape: tuple[int, ...], block: tuple[int, ...]) -> None:
    """Blocks must tile the trailing axes exactly."""
    shape = tuple(shape)
    if len(block) > len(shape):
        msg = f"block={block} has more dimensions than the array's shape {shape}"
        raise ValueError(msg)
    tail = shape[len(shape) - len(block) :]
    for size, b in zip(tail, block):
        if size % b:
            msg = f"block={block} does not divide the trailing axes {tail} of shape {shape}"
            raise ValueError(msg)
