"""Lottery ticket: iterative magnitude pruning with rewinding (Frankle & Carbin 2019; open_lth).

Each round prunes the smallest-magnitude fraction of the weights that remain,
rewinds the survivors to their values at initialisation (or at step ``k`` of
training: late rewinding, Frankle et al. 2020) and **retrains** them with your
own training code, passed as a callback. arraysparse runs no model: the callback
``train_fn(weights, masks, round)`` receives the rewound, masked weights and the
round's masks, trains, and returns the trained weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .._compat import array_namespace, count_true, device, isdtype
from .._validation import positive_int, prune_count
from ..masks import PruningMask, apply_mask, nm_mask, topk_mask
from ..patterns import NM_KINDS, PatternKind, SparsityPattern
from ..scores import magnitude_scores
from ._model import check_scope, global_keep, wrap_masks
from ._tree import (
    Tree,
    check_structure,
    copy_array,
    flatten,
    is_tree,
    map_tree,
    unflatten,
)
from .base import PruningStrategy

__all__ = ["LotteryTicketPruning", "LotteryTicketResult", "round_counts"]

Array = Any


def round_counts(target_sparsity: float, size: int, rounds: int) -> list[int]:
    """Cumulative pruned counts after each of ``rounds`` rounds, for ``size`` items.

    Every round prunes the same fraction ``p = 1 - (1 - s) ** (1 / rounds)`` of
    what remains, so after round ``r`` the sparsity is ``1 - (1 - s) ** (r / R)``;
    each count is rounded by the library's rule (:func:`arraysparse._validation.prune_count`,
    half to even) and the last is exactly the count ``target_sparsity`` gives
    (an int is a count). The counts never decrease.

    Examples
    --------
    >>> from arraysparse.strategies.lottery import round_counts
    >>> round_counts(0.875, 1000, 3)    # half of what remains, three times
    [500, 750, 875]
    """
    rounds = positive_int(rounds, "rounds")
    final = prune_count(target_sparsity, size, name="target_sparsity")
    s = final / size if size else 0.0
    counts = [prune_count(1.0 - (1.0 - s) ** (r / rounds), size) for r in range(1, rounds)]
    counts.append(final)
    out, prev = [], 0
    for c in counts:
        prev = max(prev, min(c, final))
        out.append(prev)
    return out


@dataclass(frozen=True)
class LotteryTicketResult:
    """What :meth:`LotteryTicketPruning.run` returns.

    Attributes
    ----------
    weights : array or dict
        The weights after the last round's training, masks applied (the
        structure of the input; mappings as plain nested dicts).
    masks : PruningMask or ModelMask
        The final masks (a :class:`arraysparse.model.ModelMask` for mappings).
    history : list of dict
        One record per call of ``train_fn``: ``round``, ``sparsity`` (overall,
        of the masks it trained with), ``pruned`` (count), ``layer_sparsity``
        (per flat name, mappings only) and ``metrics`` (whatever ``train_fn``
        returned besides the weights, else ``None``).
    """

    weights: Tree
    masks: Any
    history: list[dict[str, Any]] = field(default_factory=list)


class LotteryTicketPruning(PruningStrategy):
    """Iterative magnitude pruning with rewinding and real retraining between rounds.

    Parameters
    ----------
    pattern : SparsityPattern, optional
        Unstructured (default), 2:4 or N:M. N:M rounds: round ``r`` keeps an
        ``n_r:m`` mask with ``n_r = round_counts(n / m, m, rounds)[r - 1]`` zeros per
        group (the last round exactly ``n``), each round pruning the smallest
        surviving magnitudes inside every group, so each round's mask is itself a
        valid ``n_r:m`` mask and the masks nest.
    rounds : int
        Pruning rounds ``R >= 1``; each prunes ``1 - (1 - s) ** (1 / R)`` of what
        remains (see :func:`round_counts`).
    rewind_step : int
        ``0`` rewinds to the initial weights; ``k > 0`` to the weights at step ``k``
        of the dense training, which your training code records by calling
        :meth:`record_rewind_point` at that step.
    scope : {"layer", "global"}
        For mappings: ``"layer"`` prunes every array by the same fraction;
        ``"global"`` ranks all weights of the model together
        (:func:`arraysparse.model.global_mask`; unstructured only). An int
        ``target_sparsity`` is a count over the whole model, so it needs
        ``"global"`` (or a single array).

    Notes
    -----
    :meth:`run` never modifies the caller's arrays: ``train_fn`` receives fresh
    arrays (it may train them in place) and the rewind point is a copy.
    As a plain :class:`PruningStrategy` (``prune``, ``create_mask``) it is one-shot
    magnitude pruning: scores are ``|w|``.

    Examples
    --------
    >>> import numpy as np
    >>> from arraysparse.strategies.lottery import LotteryTicketPruning
    >>> rng = np.random.default_rng(0)
    >>> init = rng.standard_normal(16)
    >>> def train(w, mask, round):          # your training loop; here a stand-in
    ...     return w * 2.0, {"loss": float(np.sum(w**2))}
    >>> lt = LotteryTicketPruning(rounds=3)
    >>> lt.record_rewind_point(init)        # rewind_step=0: the initial weights
    >>> res = lt.run(init * 3.0, 0.75, train)
    >>> [h["round"] for h in res.history], res.masks.num_pruned
    ([1, 2, 3], 12)
    >>> bool(np.all(res.weights[~res.masks.mask] == 0))
    True
    """

    name = "lottery_ticket"
    supported_patterns = (
        PatternKind.UNSTRUCTURED,
        PatternKind.STRUCTURED_2TO4,
        PatternKind.STRUCTURED_NTOM,
    )

    def __init__(
        self,
        pattern: SparsityPattern | None = None,
        *,
        rounds: int = 1,
        rewind_step: int = 0,
        scope: str = "layer",
    ) -> None:
        super().__init__(pattern)
        self.rounds = positive_int(rounds, "rounds")
        """Pruning rounds ``R``; each prunes ``1 - (1 - s) ** (1 / R)`` of what remains."""
        self.rewind_step = positive_int(rewind_step, "rewind_step", minimum=0)
        """``0``: survivors rewind to the initial weights; ``k``: to those recorded at step ``k``."""
        self.scope = check_scope(scope)
        """For mappings: ``"layer"`` (every array pruned by the same fraction) or ``"global"``."""
        if self.scope == "global" and self.pattern.kind in NM_KINDS:
            msg = (
                f"scope='global' ranks single weights across arrays; the pattern {self.pattern} is per group: "
                "use scope='layer'"
            )
            raise ValueError(msg)
        self._rewind: Tree | None = None

    # -- rewind point -------------------------------------------------------------
    def record_rewind_point(self, weights: Tree) -> None:
        """Store a copy of ``weights`` (array or mapping) as the values survivors rewind to.

        Call it before training (``rewind_step=0``) or at step ``rewind_step`` of
        the dense training. A later call replaces the stored point.
        """
        _check_float_tree(weights, "weights")
        self._rewind = map_tree(copy_array, weights)

    @property
    def rewind_point(self) -> Tree | None:
        """The stored rewind weights (a copy), or ``None``."""
        return self._rewind

    def clear_rewind_point(self) -> None:
        """Forget the stored rewind weights."""
        self._rewind = None

    # -- the strategy interface ---------------------------------------------------
    def compute_importance_scores(self, weights: Tree, gradients: Tree | None = None) -> Tree:
        """``|w|``: each round ranks the surviving weights by magnitude."""
        if gradients is not None:
            check_structure(weights, gradients, "weights", "gradients")
        return map_tree(magnitude_scores, weights)

    # -- the procedure ------------------------------------------------------------
    def run(
        self,
        weights: Tree,
        target_sparsity: float | None,
        train_fn: Callable[[Tree, Any, int], Any],
        /,
        *,
        train_dense: bool = False,
    ) -> LotteryTicketResult:
        """Prune, rewind and retrain for :attr:`rounds` rounds.

        Parameters
        ----------
        weights : array or (nested) mapping of named arrays
            With ``train_dense=False`` (default): the trained dense weights that
            round 1 prunes; a rewind point must have been recorded
            (:meth:`record_rewind_point`). With ``train_dense=True``: the initial
            weights; ``train_fn`` is first called with all-keep masks and round
            ``0`` to train them densely (with ``rewind_step=0`` and no recorded
            point, these initial weights are recorded first).
        target_sparsity : float, int or None
            Final sparsity (fraction, or a count for a single array or
            ``scope="global"``); ``None`` for N:M patterns (``n / m``).
        train_fn : callable
            ``train_fn(weights, masks, round)`` -> trained weights, or
            ``(trained weights, metrics)``. ``weights`` has the input's structure
            (mappings as nested dicts), survivors rewound and pruned values zero;
            ``masks`` is a :class:`~arraysparse.PruningMask` (array) or a
            :class:`arraysparse.model.ModelMask` keyed by flat names (mapping);
            ``round`` is ``1 .. rounds`` (``0`` for dense training). Keep the
            masked weights at zero while training (e.g. multiply the gradients
            or the weights by ``masks``); whatever it returns is masked again.

        Returns
        -------
        LotteryTicketResult
            ``weights`` (trained after the last round), ``masks``, ``history``.
        """
        if not callable(train_fn):
            msg = f"train_fn must be callable as train_fn(weights, masks, round), got {type(train_fn).__name__}"
            raise TypeError(msg)
        if not isinstance(train_dense, bool):
            msg = f"train_dense must be a bool, got {train_dense!r}"
            raise TypeError(msg)
        _check_float_tree(weights, "weights")
        like = weights
        flat = _flat(weights, "weights")
        counts = self._schedule(flat, target_sparsity)
        keep = {k: _all_keep(w) for k, w in flat.items()}
        history: list[dict[str, Any]] = []

        if train_dense:
            if self._rewind is None and self.rewind_step == 0:
                self.record_rewind_point(weights)
            start = {k: copy_array(w) for k, w in flat.items()}
            flat = self._train(train_fn, start, keep, like, 0, history, self._round_pattern(counts, 0))
        if self._rewind is None:
            msg = (
                f"no rewind point: call record_rewind_point(weights) at step {self.rewind_step} of "
                "training before run(), or use run(..., train_dense=True)"
                + (" with rewind_step=0" if self.rewind_step else "")
            )
            raise ValueError(msg)
        check_structure(like, self._rewind, "weights", "the rewind point")
        rewind = _flat(self._rewind, "rewind point")

        for r in range(1, self.rounds + 1):
            keep = self._prune_round(flat, keep, counts, r)
            start = {k: apply_mask(rewind[k], keep[k]) for k in flat}
            pattern = self._round_pattern(counts, r)
            flat = self._train(train_fn, start, keep, like, r, history, pattern)
        return LotteryTicketResult(_unflat(flat, like), _masks(keep, like, pattern, self.scope), history)

    def _schedule(self, flat: dict[str, Array], target_sparsity: Any) -> Any:
        """Per round: pruned counts per array (``layer``), over the model (``global``), or zeros per group (N:M)."""
        if self.pattern.kind in NM_KINDS:
            n, m = self.pattern.nm
            if target_sparsity is not None and (
                isinstance(target_sparsity, bool)
                or not isinstance(target_sparsity, (int, float))
                or not math.isclose(float(target_sparsity), n / m)
            ):
                msg = f"target_sparsity={target_sparsity!r} disagrees with the pattern {self.pattern}; pass None"
                raise ValueError(msg)
            for w in flat.values():
                nm_mask(magnitude_scores(w), n, m, axis=self.pattern.axis_or(-1))  # shape checks, named errors
            return round_counts(n, m, self.rounds)
        if target_sparsity is None:
            msg = "target_sparsity is required for the pattern unstructured"
            raise ValueError(msg)
        if self.scope == "global" or len(flat) == 1:
            total = sum(math.prod(w.shape) for w in flat.values())
            return round_counts(target_sparsity, total, self.rounds)
        if isinstance(target_sparsity, int) and not isinstance(target_sparsity, bool):
            msg = (
                f"target_sparsity={target_sparsity} is a count; with scope='layer' give a fraction "
                "(every array is pruned by it), or use scope='global' for a count over the model"
            )
            raise TypeError(msg)
        return {k: round_counts(target_sparsity, math.prod(w.shape), self.rounds) for k, w in flat.items()}

    def _prune_round(
        self, flat: dict[str, Array], keep: dict[str, Array], counts: Any, r: int
    ) -> dict[str, Array]:
        # pruned weights rank below every survivor, so each round's mask lies inside the last
        scores = {k: _survivor_scores(w, keep[k]) for k, w in flat.items()}
        if self.pattern.kind in NM_KINDS:
            n_r, m = counts[r - 1], self.pattern.nm[1]
            return {k: nm_mask(s, n_r, m, axis=self.pattern.axis_or(-1)).mask for k, s in scores.items()}
        if isinstance(counts, dict):
            return {k: topk_mask(s, counts[k][r - 1]).mask for k, s in scores.items()}
        if len(scores) == 1:
            ((k, s),) = scores.items()
            return {k: topk_mask(s, counts[r - 1]).mask}
        return global_keep(scores, counts[r - 1])

    def _train(
        self,
        train_fn: Callable[..., Any],
        start: dict[str, Array],
        keep: dict[str, Array],
        like: Tree,
        r: int,
        history: list[dict[str, Any]],
        pattern: SparsityPattern,
    ) -> dict[str, Array]:
        masks = _masks(keep, like, pattern, self.scope)
        out = train_fn(_unflat(start, like), masks, r)
        metrics = None
        if isinstance(out, tuple):
            if len(out) != 2:
                msg = (
                    f"train_fn returned a tuple of {len(out)} items in round {r}; "
                    "return weights or (weights, metrics)"
                )
                raise TypeError(msg)
            out, metrics = out
        if out is None:
            msg = f"train_fn returned None in round {r}; it must return the trained weights (or (weights, metrics))"
            raise TypeError(msg)
        check_structure(like, out, "weights", f"the weights train_fn returned in round {r}")
        trained = _flat(out, "trained weights")
        flat = {k: apply_mask(trained[k], keep[k]) for k in trained}
        pruned = {k: int(math.prod(keep[k].shape)) - _count(keep[k]) for k in keep}
        size = sum(math.prod(k.shape) for k in keep.values())
        record: dict[str, Any] = {
            "round": r,
            "sparsity": sum(pruned.values()) / size if size else 0.0,
            "pruned": sum(pruned.values()),
        }
        if is_tree(like):
            record["layer_sparsity"] = {
                k: (pruned[k] / math.prod(keep[k].shape) if math.prod(keep[k].shape) else 0.0) for k in keep
            }
        record["metrics"] = metrics
        history.append(record)
        return flat

    def _round_pattern(self, counts: Any, r: int) -> SparsityPattern:
        """The pattern of round ``r``'s masks: ``n_r:m`` for N:M (``0:m`` dense), else unstructured."""
        if self.pattern.kind not in NM_KINDS:
            return SparsityPattern.unstructured()
        n_r = counts[r - 1] if r else 0
        return SparsityPattern.n_m(n_r, self.pattern.nm[1], axis=self.pattern.axis_or(-1))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(pattern={self.pattern}, rounds={self.rounds}, "
            f"rewind_step={self.rewind_step}, scope={self.scope!r})"
        )


