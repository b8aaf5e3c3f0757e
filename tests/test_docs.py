"""The documentation runs: every Python block of README.md and docs/, and the site build.

Python blocks
-------------
Every fenced block whose info string is ``python`` (or ``py``) in ``README.md`` and in
``docs/**/*.md`` (found by glob: a new page needs no registration here) is
executed, in file order, in one namespace per file, as a reader pasting the
blocks one after another would; the working directory is a fresh temporary
directory, so nothing is written into the checkout. Each block is a subtest
(``pytest`` reports ``SUBFAILED[README.md:42]``); after a failure the rest of
that file is skipped. Blocks with another info string (``sh``, ``text``,
``pycon``, none) are not run.

HTML comments on the lines right before a block (GitHub and the site hide
them) say how to run it; several may be stacked, one ``key: value`` each:

``<!-- raises: ValueError -->``
    The block must raise this exception (or a subclass; any name in the
    raised exception's class hierarchy). ``<!-- raises: ValueError: 2:4 -->``
    also requires ``re.search("2:4", str(exc))``. Statements after the one
    that raises do not run, so keep such a block to that statement.
``<!-- requires: torch scipy -->``
    Skip the block unless these modules import. ``cupy`` also needs a CUDA
    device, and ``cuda`` means torch with a CUDA device. A block that fails
    with ``ModuleNotFoundError`` for an optional package (anything but
    arraysparse's own dependencies) is skipped as if it had said so, and a
    later block of the file that fails with ``NameError`` after a skipped block
    is skipped with it.
``<!-- skip: reason -->``
    Not run at all (pseudo-code, placeholders). Use sparingly.
``<!-- output -->`` before a ``text`` block
    That block is what the Python block right above it prints (all of its
    stdout), compared as a doctest would with ``NORMALIZE_WHITESPACE`` and
    ``ELLIPSIS`` (``...`` matches anything).

A line of a block that ends in a ``# -> expected`` comment claims a value: if
the statement on that line is ``print(...)`` what it prints, otherwise the
``repr`` of the expression (as the interactive prompt shows it), must match
``expected`` under the same doctest rules. Lines with a plain ``#`` comment are
not checked.

The site
--------
``test_site_builds_strict`` runs ``mkdocs build --strict`` into a temporary
directory (mkdocs and the mkdocstrings handler are in the ``docs`` and ``test``
extras; the test skips only where mkdocs is not installed). ``mkdocs.yml``
turns broken links and anchors, and pages left out of ``nav``, into warnings,
so ``--strict`` fails on them. A new page is one ``nav`` line in ``mkdocs.yml``.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import doctest
import importlib
import importlib.util
import io
import os
import re
import subprocess
import sys
import time
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

#: Modules a block may need without saying so: arraysparse's own dependencies.
REQUIRED = {"arraysparse", "numpy", "numba", "array_api_compat"}
MARKER_KEYS = {"raises", "requires", "skip", "output"}
PYTHON = {"python", "py", "python3"}  # info strings of the blocks that run

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\s]*)[^`]*$")
_MARKER = re.compile(r"^\s*<!--\s*(?P<key>[\w-]+)\s*(?::\s*(?P<value>.*?))?\s*-->\s*$")
_CLAIM = re.compile(r"#\s*->\s*(?P<want>.*?)\s*$")
_CHECKER = doctest.OutputChecker()
_FLAGS = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS


@dataclasses.dataclass
class Block:
    path: Path
    line: int  # 1-based line of the first code line in the file
    info: str
    code: str
    markers: dict[str, str]
    output: Block | None = None  # the <!-- output --> text block after it

    @property
    def name(self) -> str:
        return f"{_rel(self.path)}:{self.line}"


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def parse_blocks(path: Path) -> list[Block]:
    """The fenced blocks of a Markdown file, with the markers in front of each."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, fence, info = opening["indent"], opening["fence"], opening["info"].lower()
        markers = _markers_before(lines, i, path)
        body: list[str] = []
        j = i + 1
        while j < len(lines):
            closing = lines[j].strip()
            if closing.startswith(fence[0] * len(fence)) and not closing.strip(fence[0]):
                break
            text = lines[j]
            body.append(text[len(indent) :] if text.startswith(indent) else text.lstrip())
            j += 1
        else:
            msg = f"{path}:{i + 1}: the code fence is never closed"
            raise AssertionError(msg)
        blocks.append(Block(path, i + 2, info, "\n".join(body) + "\n", markers))
        i = j + 1
    runnable: list[Block] = []
    for k, block in enumerate(blocks):
        if "output" in block.markers:
            before = blocks[k - 1] if k else None
            if block.info != "text" or before is None or before.info not in PYTHON:
                msg = f"{block.name}: <!-- output --> marks a text block right after a python block"
                raise AssertionError(msg)
            before.output = block
        elif block.info in PYTHON:
            runnable.append(block)
    return runnable


