"""Random pruning, seeded: the baseline every other method must beat."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._compat import ensure_array
from .._validation import prune_count
from ..masks import PruningMask, apply_mask
from ..patterns import PatternKind, SparsityPattern
from ..scores import random_scores
from .base import PruningStrategy, check_gradients

Array = Any


class RandomPruning(PruningStrategy):
    """Prunes a uniformly random set of exactly the requested size; any pattern.

    Scores are a permutation drawn from ``seed`` (see
    :func:`arraysparse.random_scores`): an int seed gives the same mask on every
    call and every backend; a ``numpy.random.Generator`` advances on each call.

    Examples
    --------
    >>> import numpy as np, arraysparse as asp
    >>> asp.RandomPruning(seed=0).prune(np.ones(8), 0.25)[1].num_pruned
    2
    """

    name = "random"

    def __init__(
        self,
        pattern: SparsityPattern | None = None,
        *,
        seed: int | np.random.Generator | None = None,
        ord: float = 2,
    ):
        super().__init__(pattern, ord=ord)
        self.seed = seed
        """The seed (or NumPy ``Generator``) that :func:`~arraysparse.random_scores` draws from."""

    def compute_importance_scores(self, weights: Array, gradients: Array | None = None) -> Array:
        """Seeded random permutation of ``0 .. size-1``; ``gradients`` is checked, then unused."""
        check_gradients(weights, gradients)
        return random_scores(weights, seed=self.seed)

    def prune(
        self,
        weights: Array,
        target_sparsity: float | int | None = None,
        gradients: Array | None = None,
    ) -> tuple[Array, PruningMask]:
        """Scores, mask and pruned copy in one call; ``weights`` is not modified.

        Unstructured masks need no ranking: the scores are a permutation of
        ``0 .. size-1``, so the ``k`` lowest are exactly the scores below ``k``
        (the mask a top-k selection of them gives, in one comparison).
        """
        if self.pattern.kind is not PatternKind.UNSTRUCTURED or target_sparsity is None:
            return super().prune(weights, target_sparsity, gradients)
        scores = self.compute_importance_scores(weights, gradients)
        count = prune_count(target_sparsity, math.prod(scores.shape))
        mask = PruningMask(ensure_array(scores >= count), self.pattern)
        return apply_mask(weights, mask), mask