def _flat(tree: Tree, name: str) -> dict[str, Array]:
    return flatten(tree, name) if is_tree(tree) else {"": tree}


def _unflat(flat: dict[str, Array], like: Tree) -> Tree:
    return unflatten(flat, like) if is_tree(like) else flat[""]


def _masks(keep: dict[str, Array], like: Tree, pattern: SparsityPattern, scope: str) -> Any:
    if not is_tree(like):
        return PruningMask(keep[""], pattern)
    return wrap_masks({k: PruningMask(v, pattern) for k, v in keep.items()}, f"lottery ticket, {scope}")


def _check_float_tree(tree: Tree, name: str) -> None:
    for key, w in _flat(tree, name).items():
        label = f"{name}[{key!r}]" if key else name
        xp = array_namespace(**{label: w})
        if not isdtype(xp, w.dtype, "real floating"):
            msg = f"{label} has dtype {w.dtype}; the lottery ticket trains real floating weights"
            raise TypeError(msg)


def _all_keep(w: Array) -> Array:
    xp = array_namespace(weights=w)
    return xp.ones(tuple(w.shape), dtype=xp.bool, device=device(w))


def _survivor_scores(w: Array, keep: Array) -> Array:
    """``|w|`` for survivors, ``-inf`` for pruned weights (they stay pruned, whatever ties)."""
    xp = array_namespace(weights=w)
    return xp.where(keep, xp.abs(w), xp.asarray(-math.inf, dtype=w.dtype, device=device(w)))


def _count(keep: Array) -> int:
    xp = array_namespace(mask=keep)
    return count_true(xp, keep)

