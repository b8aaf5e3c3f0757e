"""Movement pruning (Sanh et al. 2020), hard variant: keep the weights moving away from zero.

During fine-tuning the score of a weight accumulates ``S -= W * dL/dW`` at every
step: a weight that the optimiser pushes away from zero (``W`` and ``-dL/dW`` of
the same sign) gains score, one pushed toward zero loses it. The mask keeps the
top-k of ``S``. arraysparse runs no training: feed the accumulator your weights and
gradients step by step with :meth:`MovementPruning.update`.
"""

from __future__ import annotations

from typing import Any

from .._compat import array_namespace, ensure_array
from .._validation import check_real
from ._model import check_scope, mapping_masks
from ._tree import (
    Tree,
    check_structure,
    detached,
    flatten,
    is_tree,
    map_tree,
    unflatten,
)
from .base import PruningStrategy

__all__ = ["MovementPruning", "movement_scores"]

Array = Any


def movement_scores(weights: Tree, gradients: Tree, /) -> Tree:
    """One step of movement: ``-(weights * gradients)``, for an array or a mapping of arrays.

    Summed over the steps of training this is the hard-movement score of Sanh et al.
    (the constant learning-rate factor of the paper does not change the ranking).
    Mappings come back as plain nested dicts of the same structure.

    Examples
    --------
    >>> import numpy as np
    >>> from arraysparse.strategies.movement import movement_scores
    >>> movement_scores(np.array([1.0, -2.0, 0.5]), np.array([-0.5, -1.0, 0.25]))
    array([ 0.5  , -2.   , -0.125])
    """
    if gradients is None:
        msg = "gradients is None; movement scores need the loss gradient of every weight"
        raise ValueError(msg)
    check_structure(weights, gradients, "weights", "gradients")
    return map_tree(_step, weights, gradients)


def _step(w: Array, g: Array) -> Array:
    xp = array_namespace(weights=w, gradients=g)
    check_real(xp, w, "weights")
    check_real(xp, g, "gradients")
    return ensure_array(-(detached(w) * detached(g)))


