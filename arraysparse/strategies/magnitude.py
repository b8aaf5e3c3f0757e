"""Magnitude pruning: the smallest ``|w|`` go first."""

from __future__ import annotations

from typing import Any

from ..masks import PruningMask, create_mask
from ..scores import magnitude_scores
from .base import PruningStrategy, check_gradients

Array = Any


class MagnitudePruning(PruningStrategy):
    """Scores are ``|weights|``; any pattern.

    Examples
    --------
    >>> import numpy as np, arraysparse as asp
    >>> w = np.array([[0.1, -2.0, 0.3, 4.0]])
    >>> pruned, mask = asp.MagnitudePruning().prune(w, 0.5)
    >>> pruned
    array([[ 0., -2.,  0.,  4.]])
    """

    name = "magnitude"

    def compute_importance_scores(self, weights: Array, gradients: Array | None = None) -> Array:
        """``|weights|``; ``gradients`` is checked against ``weights`` if given, then unused."""
        check_gradients(weights, gradients)
        return magnitude_scores(weights)

    def mask_from_weights(self, weights: Array, target_sparsity: float | int | None = None) -> PruningMask:
        """Mask straight from the weights, ranking ``|w|`` on the fly (no score array)."""
        return create_mask(weights, target_sparsity, self.pattern, ord=self.ord, magnitude=True)
