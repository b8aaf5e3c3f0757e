"""``scope="layer"``: every layer pruned to its own target by any strategy and pattern."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._compat import device
from ..masks import PruningMask, create_mask
from ..patterns import SparsityPattern
from ..strategies.base import PruningStrategy
from ..strategies.magnitude import MagnitudePruning
from .report import LayerReport, ModelMask
from .rules import NamePattern, Patterns, name_rules, on_layer, rule_label
from .tree import flatten_model, model_arrays

Array = Any


def layer_masks(
    model: Mapping[str, Any],
    /,
    sparsity: float | None = None,
    *,
    strategy: Any = None,
    pattern: SparsityPattern | None = None,
    gradients: Mapping[str, Any] | None = None,
    exclude: Patterns = (),
    overrides: Mapping[NamePattern, float | int | None] | None = None,
) -> ModelMask:
    """Prune every layer to its own target with any strategy and pattern.

    Parameters
    ----------
    model : mapping
        Names (nested mappings allowed) to weight arrays of one library.
    sparsity : float, int or None
        Each layer's target (fraction or count); ``None`` for N:M patterns.
    strategy : PruningStrategy, optional
        Scores each layer (default: :class:`~arraysparse.MagnitudePruning`).
    pattern : SparsityPattern, optional
        The mask pattern for every layer; default: the strategy's own.
    gradients : mapping, optional
        Same names as ``model`` (nesting may differ), required by strategies
        with ``requires_gradients`` for every layer they prune.
    exclude, overrides
        As in :func:`global_mask`; an override gives the layer's own target.

    Returns
    -------
    ModelMask
        One mask per flat name, excluded layers all kept, with a per-layer report.

    Raises
    ------
    ValueError
        For one layer (a pattern that does not fit its shape, a missing gradient,
        NaN scores): the message names that layer.

    Examples
    --------
    >>> import numpy as np
    >>> from arraysparse import SparsityPattern
    >>> from arraysparse.model import layer_masks
    >>> w = {"a": np.array([[1.0, -4.0, 2.0, 0.5]]), "b": np.array([3.0, 1.0])}
    >>> mm = layer_masks(w, pattern=SparsityPattern.two_four(), exclude="b")
    >>> mm["a"].mask
    array([[False,  True,  True, False]])
    >>> [r.rule for r in mm.report]
    ['layer', "excluded 'b'"]
    """
    xp, flat = model_arrays(model, "model")
    if strategy is None:
        strategy = MagnitudePruning(pattern)
    if not isinstance(strategy, PruningStrategy):
        msg = f"strategy must be a PruningStrategy, got {type(strategy).__name__}"
        raise TypeError(msg)
    if pattern is not None and not isinstance(pattern, SparsityPattern):
        msg = f"pattern must be a SparsityPattern, got {type(pattern).__name__}"
        raise TypeError(msg)
    names = list(flat)
    rules = name_rules(names, exclude, overrides)
    grads = gradients_of(gradients, flat, rules, strategy)

    masks: dict[str, PruningMask] = {}
    records: list[LayerReport] = []
    for name in names:
        w = flat[name]
        rule = rules.get(name)
        if rule is not None and rule[0] == "excluded":
            masks[name] = PruningMask(xp.ones(tuple(w.shape), dtype=xp.bool, device=device(w)))
            label = rule_label(rule)
        else:
            target = sparsity if rule is None else rule[2]
            masks[name] = on_layer(name, _layer_mask, strategy, pattern, w, grads.get(name), target)
            label = "layer" if rule is None else rule_label(rule)
        m = masks[name]
        records.append(LayerReport(name, m.shape, m.size, m.num_pruned, label))
    return ModelMask(masks, report=records)


def gradients_of(gradients: Any, flat: dict[str, Array], rules: dict, strategy: Any) -> dict[str, Array]:
    """The flat ``gradients``, checked against the model's names and the strategy's needs."""
    pruned = [n for n in flat if rules.get(n, ("",))[0] != "excluded"]
    if gradients is None:
        if strategy.requires_gradients:
            msg = f"{type(strategy).__name__} needs gradients: pass gradients={{name: array}} for the model"
            raise ValueError(msg)
        return {}
    grads = flatten_model(gradients)
    unknown = [n for n in grads if n not in flat]
    if unknown:
        msg = f"gradients has names the model lacks: {unknown[:5]}"
        raise ValueError(msg)
    if strategy.requires_gradients:
        missing = [n for n in pruned if n not in grads]
        if missing:
            msg = f"gradients lacks {len(missing)} pruned layer(s), first {missing[0]!r}"
            raise ValueError(msg)
    return grads


def _layer_mask(strategy: Any, pattern: SparsityPattern | None, w: Array, g: Array | None, target: Any) -> PruningMask:
    if pattern is None and type(strategy) is MagnitudePruning and g is None:
        return strategy.mask_from_weights(w, target)  # ranks |w| without a score array
    scores = strategy.compute_importance_scores(w, g)
    if pattern is None:
        return strategy.create_mask(scores, target)
    return create_mask(scores, target, pattern, ord=strategy.ord)
