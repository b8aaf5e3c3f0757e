"""Arrays or (nested) mappings of named arrays, for the strategies that take a whole model.

A "model" is a mapping of names to arrays, nested mappings allowed; flat names join
the levels with ``"."`` (the convention of :mod:`arraysparse.model`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .._compat import array_namespace, backend_name
from .._model.tree import flatten_model, unflatten_model

Array = Any
Tree = Any  # an array or a (nested) Mapping[str, Tree]


def is_tree(x: object) -> bool:
    """Whether ``x`` is a mapping of named arrays rather than one array."""
    return isinstance(x, Mapping)


def flatten(tree: Mapping, name: str, *, arrays: bool = True) -> dict[str, Array]:
    """``{dotted name: leaf}`` in mapping order (:func:`arraysparse.model.flatten_model`).

    ``ValueError`` for an empty mapping; with ``arrays`` every leaf must be an array
    (``TypeError`` naming the entry).
    """
    flat = flatten_model(tree)
    if not flat:
        msg = f"{name} is an empty mapping; give at least one named array"
        raise ValueError(msg)
    if arrays:
        for full, value in flat.items():
            array_namespace(**{f"{name}[{full!r}]": value})
    return flat


def unflatten(flat: Mapping[str, Array], like: Mapping) -> dict[str, Any]:
    """Plain dicts with the nesting (and key order) of ``like``, values from ``flat``."""
    return unflatten_model(flat, like=like)


def map_tree(fn: Callable[..., Array], tree: Tree, *others: Tree) -> Tree:
    """``fn`` applied leaf by leaf to trees of one structure (checked by the caller)."""
    if not is_tree(tree):
        return fn(tree, *others)
    return {k: map_tree(fn, v, *(o[k] for o in others)) for k, v in tree.items()}


def check_structure(
    ref: Tree, other: Tree, ref_name: str, other_name: str, *, shapes: bool = True
) -> None:
    """Same kind (array vs mapping), same flat names in the same order and, with ``shapes``, same shapes."""
    if is_tree(ref) != is_tree(other):
        kinds = ("a mapping" if is_tree(ref) else "an array", "a mapping" if is_tree(other) else "an array")
        msg = f"{other_name} is {kinds[1]} but {ref_name} is {kinds[0]}; give both in one structure"
        raise TypeError(msg)
    if not is_tree(ref):
        array_namespace(**{ref_name: ref, other_name: other})
        if shapes and tuple(ref.shape) != tuple(other.shape):
            msg = f"{other_name} has shape {tuple(other.shape)} but {ref_name} has shape {tuple(ref.shape)}"
            raise ValueError(msg)
        return
    a, b = flatten(ref, ref_name), flatten(other, other_name)
    if list(a) != list(b):
        missing = [k for k in a if k not in b]
        extra = [k for k in b if k not in a]
        detail = []
        if missing:
            detail.append(f"missing {missing}")
        if extra:
            detail.append(f"unexpected {extra}")
        if not detail:
            detail.append("the same names in another order")
        msg = f"{other_name} does not have the structure of {ref_name}: " + ", ".join(detail)
        raise ValueError(msg)
    for key in a:
        array_namespace(**{f"{ref_name}[{key!r}]": a[key], f"{other_name}[{key!r}]": b[key]})
        if shapes and tuple(a[key].shape) != tuple(b[key].shape):
            msg = (
                f"{other_name}[{key!r}] has shape {tuple(b[key].shape)} but "
                f"{ref_name}[{key!r}] has shape {tuple(a[key].shape)}"
            )
            raise ValueError(msg)


def detached(x: Array) -> Array:
    """Torch tensors that track gradients, read without their autograd graph."""
    if backend_name(x) == "torch" and x.requires_grad:
        return x.detach()
    return x


def copy_array(x: Array) -> Array:
    """A copy of ``x`` in its library and device, detached from any autograd graph."""
    xp = array_namespace(x=x)
    return xp.asarray(detached(x), copy=True)
