"""Every public object is documented, the API reference shows it, and its examples run.

The public surface is the union of ``__all__`` of ``arraysparse`` and of each public
submodule (no underscore in its dotted path), plus every object the API reference
renders (the ``::: identifier`` lines of ``docs/api/*.md``). For each public class,
every public member of it and of its arraysparse base classes counts:

* functions, methods, properties, class and static methods need their own
  docstring (an override documents what it does differently);
* data (enum members, class attributes, dataclass fields, slots, the ``self.x``
  attributes that methods set, module constants) need an attribute docstring (a
  string literal right after the assignment, which the API reference shows), or
  an entry in the ``Attributes`` section of the class's (or a base class's)
  docstring.

Docstring examples (``>>>``) of every module of the package run as doctests with
``NORMALIZE_WHITESPACE`` and ``ELLIPSIS``, in a fresh working directory.
"""

from __future__ import annotations

import ast
import dataclasses
import doctest
import enum
import importlib
import importlib.util
import inspect
import re
import textwrap
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

import arraysparse

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(arraysparse.__file__).parent
API_PAGES = sorted((ROOT / "docs" / "api").glob("*.md"))
_IDENTIFIER = re.compile(r"^:::\s+([\w.]+)", re.MULTILINE)


def _module_names(*, with_examples: bool = False) -> list[str]:
    """Every module of the package (or those whose source holds ``>>>``), by its file, importing nothing."""
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if with_examples and ">>>" not in path.read_text(encoding="utf-8"):
            continue
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def _public_modules() -> list[str]:
    return [n for n in _module_names() if not any(p.startswith("_") for p in n.split("."))]


def _resolve(identifier: str) -> object:
    """The object at a dotted path such as ``arraysparse.formats.nm.packed_layout``."""
    parts = identifier.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    msg = f"cannot import {identifier}"
    raise ImportError(msg)


def _rendered() -> list[str]:
    """The identifiers the API reference renders."""
    return [m for page in API_PAGES for m in _IDENTIFIER.findall(page.read_text())]


def public_objects() -> dict[str, object]:
    """Dotted name -> object for the whole public surface (see the module docstring)."""
    found: dict[str, object] = {}
    for name in _public_modules():
        module = importlib.import_module(name)
        found[name] = module
        for attr in getattr(module, "__all__", ()):
            found.setdefault(f"{name}.{attr}", getattr(module, attr))
    for identifier in _rendered():
        found.setdefault(identifier, _resolve(identifier))
    return found


# -- where a data attribute is documented -------------------------------------------
@cache
def _source_tree(obj: object) -> ast.Module | None:
    try:
        return ast.parse(textwrap.dedent(inspect.getsource(obj)))
    except (OSError, TypeError):
        return None


