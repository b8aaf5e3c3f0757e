"""Griffe extension: render the Sphinx roles of arraysparse's docstrings as links.

The docstrings follow numpydoc and use Sphinx roles (``:func:`topk_mask```,
``:class:`~arraysparse.SparsityPattern```, ``:meth:`SparseCompressionResult.to_dense```).
mkdocstrings reads Markdown, so each role becomes an *optional* cross-reference:
``<autoref identifier="arraysparse.masks.topk_mask" optional><code>topk_mask</code></autoref>``,
a link where the API reference renders that object and plain code elsewhere (private
helpers), never a warning. A name that does not resolve stays plain code. reST's
``text::`` literal-block marker becomes ``text:`` (the indented block below it is a
Markdown code block already).
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:func|class|meth|attr|data|mod|obj|exc):`(?P<tilde>~?)(?P<target>[\w.]+)(?:\(\))?`")
_LITERAL = re.compile(r"(?<=\S)::$", re.MULTILINE)


class SphinxRoles(griffe.Extension):
    """Rewrite the roles of every docstring once the whole package is loaded."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        seen: set[int] = set()
        self._walk(pkg, seen)

    def _walk(self, obj: griffe.Object, seen: set[int]) -> None:
        if id(obj) in seen:
            return
        seen.add(id(obj))
        if obj.docstring is not None:
            obj.docstring.value = _rewrite(obj, obj.docstring.value)
        for member in obj.members.values():
            if not member.is_alias:
                self._walk(member, seen)


def _rewrite(obj: griffe.Object, text: str) -> str:
    def link(match: re.Match[str]) -> str:
        target = match["target"]
        shown = target.rsplit(".", 1)[-1] if match["tilde"] else target
        label = f"<code>{html.escape(shown)}</code>"
        path = _resolve(obj, target)
        if path is None:
            return label
        return f'<autoref identifier="{html.escape(path)}" optional>{label}</autoref>'

    return _LITERAL.sub(":", _ROLE.sub(link, text))


def _resolve(obj: griffe.Object, target: str) -> str | None:
    """The full path of ``target`` as seen from ``obj``'s scope, or None."""
    first, _, rest = target.partition(".")
    candidates = []
    try:
        candidates.append(obj.resolve(first) + (f".{rest}" if rest else ""))
    except (griffe.NameResolutionError, Exception):  # noqa: BLE001 - griffe raises several kinds
        pass
    candidates += [target, f"arraysparse.{target}"]
    package = obj.package
    for path in candidates:
        if not path.startswith(package.path):
            continue
        try:
            found = package[path[len(package.path) + 1 :]] if path != package.path else package
        except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
            continue
        try:
            return found.final_target.path if found.is_alias else found.path
        except (griffe.AliasResolutionError, griffe.CyclicAliasError):
            return path
    return None
