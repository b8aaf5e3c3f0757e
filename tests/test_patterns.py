"""SparsityPattern: the seed's eight kinds with their parameters, validated on construction."""

from __future__ import annotations

import pytest

from arraysparse import PatternKind, SparsityPattern

SEED_MEMBERS = [
    "UNSTRUCTURED",
    "ROW_STRUCTURED",
    "COLUMN_STRUCTURED",
    "FILTER_STRUCTURED",
    "CHANNEL_STRUCTURED",
    "BLOCK_STRUCTURED",
    "STRUCTURED_2TO4",
    "STRUCTURED_NTOM",
]


def test_the_seed_members_exist() -> None:
    for name in SEED_MEMBERS:
        assert isinstance(PatternKind[name], PatternKind)


@pytest.mark.parametrize(
    ("pattern", "kind", "axis", "structured"),
    [
        (SparsityPattern.unstructured(), PatternKind.UNSTRUCTURED, None, False),
        (SparsityPattern.rows(), PatternKind.ROW_STRUCTURED, 0, True),
        (SparsityPattern.columns(), PatternKind.COLUMN_STRUCTURED, -1, True),
        (SparsityPattern.filters(), PatternKind.FILTER_STRUCTURED, 0, True),
        (SparsityPattern.channels(), PatternKind.CHANNEL_STRUCTURED, 1, True),
        (SparsityPattern.channels(axis=3), PatternKind.CHANNEL_STRUCTURED, 3, True),
        (SparsityPattern.slices(2), PatternKind.SLICE_STRUCTURED, 2, True),
        (SparsityPattern.two_four(), PatternKind.STRUCTURED_2TO4, -1, False),
        (SparsityPattern.n_m(3, 8, axis=0), PatternKind.STRUCTURED_NTOM, 0, False),
    ],
)
def test_kinds_and_parameters(pattern, kind, axis, structured) -> None:
    assert pattern.kind is kind
    assert pattern.axis == axis
    assert pattern.is_structured is structured


def test_nm_parameters_and_sparsity() -> None:
    p = SparsityPattern.n_m(3, 8)
    assert (p.n, p.m, p.nm, p.sparsity, p.is_n_m) == (3, 8, (3, 8), 0.375, True)
    assert SparsityPattern.n_m(2, 4) == SparsityPattern.two_four()
    assert SparsityPattern.two_four().nm == (2, 4)
    assert SparsityPattern.rows().sparsity is None
    with pytest.raises(TypeError, match="no n and m"):
        _ = SparsityPattern.rows().nm


def test_blocks_and_strings() -> None:
    b = SparsityPattern.blocks([4, 2])
    assert b.block == (4, 2) and b.kind is PatternKind.BLOCK_STRUCTURED
    assert str(b) == "blocks 4x2"
    assert str(SparsityPattern.two_four()) == "2:4 (n zeros per m, axis=-1)"
    assert str(SparsityPattern.filters()) == "filters (axis=0)"
    assert hash(SparsityPattern.rows()) == hash(SparsityPattern.rows())


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda: SparsityPattern.n_m(5, 4), ValueError, "n=5"),
        (lambda: SparsityPattern.n_m(1, 0), ValueError, "m=0"),
        (lambda: SparsityPattern.n_m(1.0, 4), TypeError, "n must be an int"),
        (lambda: SparsityPattern.blocks(()), ValueError, "empty"),
        (lambda: SparsityPattern.blocks((2, 0)), ValueError, "block=0"),
        (lambda: SparsityPattern.blocks(4), TypeError, "tuple of ints"),
        (lambda: SparsityPattern.rows(axis=1.5), TypeError, "axis must be an int"),
        (lambda: SparsityPattern.slices(True), TypeError, "axis must be an int"),
    ],
)
def test_bad_parameters(call, exc, match) -> None:
    with pytest.raises(exc, match=match):
        call()