def _markers_before(lines: list[str], i: int, path: Path) -> dict[str, str]:
    markers: dict[str, str] = {}
    k = i - 1
    while k >= 0 and not lines[k].strip():
        k -= 1
    while k >= 0 and (found := _MARKER.match(lines[k])):
        key = found["key"]
        if key not in MARKER_KEYS:
            msg = f"{path}:{k + 1}: unknown block marker {key!r}; use one of {sorted(MARKER_KEYS)}"
            raise AssertionError(msg)
        markers[key] = found["value"] or ""
        k -= 1
    return markers


def _missing(requirement: str) -> str | None:
    """Why ``requirement`` (a module name, or ``cuda``) is not available, or ``None``."""
    module = "torch" if requirement == "cuda" else requirement
    if importlib.util.find_spec(module) is None:
        return f"needs {module}"
    if requirement == "cupy":
        try:
            import cupy

            cupy.cuda.runtime.getDeviceCount()
        except Exception:  # noqa: BLE001 - no driver, no device
            return "needs a CUDA device for cupy"
    if requirement == "cuda":
        import torch

        if not torch.cuda.is_available():
            return "needs a CUDA device for torch"
    return None


class _Claims(ast.NodeTransformer):
    """Route every statement whose line ends in ``# -> ...`` through ``__docs_claim__``."""

    def __init__(self, claimed: set[int]):
        self.claimed = claimed

    def visit_Expr(self, node: ast.Expr) -> ast.AST:
        end = node.end_lineno or node.lineno
        if end not in self.claimed:
            return node
        value = node.value
        is_print = isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "print"
        call = ast.Call(
            func=ast.Name("__docs_claim__", ast.Load()),
            args=[ast.Constant(end), ast.Constant(is_print), ast.Lambda(_no_args(), value)],
            keywords=[],
        )
        return ast.copy_location(ast.Expr(call), node)


def _no_args() -> ast.arguments:
    return ast.arguments(posonlyargs=[], args=[], vararg=None, kwonlyargs=[], kw_defaults=[], kwarg=None, defaults=[])


def _claims(block: Block) -> dict[int, str]:
    """File line -> expected text, for the lines with a ``# -> expected`` comment."""
    found: dict[int, str] = {}
    tokens = tokenize.generate_tokens(io.StringIO(block.code).readline)
    for tok in tokens:
        if tok.type == tokenize.COMMENT and (claim := _CLAIM.match(tok.string)):
            found[block.line + tok.start[0] - 1] = claim["want"]
    return found


def _matches(want: str, got: str) -> bool:
    return _CHECKER.check_output(want.strip() + "\n", got.strip() + "\n", _FLAGS)


def run_block(block: Block, namespace: dict) -> None:
    """Execute ``block`` in ``namespace``; raise AssertionError when it breaks a promise."""
    claims = _claims(block)
    tree = ast.parse(block.code, filename=str(block.path))
    ast.increment_lineno(tree, block.line - 1)  # tracebacks point into the Markdown file
    tree = ast.fix_missing_locations(_Claims(set(claims)).visit(tree))
    code = compile(tree, str(block.path), "exec")
    seen: dict[int, str] = {}

    def claim(line: int, is_print: bool, thunk):
        if is_print:
            buf = io.StringIO()
            with contextlib.redirect_stdout(_Tee(buf, sys.stdout)):
                result = thunk()
            seen[line] = seen.get(line, "") + buf.getvalue()
            return result
        result = thunk()
        seen[line] = seen.get(line, "") + repr(result) + "\n"
        return result

    namespace["__docs_claim__"] = claim
    stdout = io.StringIO()
    expected = block.markers.get("raises")
    try:
        with contextlib.redirect_stdout(_Tee(stdout, sys.stdout)):
            exec(code, namespace)
    except Exception as exc:
        if expected is None:
            raise
        name, _, pattern = expected.partition(":")
        names = {k.__name__ for k in type(exc).__mro__}
        if name.strip() not in names:
            msg = f"{block.name}: expected {name.strip()}, got {type(exc).__name__}: {exc}"
            raise AssertionError(msg) from exc
        if pattern.strip() and not re.search(pattern.strip(), str(exc)):
            msg = f"{block.name}: {type(exc).__name__} {str(exc)!r} does not match {pattern.strip()!r}"
            raise AssertionError(msg) from exc
    else:
        if expected is not None:
            msg = f"{block.name}: expected {expected} to be raised, nothing was"
            raise AssertionError(msg)
    finally:
        namespace.pop("__docs_claim__", None)
    for line, want in claims.items():
        if line not in seen:
            msg = f"{_rel(block.path)}:{line}: claims '# -> {want}' but the line never ran as an expression"
            raise AssertionError(msg)
        if not _matches(want, seen[line]):
            msg = f"{_rel(block.path)}:{line}: claims {want!r}, got {seen[line].strip()!r}"
            raise AssertionError(msg)
    if block.output is not None and not _matches(block.output.code, stdout.getvalue()):
        msg = f"{block.output.name}: the block above printed\n{stdout.getvalue()}\nnot\n{block.output.code}"
        raise AssertionError(msg)


