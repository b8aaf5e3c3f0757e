"""Masks over a whole model for the training strategies, through :mod:`arraysparse.model`'s pieces."""

from __future__ import annotations

from typing import Any

from .._model.report import LayerReport, ModelMask
from .._model.scope_global import global_mask
from ..masks import PruningMask, create_mask
from ..patterns import NM_KINDS, PatternKind
from ._tree import Tree, flatten

Array = Any

#: How a mapping is pruned: every array by the same fraction, or one threshold over all.
SCOPES = ("layer", "global")


def check_scope(scope: Any) -> str:
    if not isinstance(scope, str):
        msg = f"scope must be 'layer' or 'global', got {type(scope).__name__} {scope!r}"
        raise TypeError(msg)
    if scope not in SCOPES:
        msg = f"scope={scope!r} must be 'layer' or 'global'"
        raise ValueError(msg)
    return scope


def mapping_masks(strategy: Any, scores: Tree, sparsity: Any, scope: str) -> Any:
    """A ``ModelMask`` of ``strategy``'s pattern from a mapping of score arrays.

    ``scope="global"``: one threshold over every array (unstructured patterns);
    N:M patterns are built per array whatever the scope (the pattern fixes the
    sparsity of every group); structured patterns need ``scope="layer"``.
    """
    pattern = strategy.pattern
    if scope == "global" and pattern.kind is PatternKind.UNSTRUCTURED:
        if sparsity is None:
            msg = "sparsity is required for the pattern unstructured"
            raise ValueError(msg)
        return global_mask(scores, sparsity)
    if scope == "global" and pattern.kind not in NM_KINDS:
        msg = (
            f"scope='global' ranks single weights across arrays; the pattern {pattern} is built "
            f"per array: use {type(strategy).__name__}(..., scope='layer')"
        )
        raise ValueError(msg)
    flat = flatten(scores, "scores")
    masks = {}
    for key, s in flat.items():
        try:
            masks[key] = create_mask(s, sparsity, pattern, ord=strategy.ord)
        except (TypeError, ValueError) as e:
            raise type(e)(f"scores[{key!r}]: {e}") from None
    return wrap_masks(masks, "layer")


def global_keep(scores: dict[str, Array], count: int) -> dict[str, Array]:
    """Keep-arrays of one exact threshold over flat ``scores``: ``count`` lowest pruned overall."""
    masks = global_mask(scores, count)
    return {k: masks[k].mask for k in scores}


def wrap_masks(masks: dict[str, PruningMask], rule: str) -> Any:
    """``ModelMask`` from per-array masks keyed by flat names, ``rule`` in its report."""
    report = [LayerReport(k, m.shape, m.size, m.num_pruned, rule) for k, m in masks.items()]
    return ModelMask(masks, report=report)