def _followed_by_string(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Assignments in ``body`` that a string literal follows (attribute docstrings)."""
    for stmt, after in zip(body, body[1:]):
        if (
            isinstance(stmt, (ast.Assign, ast.AnnAssign))
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
            and after.value.value.strip()
        ):
            yield stmt


def _targets(stmt: ast.stmt) -> Iterator[ast.expr]:
    yield from stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]


@cache
def _attribute_docstrings(klass: type) -> frozenset[str]:
    """Names given an attribute docstring in ``klass``'s body or as ``self.x`` in its methods."""
    tree = _source_tree(klass)
    if tree is None:
        return frozenset()
    (node,) = [n for n in tree.body if isinstance(n, ast.ClassDef)]
    names = {t.id for s in _followed_by_string(node.body) for t in _targets(s) if isinstance(t, ast.Name)}
    for method in node.body:
        if isinstance(method, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for block in ast.walk(method):
                body = getattr(block, "body", [])
                for s in _followed_by_string(body if isinstance(body, list) else []):
                    names |= {t.attr for t in _targets(s) if isinstance(t, ast.Attribute) and _is_self(t.value)}
    return frozenset(names)


def _is_self(node: ast.expr) -> bool:
    return isinstance(node, ast.Name) and node.id == "self"


@cache
def _instance_attributes(klass: type) -> frozenset[str]:
    """Public names that ``klass``'s methods assign as ``self.name = ...``."""
    tree = _source_tree(klass)
    if tree is None:
        return frozenset()
    names = set()
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        names |= {t.attr for t in targets if isinstance(t, ast.Attribute) and _is_self(t.value)}
    return frozenset(n for n in names if not n.startswith("_"))


def _attributes_section(doc: str | None) -> set[str]:
    """Names listed in a numpydoc ``Attributes`` section."""
    lines = inspect.cleandoc(doc or "").splitlines()
    names: set[str] = set()
    inside = False
    for i, line in enumerate(lines):
        header = i + 1 < len(lines) and set(lines[i + 1].strip()) == {"-"} and line.strip()
        if header:
            inside = line.strip() == "Attributes"
            continue
        if inside and line and not line[0].isspace() and not set(line) <= {"-"}:
            names |= {n.strip() for n in line.split(" : ")[0].split(",")}
    return names


def _module_constant_documented(module: object, name: str) -> bool:
    """Whether ``module`` (or the module it imports ``name`` from) gives ``name`` an attribute docstring."""
    tree = _source_tree(module)
    if tree is None:
        return False
    if any(isinstance(t, ast.Name) and t.id == name for s in _followed_by_string(tree.body) for t in _targets(s)):
        return True
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and any(a.name == name and a.asname is None for a in node.names):
            origin = importlib.util.resolve_name("." * node.level + (node.module or ""), module.__package__)
            return _module_constant_documented(importlib.import_module(origin), name)
    return False


def _arraysparse_mro(klass: type) -> list[type]:
    """``klass`` and its bases from the same top-level package (not ``object``, ``enum``, ...)."""
    top = klass.__module__.split(".")[0]
    return [k for k in klass.__mro__ if k.__module__.split(".")[0] == top]


def _data_documented(klass: type, name: str) -> bool:
    return any(name in _attribute_docstrings(k) or name in _attributes_section(k.__doc__) for k in _arraysparse_mro(klass))


def _own_doc(obj: object) -> bool:
    if isinstance(obj, property):
        obj = obj.fget
    if isinstance(obj, (classmethod, staticmethod)):
        obj = obj.__func__
    return bool((getattr(obj, "__doc__", None) or "").strip())


def undocumented() -> list[str]:
    """Every public name on the surface without documentation, with what it is."""
    missing: list[str] = []
    for name, obj in public_objects().items():
        if inspect.ismodule(obj) or inspect.isclass(obj) or inspect.isroutine(obj):
            if not _own_doc(obj):
                missing.append(f"{name} has no docstring")
        else:
            module_name, _, attr = name.rpartition(".")
            owner = _resolve(module_name)
            if inspect.ismodule(owner) and not _module_constant_documented(owner, attr):
                missing.append(f"{name} (constant) has no attribute docstring")
        if inspect.isclass(obj):
            missing += _undocumented_members(name, obj)
    return sorted(set(missing))


def _undocumented_members(name: str, klass: type) -> list[str]:
    missing = []
    data: set[str] = set()
    for base in _arraysparse_mro(klass):
        for attr, value in vars(base).items():
            if attr.startswith("_"):
                continue
            where = f"{base.__module__}.{base.__qualname__}.{attr}"
            if isinstance(value, enum.Enum) or not (isinstance(value, (property, classmethod, staticmethod)) or inspect.isroutine(value)):
                data.add(attr)
            elif not _own_doc(value):
                missing.append(f"{where} ({type(value).__name__}) has no docstring")
        data |= _instance_attributes(base)
        if dataclasses.is_dataclass(base):
            data |= {f.name for f in dataclasses.fields(base) if not f.name.startswith("_")}
    for attr in sorted(data):
        if not _data_documented(klass, attr):
            missing.append(f"{name}.{attr} (attribute) is documented neither by an attribute docstring nor under Attributes")
    return missing


def test_public_api_is_documented() -> None:
    missing = undocumented()
    assert not missing, "\n".join(missing)


def test_api_reference_shows_every_public_name() -> None:
    """Each name of ``arraysparse.__all__`` has an entry in docs/api (by that name or where it lives)."""
    rendered = {id(_resolve(identifier)) for identifier in _rendered()}
    absent = [name for name in arraysparse.__all__ if id(getattr(arraysparse, name)) not in rendered]
    assert not absent, f"add to a page of docs/api: {absent}"


@dataclasses.dataclass
class _Point:
    """A point (the walk's own test subject).

    Attributes
    ----------
    x : int
    """

    x: int
    y: int
    origin = None

    def norm(self) -> int:
        return abs(self.x)

    def label(self) -> None:
        """Set a label."""
        self.tag = "p"
        self.note = "n"
        """Documented where it is set."""


def test_walk_finds_undocumented_members() -> None:
    """The walk itself: each kind of member it checks is caught when undocumented."""
    found = "\n".join(_undocumented_members("_Point", _Point))
    assert "_Point.norm (function)" in found
    assert "_Point.y (attribute)" in found
    assert "_Point.origin (attribute)" in found
    assert "_Point.tag (attribute)" in found
    assert "_Point.x " not in found
    assert "_Point.note " not in found


# -- docstring examples -------------------------------------------------------------
def _doctests(module_name: str) -> list[doctest.DocTest]:
    module = importlib.import_module(module_name)
    return [t for t in doctest.DocTestFinder().find(module) if t.examples]


@pytest.mark.parametrize("module_name", _module_names(with_examples=True))
def test_docstring_examples(module_name: str, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    tests = _doctests(module_name)
    assert tests, f"{module_name} has '>>>' in its source but no doctest was found"
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    report: list[str] = []
    for test in tests:
        runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)
