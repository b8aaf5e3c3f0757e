"""Which layers a name rule claims (``exclude``, ``overrides``), and errors named after their layer."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from typing import Any

NamePattern = str | re.Pattern
Patterns = NamePattern | Iterable[NamePattern] | None


def _pattern_list(patterns: Patterns, what: str) -> list[NamePattern]:
    if patterns is None:
        return []
    if isinstance(patterns, (str, re.Pattern)):
        patterns = [patterns]
    if not isinstance(patterns, Iterable):
        msg = f"{what} must be a glob string, a compiled re.Pattern or a list of them, got {type(patterns).__name__}"
        raise TypeError(msg)
    out = list(patterns)
    for p in out:
        if not isinstance(p, (str, re.Pattern)):
            msg = f"{what} entries must be glob strings or compiled re.Pattern, got {type(p).__name__} {p!r}"
            raise TypeError(msg)
    return out


def _matches(pattern: NamePattern, name: str) -> bool:
    if isinstance(pattern, str):
        return fnmatch.fnmatchcase(name, pattern)
    return pattern.search(name) is not None


def describe(pattern: NamePattern) -> str:
    return repr(pattern) if isinstance(pattern, str) else f"re.compile({pattern.pattern!r})"


def name_rules(
    names: list[str], exclude: Patterns, overrides: Mapping[NamePattern, Any] | None
) -> dict[str, tuple[str, NamePattern, Any]]:
    """``{name: ("excluded" | "override", pattern, sparsity)}`` for the names a rule claims.

    Exclusion wins over an override; among overrides the first matching
    pattern (in the mapping's order) wins. A pattern that matches no name is
    an error: it is almost always a typo.
    """
    excluded = _pattern_list(exclude, "exclude")
    if overrides is None:
        overrides = {}
    if not isinstance(overrides, Mapping):
        msg = f"overrides must be a mapping of name patterns to sparsities, got {type(overrides).__name__}"
        raise TypeError(msg)
    override_items = list(overrides.items())
    _pattern_list([p for p, _ in override_items], "overrides keys")
    rules: dict[str, tuple[str, NamePattern, Any]] = {}
    used: set[int] = set()
    for name in names:
        for i, p in enumerate(excluded):
            if _matches(p, name):
                used.add(i)
                rules.setdefault(name, ("excluded", p, None))
        for j, (p, s) in enumerate(override_items):
            if _matches(p, name):
                used.add(len(excluded) + j)
                rules.setdefault(name, ("override", p, s))
    every = [("exclude", p) for p in excluded] + [("overrides", p) for p, _ in override_items]
    for i, (what, p) in enumerate(every):
        if i not in used:
            shown = ", ".join(repr(n) for n in names[:6]) + (", ..." if len(names) > 6 else "")
            msg = f"{what} pattern {describe(p)} matches no layer (layers: {shown})"
            raise ValueError(msg)
    return rules


def rule_label(rule: tuple[str, NamePattern, Any]) -> str:
    kind, p, s = rule
    if kind == "excluded":
        return f"excluded {describe(p)}"
    return f"override {describe(p)} -> {s!r}"


def on_layer(name: str, fn: Any, *args: Any) -> Any:
    """``fn(*args)`` with the layer's name put in front of any error message."""
    try:
        return fn(*args)
    except (TypeError, ValueError) as e:
        raise type(e)(f"layer {name!r}: {e}") from None