class MovementPruning(PruningStrategy):
    """Hard movement pruning: a stateful accumulator ``S -= W * dL/dW`` and top-k masks of ``S``.

    Call :meth:`update` once per training step with the weights and their
    gradients (one array or a mapping; the first call fixes the structure, later
    calls must match it). :attr:`scores` holds ``S`` in the same structure,
    :attr:`steps` counts the updates, :meth:`reset` starts over. Masks come from
    :meth:`masks` (or :meth:`create_mask` / :meth:`prune`, which use ``S``).
    Torch tensors that require grad are read detached, so the accumulator never
    holds an autograd graph.

    Parameters
    ----------
    pattern : SparsityPattern, optional
        Any pattern; unstructured by default. 2:4 / N:M masks keep the top of ``S``
        within each group (:meth:`create_n_to_m_mask`, or an N:M pattern).
    ord : float
        Norm order that ranks structures and blocks.
    scope : {"layer", "global"}
        For mappings: ``"layer"`` (default, as Sanh et al.'s per-matrix top-k)
        prunes every array by the same fraction; ``"global"`` chooses one
        threshold over all of them (unstructured patterns only).

    Examples
    --------
    >>> import numpy as np
    >>> from arraysparse.strategies.movement import MovementPruning
    >>> mv = MovementPruning()
    >>> w = np.array([1.0, -1.0, 0.5, 2.0])
    >>> mv.update(w, np.array([-1.0, -1.0, -1.0, 0.5]))
    >>> mv.update(w, np.array([-1.0, 0.0, 1.0, 0.5]))
    >>> mv.steps, mv.scores
    (2, array([ 2., -1.,  0., -2.]))
    >>> mv.masks(0.5).mask
    array([ True, False,  True, False])
    """

    name = "movement"
    requires_gradients = True

    def __init__(self, pattern: Any = None, *, ord: float = 2, scope: str = "layer") -> None:
        super().__init__(pattern, ord=ord)
        self.scope = check_scope(scope)
        """For mappings: ``"layer"`` (every array pruned by the same fraction) or ``"global"``."""
        self.reset()

    # -- the accumulator ------------------------------------------------------
    def reset(self) -> None:
        """Forget every accumulated step (the next :meth:`update` may use a new structure)."""
        self._flat: dict[str, Array] | None = None
        self._like: Any = None  # nesting of the first weights: shapes at the leaves
        self._steps = 0

    @property
    def steps(self) -> int:
        """Number of :meth:`update` calls since construction or :meth:`reset`."""
        return self._steps

    @property
    def scores(self) -> Tree:
        """The accumulated ``S``, in the structure of the weights (``ValueError`` before any update)."""
        if self._flat is None:
            msg = "no step accumulated yet; call update(weights, gradients) first"
            raise ValueError(msg)
        if not is_tree(self._like):
            return self._flat[""]
        return unflatten(self._flat, self._like)

    def update(self, weights: Tree, gradients: Tree) -> None:
        """Accumulate one step: ``S -= weights * gradients`` (arrays are not modified).

        ``weights`` and ``gradients`` are one array each, or mappings of one
        structure. The first update fixes the structure, shapes and library;
        later updates that differ raise ``ValueError`` (or ``TypeError`` for an
        array given where a mapping was, or another library). Call :meth:`reset`
        to start over with another model.
        """
        step = movement_scores(weights, gradients)
        flat = flatten(step, "weights") if is_tree(step) else {"": step}
        if self._flat is None:
            self._flat = flat
            self._like = map_tree(lambda a: tuple(a.shape), weights)
            self._steps = 1
            return
        self._check_like(weights, "weights")
        self._flat = {key: self._flat[key] + s for key, s in flat.items()}  # library and device checked above
        self._steps += 1

    def _check_like(self, weights: Tree, name: str) -> None:
        like = self._like
        if is_tree(like) != is_tree(weights):
            had = "a mapping" if is_tree(like) else "an array"
            got = "a mapping" if is_tree(weights) else "an array"
            msg = (
                f"{name} is {got} but the accumulator holds {had} (fixed by the first update); "
                "call reset() to start over with another structure"
            )
            raise TypeError(msg)
        if not is_tree(like):
            if tuple(weights.shape) != like:
                msg = (
                    f"{name} has shape {tuple(weights.shape)} but the accumulator holds shape {like}; "
                    "call reset() to start over"
                )
                raise ValueError(msg)
            self._check_library(weights, "", name)
            return
        want = flatten(like, "accumulator", arrays=False)
        got = flatten(weights, name)
        if list(want) != list(got):
            missing = [k for k in want if k not in got]
            extra = [k for k in got if k not in want]
            msg = (
                f"{name} does not have the structure of the accumulated model: missing {missing}, "
                f"unexpected {extra}; call reset() to start over"
            )
            raise ValueError(msg)
        for key, shape in want.items():
            if tuple(got[key].shape) != shape:
                msg = (
                    f"{name}[{key!r}] has shape {tuple(got[key].shape)} but the accumulator holds "
                    f"shape {shape}; call reset() to start over"
                )
                raise ValueError(msg)
            self._check_library(got[key], key, f"{name}[{key!r}]")

    def _check_library(self, a: Array, key: str, label: str) -> None:
        """``a`` shares the library and device of the scores accumulated so far: the error names
        them, not the arrays built from them later (a mask, its apply)."""
        array_namespace(**{label: a, "the scores accumulated by update()": self._flat[key]})

    # -- the strategy interface ---------------------------------------------------
    def compute_importance_scores(self, weights: Tree, gradients: Tree | None = None) -> Tree:
        """The accumulated ``S`` (``weights`` must have its structure), or one step without state.

        With no update accumulated, ``gradients`` are required and the result is
        :func:`movement_scores` of this one step (nothing is stored). With
        accumulated steps pass ``gradients=None``: the scores are ``S``.
        """
        if self._flat is None:
            if gradients is None:
                msg = (
                    "MovementPruning has accumulated no step: call update(weights, gradients) "
                    "during training, or pass gradients for a one-step score"
                )
                raise ValueError(msg)
            return movement_scores(weights, gradients)
        if gradients is not None:
            msg = (
                f"MovementPruning has accumulated {self._steps} step(s); pass gradients=None to use "
                "them, or call update(weights, gradients) to add this step first"
            )
            raise ValueError(msg)
        self._check_like(weights, "weights")
        return self.scores

    def create_mask(self, scores: Tree, target_sparsity: float | None = None) -> Any:
        """A :class:`~arraysparse.PruningMask`, or for a mapping an :class:`arraysparse.model.ModelMask`."""
        if not is_tree(scores):
            return super().create_mask(scores, target_sparsity)
        return mapping_masks(self, scores, target_sparsity, self.scope)

    def masks(self, target_sparsity: float | None = None) -> Any:
        """Masks from the accumulated scores: top-k of ``S`` (``ValueError`` before any update)."""
        return self.create_mask(self.scores, target_sparsity)

    def prune(
        self, weights: Tree, target_sparsity: float | None = None, gradients: Tree | None = None
    ) -> tuple[Tree, Any]:
        """Masks from ``S`` (or from one step's scores) applied to a copy of ``weights``."""
        mask = self.create_mask(self.compute_importance_scores(weights, gradients), target_sparsity)
        return mask.apply(weights), mask

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(pattern={self.pattern}, ord={self.ord:g}, "
            f"scope={self.scope!r}, steps={self._steps})"
        )
