"""Wanda: parity with a NumPy transcription of the paper's code, exact per-row counts, layer comparison, errors."""

from __future__ import annotations

import array_api_compat
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from arraysparse.calibration import InputNormAccumulator
from arraysparse.masks import PruningMask
from arraysparse.patterns import PatternKind, SparsityPattern
from arraysparse.strategies.base import PruningStrategy
from arraysparse.strategies.wanda import WandaPruning, wanda_scores
from tests.backends import Backend, to_numpy
from tests.hooks import calibrate_through_hooks


def fed(target, *batches):
    """``target`` (an accumulator or a calibrating strategy) after feeding it ``batches``."""
    feed = target.calibrate if hasattr(target, "calibrate") else target.update
    for x in batches:
        assert feed(x) is None  # None, so that a torch forward hook may call it
    return target


SP = SparsityPattern
OUT, IN = 12, 16


def calibration(seed: int = 0, features: int = IN) -> list[np.ndarray]:
    """Three batches (batch, seq, features) with features of very different scales."""
    rng = np.random.default_rng(seed)
    scale = np.exp(rng.uniform(-2, 2, features))
    return [rng.standard_normal((2, 5, features)) * scale for _ in range(3)]


def reference_wanda(w: np.ndarray, xs: list[np.ndarray], sparsity: float = 0.0, prune_n: int = 0, prune_m: int = 0):
    """NumPy transcription of Wanda's prune_wanda (locuslab/wanda, lib/prune.py) and WrappedGPT.add_batch.

    Returns the keep-mask. torch.topk's ties are left open; stable argsort breaks them to the lower index.
    """
    scaler_row = np.zeros(w.shape[1])
    nsamples = 0
    for inp in xs:
        if inp.ndim == 2:
            inp = inp[None]
        tmp = inp.shape[0]
        inp = inp.reshape(-1, inp.shape[-1]).T
        scaler_row *= nsamples / (nsamples + tmp)
        nsamples += tmp
        scaler_row += np.linalg.norm(inp, ord=2, axis=1) ** 2 / nsamples
    w_metric = np.abs(w) * np.sqrt(scaler_row.reshape(1, -1))
    w_mask = np.zeros(w.shape, dtype=bool)  # True = pruned
    if prune_n != 0:
        for ii in range(w_metric.shape[1]):
            if ii % prune_m == 0:
                tmp = w_metric[:, ii : ii + prune_m]
                idx = np.argsort(tmp, axis=1, kind="stable")[:, :prune_n]
                np.put_along_axis(w_mask, ii + idx, True, axis=1)
    else:
        indices = np.argsort(w_metric, axis=-1, kind="stable")[:, : int(w_metric.shape[1] * sparsity)]
        np.put_along_axis(w_mask, indices, True, axis=1)
    return ~w_mask


def calibrated(backend: Backend, pattern=None, comparison="row", seed=0) -> WandaPruning:
    s = WandaPruning(pattern, comparison=comparison)
    for x in calibration(seed):
        s.calibrate(backend.asarray(x))
    return s


def same_library(result, like) -> bool:
    return array_api_compat.array_namespace(result) is array_api_compat.array_namespace(like) and str(
        array_api_compat.device(result)
    ) == str(array_api_compat.device(like))


# -- parity with the paper's code --------------------------------------------------------------
@pytest.mark.parametrize(
    "pattern, sparsity, nm",
    [
        (None, 0.5, (0, 0)),
        (None, 0.25, (0, 0)),
        (None, 0.75, (0, 0)),
        (SP.two_four(), None, (2, 4)),
        (SP.n_m(4, 8), None, (4, 8)),
        (SP.n_m(1, 4), None, (1, 4)),
    ],
)
def test_matches_reference(backend: Backend, pattern, sparsity, nm) -> None:
    """Masks equal the transcription's (sparsities where int() and round() agree); no weight update."""
    w = np.random.default_rng(1).standard_normal((OUT, IN))
    strategy = calibrated(backend, pattern)
    wb = backend.asarray(w)
    pruned, mask = strategy.prune(wb, sparsity)
    expected = reference_wanda(w, calibration(), sparsity or 0.0, *nm)
    assert isinstance(mask, PruningMask)
    assert same_library(mask.mask, wb) and same_library(pruned, wb)
    np.testing.assert_array_equal(to_numpy(mask.mask), expected)
    np.testing.assert_array_equal(to_numpy(pruned), np.where(expected, w, 0.0))
    np.testing.assert_array_equal(to_numpy(wb), w)  # the caller's weights are untouched
    if pattern is None:
        assert mask.pattern == SP.unstructured()
    else:
        assert mask.pattern.nm == nm and mask.satisfies()


