"""Gradient pruning: the smallest ``|w * dL/dw|`` go first."""

from __future__ import annotations

from typing import Any

from ..scores import gradient_scores
from .base import PruningStrategy

Array = Any


class GradientPruning(PruningStrategy):
    """Scores are ``|weights * gradients|`` (first-order saliency); gradients required.

    Examples
    --------
    >>> import numpy as np, arraysparse as asp
    >>> w = np.array([1.0, 1.0, 1.0, 1.0]); g = np.array([0.1, 5.0, -3.0, 0.0])
    >>> asp.GradientPruning().prune(w, 0.5, gradients=g)[0]
    array([0., 1., 1., 0.])
    """

    name = "gradient"
    requires_gradients = True

    def compute_importance_scores(self, weights: Array, gradients: Array | None = None) -> Array:
        """``|weights * gradients|``; ``ValueError`` without ``gradients``."""
        if gradients is None:
            msg = "GradientPruning requires gradients (the loss gradient of every weight)"
            raise ValueError(msg)
        return gradient_scores(weights, gradients)
