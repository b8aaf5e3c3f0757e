"""Nested mappings of named arrays and their flat dotted names."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from .._compat import array_namespace

Array = Any


def leaves(model: Mapping, prefix: str = "") -> Iterator[tuple[Mapping, str, str, Any]]:
    """``(parent, key, flat_name, value)`` of every non-mapping value, in mapping order."""
    for key, value in model.items():
        if not isinstance(key, str):
            where = f"under {prefix!r}" if prefix else "at the top level"
            msg = f"model keys must be str, got {type(key).__name__} {key!r} {where}"
            raise TypeError(msg)
        if not key:
            where = f"under {prefix!r}" if prefix else "at the top level"
            msg = f"model keys must be non-empty strings; found '' {where}"
            raise ValueError(msg)
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, Mapping):
            yield from leaves(value, name)
        else:
            yield model, key, name, value


def flatten_model(model: Mapping[str, Any], /) -> dict[str, Any]:
    """A flat ``{dotted.name: value}`` dict of a nested mapping, in mapping order.

    Raises ``TypeError`` for a non-mapping or a non-string key and
    ``ValueError`` when two paths give the same dotted name
    (``{"a.b": x, "a": {"b": y}}``).

    Examples
    --------
    >>> import numpy as np
    >>> from arraysparse.model import flatten_model
    >>> list(flatten_model({"fc1": {"weight": np.ones(2), "bias": np.ones(1)}, "out": np.ones(3)}))
    ['fc1.weight', 'fc1.bias', 'out']
    """
    if not isinstance(model, Mapping):
        msg = f"model must be a mapping of names to arrays, got {type(model).__name__}"
        raise TypeError(msg)
    flat: dict[str, Any] = {}
    for _, _, name, value in leaves(model):
        if name in flat:
            msg = f"two entries of the model flatten to the same name {name!r}"
            raise ValueError(msg)
        flat[name] = value
    return flat


def unflatten_model(flat: Mapping[str, Any], /, like: Mapping[str, Any]) -> dict[str, Any]:
    """The values of ``flat`` nested as ``like`` is (plain dicts at every level).

    ``flat`` must have exactly the dotted names of ``like``'s leaves.

    Examples
    --------
    >>> from arraysparse.model import unflatten_model
    >>> unflatten_model({"fc.w": 1, "fc.b": 2}, like={"fc": {"w": 0, "b": 0}})
    {'fc': {'w': 1, 'b': 2}}
    """
    names = list(flatten_model(like))
    missing = [n for n in names if n not in flat]
    extra = [n for n in flat if n not in set(names)]
    if missing or extra:
        msg = f"flat does not have the names of like: missing {missing[:5]}, unexpected {extra[:5]}"
        raise ValueError(msg)

    def build(level: Mapping, prefix: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in level.items():
            name = f"{prefix}.{key}" if prefix else key
            out[key] = build(value, name) if isinstance(value, Mapping) else flat[name]
        return out

    return build(like, "")


def model_arrays(model: Any, what: str) -> tuple[Any, dict[str, Array]]:
    """Namespace and flat arrays of a model: non-empty, arrays only, one library and device."""
    flat = flatten_model(model)
    if not flat:
        msg = f"{what} holds no arrays"
        raise ValueError(msg)
    xp = array_namespace(**{f"{what}[{n!r}]": a for n, a in flat.items()})
    return xp, flat