def test_scores(backend: Backend) -> None:
    """compute_importance_scores is |W_ij| * ||X_j||_2 in the weights' dtype."""
    w = np.random.default_rng(2).standard_normal((OUT, IN)).astype(np.float32)
    strategy = calibrated(backend)
    scores = strategy.compute_importance_scores(backend.asarray(w))
    norms = np.linalg.norm(np.concatenate([x.reshape(-1, IN) for x in calibration()]), axis=0)
    assert to_numpy(scores).dtype == np.float32
    np.testing.assert_allclose(to_numpy(scores), np.abs(w) * norms.astype(np.float32), rtol=1e-6)


def test_scores_differ_from_magnitude() -> None:
    """A feature with large inputs protects small weights that magnitude pruning would drop."""
    w = np.array([[0.1, 1.0, 2.0, 3.0]])
    s = fed(WandaPruning(), np.array([[100.0, 1.0, 1.0, 1.0]]))
    _, mask = s.prune(w, 0.5)
    np.testing.assert_array_equal(mask.mask, [[True, False, False, True]])


# -- counts and comparison ---------------------------------------------------------------------
@given(
    rows=st.integers(1, 8),
    cols=st.integers(1, 24),
    sparsity=st.floats(0, 1),
    seed=st.integers(0, 2**16),
)
def test_row_counts_exact_law(rows, cols, sparsity, seed) -> None:
    """Law: every row prunes exactly round(s * in_features), its lowest scores, ties to the lower index."""
    rng = np.random.default_rng(seed)
    w = rng.integers(-3, 4, (rows, cols)).astype(np.float64)  # many ties
    s = fed(WandaPruning(), rng.integers(0, 3, (4, cols)).astype(np.float64))
    _, mask = s.prune(w, sparsity)
    k = round(sparsity * cols)
    keep = mask.mask
    assert np.all((~keep).sum(axis=1) == k)
    scores = s.compute_importance_scores(w)
    rank = np.argsort(np.argsort(scores, axis=1, kind="stable"), axis=1, kind="stable")
    np.testing.assert_array_equal(keep, rank >= k)


def test_row_count_rounds_half_to_even_where_the_paper_truncates() -> None:
    """The library's count rule: round(0.35 * 10) = 4 per row (the paper's int() would give 3)."""
    w = np.random.default_rng(3).standard_normal((3, 10))
    _, mask = fed(WandaPruning(), np.ones((2, 10))).prune(w, 0.35)
    assert np.all((~mask.mask).sum(axis=1) == 4)
    _, mask = fed(WandaPruning(), np.ones((2, 10))).prune(w, 2)  # an int is a count per row
    assert np.all((~mask.mask).sum(axis=1) == 2)


