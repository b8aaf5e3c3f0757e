"""SNIP (Lee et al. 2019): connection sensitivity at initialisation.

The saliency of a connection is ``|g * w|`` (the effect on the loss of removing it,
to first order), normalised by the sum over **all** connections of the network so
the scores of a whole model sum to 1. It is computed once, at initialisation, from
the gradients of one (or a few) batches, and the network is pruned before training.
"""

from __future__ import annotations

import math
from typing import Any

from .._compat import array_namespace, ensure_array, isdtype
from .._validation import check_same_shape
from ._model import check_scope, mapping_masks
from ._tree import Tree, check_structure, flatten, is_tree, unflatten
from .base import PruningStrategy

__all__ = ["SNIPPruning", "snip_scores"]

Array = Any


def snip_scores(weights: Tree, gradients: Tree, /) -> Tree:
    """Connection sensitivity ``|g * w| / sum(|g * w|)`` over one array or a whole model.

    Parameters
    ----------
    weights : array or (nested) mapping of named arrays
        The weights at initialisation; floating dtypes.
    gradients : same structure as ``weights``
        The loss gradient of every weight on a batch.

    Returns
    -------
    The same structure (mappings come back as plain nested dicts): the scores of
    every array together sum to 1, whether one array or many are given. The sum is
    taken per array in the array's dtype and accumulated in Python floats.

    Raises
    ------
    ValueError
        When a gradient is missing or has another shape, or when every saliency is
        zero (nothing to rank) or the sum is not finite.

    Examples
    --------
    >>> import numpy as np
    >>> from arraysparse.strategies.snip import snip_scores
    >>> snip_scores(np.array([1.0, -2.0, 0.5]), np.array([1.0, 1.0, -2.0]))
    array([0.25, 0.5 , 0.25])
    >>> s = snip_scores({"a": np.array([1.0, 1.0]), "b": np.array([2.0])},
    ...                 {"a": np.array([1.0, 0.0]), "b": np.array([1.5])})
    >>> s["a"], s["b"]
    (array([0.25, 0.  ]), array([0.75]))
    """
    if gradients is None:
        msg = "gradients is None; SNIP needs the loss gradient of every weight"
        raise ValueError(msg)
    check_structure(weights, gradients, "weights", "gradients")
    if not is_tree(weights):
        flat_w, flat_g = {"": weights}, {"": gradients}
    else:
        flat_w, flat_g = flatten(weights, "weights"), flatten(gradients, "gradients")
    saliency: dict[str, Array] = {}
    total = 0.0
    for key, w in flat_w.items():
        g = flat_g[key]
        label = f"[{key!r}]" if key else ""
        xp = array_namespace(**{f"weights{label}": w, f"gradients{label}": g})
        check_same_shape(w, g, f"weights{label}", f"gradients{label}")
        for name, a in ((f"weights{label}", w), (f"gradients{label}", g)):
            if not isdtype(xp, a.dtype, "real floating"):
                msg = f"{name} has dtype {a.dtype}; SNIP needs real floating weights and gradients"
                raise TypeError(msg)
        s = xp.abs(w * g)
        saliency[key] = s
        if math.prod(s.shape):
            total += float(xp.sum(s))
    if not math.isfinite(total):
        msg = f"the connection sensitivities sum to {total}; weights or gradients hold inf or nan"
        raise ValueError(msg)
    if total == 0.0:
        msg = "every connection sensitivity |g * w| is zero (all weights or gradients are 0); nothing to rank"
        raise ValueError(msg)
    scores = {key: ensure_array(s / total) for key, s in saliency.items()}
    return scores[""] if not is_tree(weights) else unflatten(scores, weights)


class SNIPPruning(PruningStrategy):
    """SNIP: prune the connections of least sensitivity ``|g * w|``, once, at initialisation.

    Takes one array or a whole model (a nested mapping of named arrays, with
    gradients of the same structure). Over a model the scores are normalised by
    their sum over every layer, and with ``scope="global"`` (default, as in the
    paper) one threshold is chosen over all of them
    (:func:`arraysparse.model.global_mask`); ``scope="layer"`` prunes each array
    by the same fraction. Any pattern: 2:4 and N:M masks are built per array
    (``create_n_to_m_mask``, or an N:M ``pattern``), structured patterns rank each
    structure by the norm (``ord``) of its normalised scores.

    Examples
    --------
    >>> import numpy as np
    >>> from arraysparse.strategies.snip import SNIPPruning
    >>> w = np.array([[1.0, -2.0, 0.5, 3.0]]); g = np.array([[1.0, 1.0, -2.0, 1.0]])
    >>> SNIPPruning().prune(w, 0.5, gradients=g)[0]
    array([[ 0., -2.,  0.,  3.]])
    """

    name = "snip"
    requires_gradients = True

    def __init__(self, pattern: Any = None, *, ord: float = 2, scope: str = "global") -> None:
        super().__init__(pattern, ord=ord)
        self.scope = check_scope(scope)
        """For mappings: ``"global"`` (one threshold over all arrays) or ``"layer"``."""

    def compute_importance_scores(self, weights: Tree, gradients: Tree | None = None) -> Tree:
        """:func:`snip_scores`: an array, or a mapping of the weights' structure summing to 1."""
        return snip_scores(weights, gradients)

    def create_mask(self, scores: Tree, target_sparsity: float | None = None) -> Any:
        """A :class:`~arraysparse.PruningMask`, or for a mapping an :class:`arraysparse.model.ModelMask`."""
        if not is_tree(scores):
            return super().create_mask(scores, target_sparsity)
        return mapping_masks(self, scores, target_sparsity, self.scope)

    def prune(
        self, weights: Tree, target_sparsity: float | None = None, gradients: Tree | None = None
    ) -> tuple[Tree, Any]:
        """Scores, mask and pruned copy; ``weights`` is not modified. Mappings give ``(model, ModelMask)``."""
        if not is_tree(weights):
            return super().prune(weights, target_sparsity, gradients)
        mask = self.create_mask(self.compute_importance_scores(weights, gradients), target_sparsity)
        return mask.apply(weights), mask

    def __repr__(self) -> str:
        return f"{type(self).__name__}(pattern={self.pattern}, ord={self.ord:g}, scope={self.scope!r})"