class _Tee(io.TextIOBase):
    def __init__(self, *streams):
        self.streams = streams

    def write(self, s: str) -> int:
        for stream in self.streams:
            stream.write(s)
        return len(s)


def _module_not_found(exc: BaseException) -> str | None:
    """The optional top-level module a ``ModuleNotFoundError`` is about, if any."""
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        top = exc.name.split(".")[0]
        if top not in REQUIRED:
            return top
    return None


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_python_blocks(path: Path, subtests, tmp_path, monkeypatch) -> None:
    """Every ``python`` block of the file runs, in order, in one namespace."""
    blocks = parse_blocks(path)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__main__"}
    skipped: list[str] = []
    failed: str | None = None
    for block in blocks:
        with subtests.test(msg=block.name):
            if failed:
                pytest.skip(f"an earlier block failed ({failed})")
            if "skip" in block.markers:
                pytest.skip(block.markers["skip"] or "marked skip")
            reasons = [r for req in block.markers.get("requires", "").replace(",", " ").split() if (r := _missing(req))]
            if reasons:
                skipped.append(block.name)
                pytest.skip("; ".join(reasons))
            try:
                run_block(block, namespace)
            except Exception as exc:
                if (module := _module_not_found(exc)) and "raises" not in block.markers:
                    skipped.append(block.name)
                    pytest.skip(f"needs {module}")
                if isinstance(exc, NameError) and skipped:
                    skipped.append(block.name)
                    pytest.skip(f"uses a name from a skipped block ({skipped[0]}): {exc}")
                failed = block.name
                raise


def test_block_runner_conventions(tmp_path) -> None:
    """The runner itself: markers, claims and outputs catch what they promise to."""
    page = tmp_path / "page.md"
    page.write_text(
        "<!-- requires: numpy -->\n```python\nx = [1, 2]\nprint(len(x))  # -> 2\nx  # -> [1, ...]\n```\n\n"
        "<!-- raises: ZeroDivisionError: division -->\n```python\n1 / 0\n```\n\n"
        "```python\nprint('a  b')\n```\n<!-- output -->\n```text\na b\n```\n\n"
        "- item\n\n  ```python\n  y = x\n  ```\n"
    )
    blocks = parse_blocks(page)
    assert [b.line for b in blocks] == [3, 10, 14, 24]
    namespace: dict = {}
    for block in blocks:
        run_block(block, namespace)
    assert namespace["y"] == [1, 2]
    wrong = [
        ("```python\nprint(3)  # -> 4\n```\n", "claims '4'"),
        ("<!-- raises: KeyError -->\n```python\n1 / 0\n```\n", "expected KeyError"),
        ("<!-- raises: ValueError -->\n```python\npass\n```\n", "nothing was"),
        ("```python\nprint(1)\n```\n<!-- output -->\n```text\n2\n```\n", "printed"),
    ]
    for text, message in wrong:
        page.write_text(text)
        (block,) = parse_blocks(page)
        with pytest.raises(AssertionError, match=message):
            run_block(block, {})
    page.write_text("<!-- raise: ValueError -->\n```python\npass\n```\n")
    with pytest.raises(AssertionError, match="unknown block marker"):
        parse_blocks(page)


@pytest.mark.parametrize("name", ["README.md", "CONTRIBUTING.md"])
def test_repository_links_resolve(name: str) -> None:
    """Relative links of the Markdown files outside the site point at files that exist."""
    path = ROOT / name
    if not path.exists():
        pytest.skip(f"no {name}")
    text = re.sub(r"`[^`\n]*`", "", path.read_text(encoding="utf-8"))  # links shown as code are examples
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    local = [link.split("#")[0] for link in links if not re.match(r"[a-z]+:", link) and not link.startswith("#")]
    broken = [link for link in local if link and not (ROOT / link).exists()]
    assert not broken, f"{name} links to missing files: {broken}"


# -- the site ---------------------------------------------------------------------
def test_site_builds_strict(tmp_path) -> None:
    """``mkdocs build --strict``: no warning (broken link, anchor, docstring, nav) anywhere."""
    for module in ("mkdocs", "material", "mkdocstrings_handlers.python"):
        try:
            importlib.import_module(module)
        except ImportError:
            pytest.skip(f"{module} is not installed; pip install -e '.[docs]' (the test extra has it)")
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
         "--site-dir", str(tmp_path / "site")],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},  # Material's banner about MkDocs 2
    )
    seconds = time.perf_counter() - start
    assert out.returncode == 0, out.stdout + out.stderr
    assert "WARNING" not in out.stderr, out.stderr
    assert (tmp_path / "site" / "index.html").exists()
    assert (tmp_path / "site" / "api" / "masks" / "index.html").exists()
    print(f"mkdocs build --strict: {seconds:.1f} s")
