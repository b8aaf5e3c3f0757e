"""prune_model: a whole model pruned and masked in one call, either scope."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..patterns import PatternKind, SparsityPattern
from ..strategies.base import PruningStrategy
from ..strategies.magnitude import MagnitudePruning
from .report import ModelMask, with_zeros
from .rules import NamePattern, Patterns, name_rules, on_layer
from .scope_global import global_mask
from .scope_layer import gradients_of, layer_masks
from .tree import model_arrays


def prune_model(
    model: Mapping[str, Any],
    /,
    sparsity: float | None = None,
    *,
    scope: str = "global",
    strategy: Any = None,
    pattern: SparsityPattern | None = None,
    gradients: Mapping[str, Any] | None = None,
    exclude: Patterns = (),
    overrides: Mapping[NamePattern, Any] | None = None,
    min_sparsity: float = 0.0,
    max_sparsity: float = 1.0,
) -> tuple[dict[str, Any], ModelMask]:
    """Prune a whole model; returns ``(pruned_model, model_mask)``, ``model`` untouched.

    ``scope="global"`` ranks all pooled values together (:func:`global_mask`,
    unstructured only): the strategy's scores, or ``|w|`` computed on the fly
    with the default magnitude strategy. With another strategy, its scores
    of all pooled layers are held at once (one score array per layer).
    ``scope="layer"`` prunes each layer to ``sparsity`` (:func:`layer_masks`;
    any pattern; ``min_sparsity`` / ``max_sparsity`` do not apply).
    Dask models: the thresholds are eager as in :func:`global_mask` and
    :func:`~arraysparse.topk_mask`, the masks and pruned weights lazy.

    The report describes the returned model: each record's ``zeros`` counts
    the layer's zero values in it (the pruned ones and those it already had,
    say from an earlier call, excluded layers included) and ``report.sparsity``
    (the table's total) is the model's fraction of zeros; ``mm.sparsity`` stays
    the fraction the masks prune.

    Examples
    --------
    >>> import numpy as np
    >>> from arraysparse.model import prune_model
    >>> model = {"a": np.array([0.5, -1.0, 2.0]), "b": np.array([[0.1, 3.0]])}
    >>> pruned, mm = prune_model(model, 0.4)
    >>> pruned
    {'a': array([ 0., -1.,  2.]), 'b': array([[0., 3.]])}
    >>> mm.sparsity
    0.4
    """
    if scope == "layer":
        if min_sparsity != 0.0 or max_sparsity != 1.0:
            msg = "min_sparsity and max_sparsity bound a global threshold; with scope='layer' set each layer's sparsity"
            raise ValueError(msg)
        mm = layer_masks(
            model, sparsity, strategy=strategy, pattern=pattern, gradients=gradients,
            exclude=exclude, overrides=overrides,
        )
        return _pruned(model, mm)
    if scope != "global":
        msg = f"scope={scope!r} must be 'global' or 'layer'"
        raise ValueError(msg)
    if strategy is not None and not isinstance(strategy, PruningStrategy):
        msg = f"strategy must be a PruningStrategy, got {type(strategy).__name__}"
        raise TypeError(msg)
    chosen = pattern if pattern is not None else (strategy.pattern if strategy is not None else None)
    if chosen is not None and chosen.kind is not PatternKind.UNSTRUCTURED:
        msg = f"scope='global' ranks single values (unstructured); pattern {chosen} needs scope='layer'"
        raise ValueError(msg)
    if sparsity is None:
        msg = "sparsity is required with scope='global'"
        raise ValueError(msg)
    options = {"exclude": exclude, "overrides": overrides, "min_sparsity": min_sparsity, "max_sparsity": max_sparsity}
    if strategy is None or (type(strategy) is MagnitudePruning and gradients is None):
        model_arrays(model, "model")  # errors name model, not global_mask's scores
        mm = global_mask(model, sparsity, magnitude=True, **options)
        return _pruned(model, mm)
    _, flat = model_arrays(model, "model")
    rules = name_rules(list(flat), exclude, overrides)
    grads = gradients_of(gradients, flat, rules, strategy)
    scores = {
        n: (w if rules.get(n, ("",))[0] == "excluded"
            else on_layer(n, strategy.compute_importance_scores, w, grads.get(n)))
        for n, w in flat.items()
    }
    mm = global_mask(scores, sparsity, **options)
    return _pruned(model, mm)


def _pruned(model: Mapping[str, Any], mm: ModelMask) -> tuple[dict[str, Any], ModelMask]:
    """The pruned model, and ``mm`` with a report of it (zeros it already had counted)."""
    pruned = mm.apply(model)
    return pruned, with_zeros(mm, pruned)