def test_layer_comparison(backend: Backend) -> None:
    """comparison='layer': the lowest round(s * size) scores of the whole layer, rows unequal."""
    w = np.random.default_rng(4).standard_normal((OUT, IN))
    w[0] *= 10  # row 0 keeps more than half
    strategy = calibrated(backend, comparison="layer")
    _, mask = strategy.prune(backend.asarray(w), 0.5)
    scores = to_numpy(strategy.compute_importance_scores(backend.asarray(w)))
    order = np.argsort(scores, axis=None, kind="stable")
    expected = np.ones(w.size, dtype=bool)
    expected[order[: w.size // 2]] = False
    keep = to_numpy(mask.mask)
    np.testing.assert_array_equal(keep, expected.reshape(w.shape))
    assert (~keep[0]).sum() < IN // 2


def test_calibrate_then_create_mask_and_apply(backend: Backend) -> None:
    """The seed interface: scores, create_mask, create_2to4_mask, apply_pruning."""
    w = np.random.default_rng(5).standard_normal((OUT, IN))
    strategy = calibrated(backend)
    wb = backend.asarray(w)
    scores = strategy.compute_importance_scores(wb)
    mask = strategy.create_mask(scores, 0.5)
    np.testing.assert_array_equal(to_numpy(mask.mask), reference_wanda(w, calibration(), 0.5))
    m24 = strategy.create_2to4_mask(scores)
    np.testing.assert_array_equal(to_numpy(m24.mask), reference_wanda(w, calibration(), 0.0, 2, 4))
    out = strategy.apply_pruning(wb, mask)
    np.testing.assert_array_equal(to_numpy(out), np.where(to_numpy(mask.mask), w, 0.0))


def test_shared_accumulator() -> None:
    """Layers that see the same inputs (q, k, v) share one accumulator."""
    acc = InputNormAccumulator()
    q, k = WandaPruning(accumulator=acc), WandaPruning(SP.two_four(), accumulator=acc)
    for x in calibration():
        acc.update(x)
    assert q.is_calibrated and k.is_calibrated and q.accumulator is k.accumulator
    w = np.random.default_rng(6).standard_normal((OUT, IN))
    np.testing.assert_array_equal(q.prune(w, 0.5)[1].mask, reference_wanda(w, calibration(), 0.5))


def test_attributes_and_repr() -> None:
    s = WandaPruning()
    assert isinstance(s, PruningStrategy)
    assert s.name == "wanda" and not s.requires_gradients and s.comparison == "row"
    assert set(s.supported_patterns) == {
        PatternKind.UNSTRUCTURED,
        PatternKind.STRUCTURED_2TO4,
        PatternKind.STRUCTURED_NTOM,
    }
    assert not s.is_calibrated
    assert "comparison='row'" in repr(s)
    assert WandaPruning(SP.n_m(2, 4, axis=1)).pattern.axis == 1


def test_torch_weights_from_torch_calibration() -> None:
    """torch in, torch out; gradients (unused) must still match the weights."""
    w = torch.randn(OUT, IN)
    s = WandaPruning()
    for x in calibration():
        s.calibrate(torch.from_numpy(x))
    pruned, mask = s.prune(w, 0.5, gradients=torch.zeros(OUT, IN))
    assert isinstance(pruned, torch.Tensor) and pruned.dtype == torch.float32
    assert bool(torch.all((~mask.mask).sum(dim=1) == IN // 2))
    with pytest.raises(ValueError, match="gradients has shape"):
        s.compute_importance_scores(w, torch.zeros(OUT, IN + 1))


# -- errors --------------------------------------------------------------------------------------
def test_not_calibrated() -> None:
    with pytest.raises(ValueError, match="not calibrated"):
        WandaPruning().compute_importance_scores(np.ones((2, 4)))
    with pytest.raises(ValueError, match="not calibrated"):
        WandaPruning().prune(np.ones((2, 4)), 0.5)


def test_feature_mismatch() -> None:
    s = fed(WandaPruning(), np.ones((3, 4)))
    with pytest.raises(ValueError, match="weights has 5 input features but the calibration inputs had 4"):
        s.prune(np.ones((2, 5)), 0.5)
    with pytest.raises(ValueError, match="x has 5 input features"):
        s.calibrate(np.ones((3, 5)))


def test_library_mismatch_names_the_calibration_statistics_not_an_internal_array() -> None:
    """Calibrated on torch, pruning NumPy weights: the error names what the user gave (it named
    the internal ``norms``)."""
    s = fed(WandaPruning(), torch.ones((3, 4)))
    match = r"^weights is a numpy array but the calibration statistics are torch arrays \(from the batches fed"
    for call in (lambda w: s.prune(w, 0.5), s.compute_importance_scores, lambda w: s.create_mask(s.compute_importance_scores(w), 0.5)):
        with pytest.raises(TypeError, match=match):
            call(np.ones((2, 4)))
    s = fed(WandaPruning(), np.ones((3, 4)))
    with pytest.raises(TypeError, match="^weights is a torch array but the calibration statistics are numpy arrays"):
        s.prune(torch.ones((2, 4)), 0.5)


@pytest.mark.parametrize(
    "kwargs, err, match",
    [
        ({"pattern": SP.rows()}, ValueError, "not one WandaPruning builds"),
        ({"pattern": SP.blocks((2, 2))}, ValueError, "not one WandaPruning builds"),
        ({"pattern": SP.two_four(axis=0)}, ValueError, "input axis"),
        ({"pattern": "2:4"}, TypeError, "SparsityPattern"),
        ({"comparison": "column"}, ValueError, "comparison='column'"),
        ({"accumulator": object()}, TypeError, "InputNormAccumulator"),
    ],
)
def test_bad_construction(kwargs, err, match) -> None:
    with pytest.raises(err, match=match):
        WandaPruning(**kwargs)


@pytest.mark.parametrize(
    "weights, sparsity, err, match",
    [
        (np.ones((2, 3, 4)), 0.5, ValueError, "2-D"),
        (np.ones((2, 4), dtype=bool), 0.5, TypeError, "dtype bool"),
        (np.ones((2, 4)), None, ValueError, "sparsity is required"),
        (np.ones((2, 4)), 1.5, ValueError, "fraction"),
        (np.ones((2, 4)), True, TypeError, "bool"),
    ],
)
def test_bad_prune_inputs(weights, sparsity, err, match) -> None:
    s = fed(WandaPruning(), np.ones((3, 4)))
    with pytest.raises(err, match=match):
        s.prune(weights, sparsity)


def test_nm_needs_divisible_rows() -> None:
    s = fed(WandaPruning(SP.two_four()), np.ones((3, 6)))
    with pytest.raises(ValueError, match="m=4 must divide"):
        s.prune(np.ones((2, 6)))


def test_wanda_scores_errors() -> None:
    with pytest.raises(ValueError, match=r"expected \(4,\)"):
        wanda_scores(np.ones((2, 4)), np.ones(3))
    with pytest.raises(TypeError, match="different array libraries"):
        wanda_scores(np.ones((2, 4)), torch.ones(4))
    np.testing.assert_array_equal(wanda_scores(np.array([[-2, 1]]), np.array([0.5, 2.0])), [[1.0, 2.0]])


# -- calibrating from a torch forward hook, with padding masks --------------------------------
def test_calibrate_from_a_forward_hook_leaves_the_layer_output() -> None:
    """``register_forward_hook(lambda m, inp, out: s.calibrate(inp[0]))`` replaced the layer's output
    by the strategy while calibrate returned self; it returns None now, and ``s.hook()`` does the same."""
    torch.manual_seed(0)
    layer = torch.nn.Linear(IN, 4)
    xs = [torch.from_numpy(x).float() for x in calibration()]
    by_lambda, by_hook = WandaPruning(), WandaPruning()
    calibrate_through_hooks(layer, (by_lambda, by_hook), xs)
    w = layer.weight.detach()
    by_hand = fed(WandaPruning(), *xs)
    for s in (by_lambda, by_hook):
        torch.testing.assert_close(s.compute_importance_scores(w), by_hand.compute_importance_scores(w), rtol=0, atol=0)


def test_calibrate_mask_leaves_padding_out(backend: Backend) -> None:
    """``calibrate(x, mask=attention_mask)`` scores and prunes as calibrating on the real tokens only."""
    rng = np.random.default_rng(4)
    w = rng.standard_normal((8, IN))
    masked, by_hand = WandaPruning(), WandaPruning()
    for x in calibration():
        mask = rng.random(x.shape[:-1]) < 0.6
        x = np.where(mask[..., None], x, 50.0)  # loud padding
        masked.calibrate(backend.asarray(x), mask=backend.asarray(mask))
        by_hand.calibrate(backend.asarray(x[mask]))
    assert masked.accumulator.n_samples == by_hand.accumulator.n_samples
    np.testing.assert_array_equal(to_numpy(masked.compute_importance_scores(backend.asarray(w))),
                                  to_numpy(by_hand.compute_importance_scores(backend.asarray(w))))
    np.testing.assert_array_equal(to_numpy(masked.prune(backend.asarray(w), 0.5)[1].mask),
                                  to_numpy(by_hand.prune(backend.asarray(w), 0.5)[1].mask))
