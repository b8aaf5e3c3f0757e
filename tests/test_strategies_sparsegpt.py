"""SparseGPT: parity with a float64 transcription of the published algorithm, reconstruction error, errors."""

from __future__ import annotations

from fractions import Fraction

import array_api_compat
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from arraysparse.calibration import HessianAccumulator
from arraysparse.masks import PruningMask
from arraysparse.patterns import PatternKind, SparsityPattern
from arraysparse.strategies.base import PruningStrategy
from arraysparse.strategies.magnitude import MagnitudePruning
from arraysparse.strategies.sparsegpt import (
    SparseGPTPruning,
    _block_counts,
    sparsegpt_prune,
)
from tests.backends import Backend, to_numpy
from tests.hooks import calibrate_through_hooks


def fed(target, *batches):
    """``target`` (an accumulator or a calibrating strategy) after feeding it ``batches``."""
    feed = target.calibrate if hasattr(target, "calibrate") else target.update
    for x in batches:
        assert feed(x) is None  # None, so that a torch forward hook may call it
    return target


SP = SparsityPattern


def reference_sparsegpt(w, h, sparsity=0.0, prunen=0, prunem=0, blocksize=128, percdamp=0.01, dtype=np.float64):
    """Column-by-column transcription of SparseGPT.fasterprune (IST-DASLab/sparsegpt, sparsegpt.py).

    Two documented departures, both the library's rules: the per-block pruned count is the layer's
    round(s * size) shared between blocks by width (the published code prunes every score <= the
    sorted tile's element at int(s * tile_size), one more than s); ties prune the lower index.
    Returns ``(W, keep)``.
    """
    W = np.array(w, dtype=dtype)
    H = np.array(h, dtype=dtype)
    rows, columns = W.shape
    dead = np.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    damp = percdamp * np.mean(np.diag(H))
    diag = np.arange(columns)
    H[diag, diag] += damp
    L = np.linalg.cholesky(H)
    Linv = np.linalg.inv(L)
    H = Linv.T @ Linv  # torch.cholesky_inverse
    Hinv = np.linalg.cholesky(H).T  # torch.linalg.cholesky(H, upper=True)
    count = round(sparsity * rows * columns)
    mask = np.zeros(W.shape, dtype=bool)  # True = pruned
    for i1 in range(0, columns, blocksize):
        i2 = min(i1 + blocksize, columns)
        ncols = i2 - i1
        W1 = W[:, i1:i2].copy()
        Q1 = np.zeros_like(W1)
        Err1 = np.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        if prunen == 0:
            tmp = W1**2 / (np.diag(Hinv1).reshape((1, -1))) ** 2
            k = round(Fraction(count * i2, columns)) - round(Fraction(count * i1, columns))
            mask1 = np.zeros(tmp.size, dtype=bool)
            mask1[np.argsort(tmp, axis=None, kind="stable")[:k]] = True
            mask1 = mask1.reshape(tmp.shape)
        else:
            mask1 = np.zeros(W1.shape, dtype=bool)
        for i in range(ncols):
            w_col = W1[:, i]
            d = Hinv1[i, i]
            if prunen != 0 and i % prunem == 0:
                tmp = W1[:, i : i + prunem] ** 2 / (np.diag(Hinv1)[i : i + prunem].reshape((1, -1))) ** 2
                idx = np.argsort(tmp, axis=1, kind="stable")[:, :prunen]
                np.put_along_axis(mask1, i + idx, True, axis=1)
            q = w_col.copy()
            q[mask1[:, i]] = 0
            Q1[:, i] = q
            err1 = (w_col - q) / d
            W1[:, i:] -= np.outer(err1, Hinv1[i, i:])
            Err1[:, i] = err1
        W[:, i1:i2] = Q1
        mask[:, i1:i2] = mask1
        W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:]
    return W, ~mask


def layer(rows, cols, tokens, seed=0, dead=()):
    """Weights and correlated calibration inputs (a random mixing of features, uneven scales)."""
    rng = np.random.default_rng(seed)
    mix = rng.standard_normal((cols, cols)) / np.sqrt(cols) + np.eye(cols)
    x = (rng.standard_normal((tokens, cols)) @ mix) * np.exp(rng.uniform(-1, 1, cols))
    x[:, list(dead)] = 0
    return rng.standard_normal((rows, cols)), x


def hessian64(x):
    return 2 * x.T @ x / x.shape[0]


def rel_error(w, w2, x):
    return np.linalg.norm(x @ (w - w2).T) / np.linalg.norm(x @ w.T)


def same_library(result, like) -> bool:
    return array_api_compat.array_namespace(result) is array_api_compat.array_namespace(like) and str(
        array_api_compat.device(result)
    ) == str(array_api_compat.device(like))


CASES = [
    # id, pattern, sparsity, (prunen, prunem)
    pytest.param(None, 0.5, (0, 0), id="50%"),
    pytest.param(None, 0.3, (0, 0), id="30%"),
    pytest.param(SP.two_four(), None, (2, 4), id="2:4"),
    pytest.param(SP.n_m(4, 8), None, (4, 8), id="4:8"),
]


# -- parity with the published algorithm ---------------------------------------------------------
@pytest.mark.parametrize("pattern, sparsity, nm", CASES)
def test_matches_reference_numpy(pattern, sparsity, nm) -> None:
    """Several blocks, a short last block and dead inputs: masks equal, weights allclose (float64)."""
    w, x = layer(24, 200, 400, seed=1, dead=(3, 150))
    h = hessian64(x)
    ref_w, ref_keep = reference_sparsegpt(w, h, sparsity or 0.0, *nm, blocksize=64)
    got_w, mask = sparsegpt_prune(w, h, sparsity, pattern=pattern, block_size=64, dtype="float64")
    np.testing.assert_array_equal(mask.mask, ref_keep)
    np.testing.assert_allclose(got_w, ref_w, rtol=1e-9, atol=1e-11)
    assert np.all(got_w[:, [3, 150]] == 0)  # dead inputs: W[:, i] = 0
    assert np.all(got_w[~mask.mask] == 0)


@pytest.mark.parametrize("pattern, sparsity, nm", CASES)
def test_matches_reference_every_backend(backend: Backend, pattern, sparsity, nm) -> None:
    """Calibrate from streamed batches, prune through the strategy, compare with the transcription."""
    w, x = layer(8, 32, 96, seed=2, dead=(5,))
    strategy = SparseGPTPruning(pattern, block_size=16, dtype="float64")
    for piece in np.split(x, [10, 50]):
        strategy.calibrate(backend.asarray(piece.reshape(-1, 2, 32)))
    wb = backend.asarray(w)
    got_w, mask = strategy.prune(wb, sparsity)
    ref_w, ref_keep = reference_sparsegpt(w, hessian64(x), sparsity or 0.0, *nm, blocksize=16)
    assert same_library(got_w, wb) and same_library(mask.mask, wb)
    np.testing.assert_array_equal(to_numpy(mask.mask), ref_keep)
    np.testing.assert_allclose(to_numpy(got_w), ref_w, rtol=1e-9, atol=1e-11)
    np.testing.assert_array_equal(to_numpy(wb), w)  # the caller's weights are untouched
    if pattern is not None:
        assert mask.pattern.nm == nm and mask.satisfies()
    else:
        assert mask.pattern == SP.unstructured()


@pytest.mark.parametrize("pattern, sparsity, nm", CASES[::2])
def test_float32_default(backend: Backend, pattern, sparsity, nm) -> None:
    """float32 compute (default) returns float32 weights close to the float64 transcription."""
    w, x = layer(16, 64, 256, seed=3)
    w = w.astype(np.float32)
    h = fed(HessianAccumulator(), backend.asarray(x.astype(np.float32))).hessian
    got_w, mask = sparsegpt_prune(backend.asarray(w), h, sparsity, pattern=pattern, block_size=32)
    ref_w, ref_keep = reference_sparsegpt(w, hessian64(x.astype(np.float32)), sparsity or 0.0, *nm, blocksize=32)
    got = to_numpy(got_w)
    assert got.dtype == np.float32
    assert np.mean(to_numpy(mask.mask) == ref_keep) > 0.99
    assert abs(rel_error(w, got, x) - rel_error(w, ref_w, x)) < 1e-3


def test_float32_matches_float32_transcription() -> None:
    """With both in float32 on the same inputs the masks agree and the weights are close."""
    w, x = layer(64, 256, 512, seed=4)
    w, x = w.astype(np.float32), x.astype(np.float32)
    h = fed(HessianAccumulator(), x).hessian
    for pattern, sparsity, nm in [(None, 0.5, (0, 0)), (SP.two_four(), None, (2, 4))]:
        ref_w, ref_keep = reference_sparsegpt(w, h, sparsity or 0.0, *nm, dtype=np.float32)
        got_w, mask = sparsegpt_prune(w, h, sparsity, pattern=pattern)
        assert np.mean(mask.mask == ref_keep) > 0.999
        np.testing.assert_allclose(got_w[mask.mask == ref_keep], ref_w[mask.mask == ref_keep], atol=1e-3)


# -- what it achieves --------------------------------------------------------------------------
@pytest.mark.parametrize("pattern, sparsity", [(None, 0.5), (SP.two_four(), None)])
def test_reconstruction_error_below_magnitude(pattern, sparsity) -> None:
    """||WX - W'X|| / ||WX|| on correlated inputs (held-out tokens too) is below magnitude pruning's."""
    w, x = layer(64, 128, 1024, seed=5)
    calib, held_out = x[:768], x[768:]
    strategy = SparseGPTPruning(pattern)
    for piece in np.split(calib, 4):
        strategy.calibrate(piece.astype(np.float32))
    ours, _ = strategy.prune(w.astype(np.float32), sparsity)
    magnitude, _ = MagnitudePruning(pattern or SP.unstructured()).prune(w, sparsity)
    for data in (calib, held_out):
        assert rel_error(w, ours, data) < 0.8 * rel_error(w, magnitude, data)


@given(sparsity=st.floats(0, 1), rows=st.integers(1, 6), cols=st.integers(1, 40), bs=st.integers(1, 16))
def test_exact_count_law(sparsity, rows, cols, bs) -> None:
    """Law: the layer prunes exactly round(s * size); block shares add up and fit their blocks."""
    counts = _block_counts(round(sparsity * rows * cols), rows, cols, bs)
    assert sum(counts) == round(sparsity * rows * cols)
    widths = [min(bs, cols - i) for i in range(0, cols, bs)]
    assert len(counts) == len(widths)
    assert all(0 <= c <= rows * wd for c, wd in zip(counts, widths))
    w, x = layer(rows, cols, 3 * cols + 1, seed=cols)
    _, mask = sparsegpt_prune(w, hessian64(x), sparsity, block_size=bs, dtype="float64")
    assert mask.num_pruned == round(sparsity * rows * cols)


def test_nm_exact_zeros_per_group() -> None:
    w, x = layer(16, 64, 200, seed=6)
    out, mask = sparsegpt_prune(w, hessian64(x), pattern=SP.n_m(3, 4), block_size=32)
    groups = (out == 0).reshape(16, 16, 4).sum(axis=-1)
    assert np.all(groups == 3)
    assert mask.satisfies(SP.n_m(3, 4))


def test_scale_of_hessian_does_not_matter() -> None:
    """Counting tokens or sequences scales H; the result is the same."""
    w, x = layer(8, 48, 100, seed=7)
    h = hessian64(x)
    a = sparsegpt_prune(w, h, 0.5, dtype="float64")
    b = sparsegpt_prune(w, 37.0 * h, 0.5, dtype="float64")
    assert a[1].equals(b[1])
    np.testing.assert_allclose(a[0], b[0], rtol=1e-8, atol=1e-12)


def test_shared_accumulator_and_scores() -> None:
    """One accumulator for two layers; scores are w^2 / U_jj^2 with U the upper Cholesky factor of H^-1."""
    acc = HessianAccumulator(dtype="float64")
    w, x = layer(6, 20, 80, seed=8)
    a, b = SparseGPTPruning(accumulator=acc, dtype="float64"), SparseGPTPruning(SP.two_four(), accumulator=acc)
    acc.update(x)
    assert a.is_calibrated and b.is_calibrated
    h = hessian64(x)
    h = h + 0.01 * np.mean(np.diag(h)) * np.eye(20)
    u = np.linalg.cholesky(np.linalg.inv(h)).T
    np.testing.assert_allclose(a.compute_importance_scores(w), w**2 / np.diag(u) ** 2, rtol=1e-9)
    mask = a.create_mask(a.compute_importance_scores(w), 0.5)  # no update: a plain mask
    assert mask.num_pruned == 60


def test_torch_and_half_precision() -> None:
    """torch in, torch out (the host kernels run on the tensor's memory); float16 weights stay float16."""
    w, x = layer(8, 32, 64, seed=9)
    s = fed(SparseGPTPruning(block_size=16), torch.from_numpy(x.astype(np.float32)))
    out, mask = s.prune(torch.from_numpy(w.astype(np.float16)), 0.5)
    assert out.dtype == torch.float16 and isinstance(mask.mask, torch.Tensor)
    _, ref_keep = reference_sparsegpt(w.astype(np.float16), hessian64(x.astype(np.float32)), 0.5, blocksize=16)
    assert np.mean(mask.mask.numpy() == ref_keep) > 0.95


def test_attributes_and_repr() -> None:
    s = SparseGPTPruning()
    assert isinstance(s, PruningStrategy)
    assert s.name == "sparsegpt" and not s.requires_gradients and not s.is_calibrated
    assert s.block_size == 128 and s.damp == 0.01 and s.dtype == "float32"
    assert s.accumulator.dtype == "float32"
    assert SparseGPTPruning(dtype="float64").accumulator.dtype == "float64"
    assert set(s.supported_patterns) == {
        PatternKind.UNSTRUCTURED,
        PatternKind.STRUCTURED_2TO4,
        PatternKind.STRUCTURED_NTOM,
    }
    assert "block_size=128" in repr(s)
    assert isinstance(sparsegpt_prune(np.ones((2, 4)), np.eye(4), 0.5)[1], PruningMask)


# -- errors ----------------------------------------------------------------------------------------
def test_not_calibrated() -> None:
    with pytest.raises(ValueError, match="not calibrated"):
        SparseGPTPruning().prune(np.ones((2, 4)), 0.5)
    with pytest.raises(ValueError, match="not calibrated"):
        SparseGPTPruning().compute_importance_scores(np.ones((2, 4)))


def test_feature_mismatch() -> None:
    s = fed(SparseGPTPruning(), np.ones((3, 4)))
    with pytest.raises(ValueError, match="weights has 5 input features but the calibration inputs had 4"):
        s.prune(np.ones((2, 5)), 0.5)
    with pytest.raises(ValueError, match="weights has 5 input features"):
        s.compute_importance_scores(np.ones((2, 5)))
    with pytest.raises(ValueError, match=r"expected \(5, 5\)"):
        sparsegpt_prune(np.ones((2, 5)), np.eye(4), 0.5)


def test_library_mismatch_names_the_calibration_statistics_not_an_internal_array() -> None:
    """Calibrated on torch, pruning NumPy weights: the error names what the user gave (it named
    the internal ``hessian``)."""
    s = fed(SparseGPTPruning(), torch.ones((3, 4)))
    match = r"^weights is a numpy array but the calibration statistics are torch arrays \(from the batches fed"
    with pytest.raises(TypeError, match=match):
        s.prune(np.ones((2, 4), np.float32), 0.5)
    with pytest.raises(TypeError, match=match):
        s.compute_importance_scores(np.ones((2, 4), np.float32))
    s = fed(SparseGPTPruning(), np.ones((3, 4)))
    with pytest.raises(TypeError, match="^weights is a torch array but the calibration statistics are numpy arrays"):
        s.prune(torch.ones((2, 4)), 0.5)
    with pytest.raises(TypeError, match="different array libraries"):  # the functional form names its own arguments
        sparsegpt_prune(torch.ones((2, 4)), np.eye(4), 0.5)


@pytest.mark.parametrize(
    "kwargs, err, match",
    [
        ({"pattern": SP.rows()}, ValueError, "not one SparseGPTPruning builds"),
        ({"pattern": SP.two_four(axis=0)}, ValueError, "input axis"),
        ({"dtype": "float16"}, ValueError, "float32"),
        ({"dtype": torch.int32}, ValueError, "float32"),
        ({"dtype": 5}, TypeError, "dtype"),
        ({"block_size": 0}, ValueError, "block_size=0"),
        ({"block_size": 2.0}, TypeError, "block_size"),
        ({"damp": -0.1}, ValueError, "damp=-0.1"),
        ({"damp": "0.01"}, TypeError, "damp"),
        ({"accumulator": object()}, TypeError, "HessianAccumulator"),
    ],
)
def test_bad_construction(kwargs, err, match) -> None:
    with pytest.raises(err, match=match):
        SparseGPTPruning(**kwargs)


@pytest.mark.parametrize(
    "weights, hessian, sparsity, kwargs, err, match",
    [
        (np.ones((2, 3, 4)), np.eye(4), 0.5, {}, ValueError, "2-D"),
        (np.ones((2, 4), dtype=np.int32), np.eye(4), 0.5, {}, TypeError, "real floats"),
        (np.ones((2, 4)), np.eye(4, dtype=np.int64), 0.5, {}, TypeError, "hessian has dtype"),
        (np.ones((2, 4)), np.eye(4), None, {}, ValueError, "sparsity is required"),
        (np.ones((2, 4)), np.eye(4), 1.5, {}, ValueError, "fraction"),
        (np.ones((2, 4)), np.eye(4), 0.25, {"pattern": SP.two_four()}, ValueError, "disagrees"),
        (np.ones((2, 6)), np.eye(6), None, {"pattern": SP.two_four()}, ValueError, "m=4 must divide"),
        (np.ones((2, 8)), np.eye(8), None, {"pattern": SP.two_four(), "block_size": 6}, ValueError, "multiple of m"),
        (np.ones((2, 4)), np.eye(4), 0.5, {"pattern": SP.rows()}, ValueError, "not supported by SparseGPT"),
        (np.full((2, 4), np.nan), np.eye(4), 0.5, {}, ValueError, "NaN or inf"),
        (np.ones((2, 4)), np.full((4, 4), np.inf), 0.5, {}, ValueError, "hessian contains"),
        (np.ones((2, 4)), -np.eye(4), 0.5, {"damp": 0.0}, ValueError, "not positive definite"),
        (np.ones((2, 4)), torch.eye(4), 0.5, {}, TypeError, "different array libraries"),
    ],
)
def test_bad_prune_inputs(weights, hessian, sparsity, kwargs, err, match) -> None:
    with pytest.raises(err, match=match):
        sparsegpt_prune(weights, hessian, sparsity, **kwargs)


def test_not_positive_definite_on_jax() -> None:
    """JAX's Cholesky returns NaN instead of raising: still a clear error."""
    import jax.numpy as jnp

    with pytest.raises(ValueError, match="not positive definite"):
        sparsegpt_prune(jnp.ones((2, 4)), -jnp.eye(4), 0.5, damp=0.0)


# -- calibrating from a torch forward hook, with padding masks --------------------------------
def test_calibrate_from_a_forward_hook_leaves_the_layer_output() -> None:
    """A forward hook calling ``calibrate`` (which returns None) or ``s.hook()`` leaves the layer's
    output alone and accumulates the Hessian of the inputs fed by hand."""
    torch.manual_seed(0)
    layer = torch.nn.Linear(32, 8)
    _, x = layer_inputs()
    xs = [torch.from_numpy(b).float() for b in np.split(x, 4)]
    by_lambda, by_hook = SparseGPTPruning(), SparseGPTPruning()
    calibrate_through_hooks(layer, (by_lambda, by_hook), xs)
    ref = fed(SparseGPTPruning(), *xs)
    w = layer.weight.detach()
    for s in (by_lambda, by_hook):
        torch.testing.assert_close(s.accumulator.hessian, ref.accumulator.hessian, rtol=0, atol=0)
        torch.testing.assert_close(s.prune(w, 0.5)[0], ref.prune(w, 0.5)[0], rtol=0, atol=0)


def layer_inputs():
    w, x = layer(8, 32, 64, seed=11)
    return w, x.astype(np.float32)


def test_calibrate_mask_leaves_padding_out(backend: Backend) -> None:
    """``calibrate(x, mask=...)``: the Hessian, the token count and the pruned layer are those of the
    real tokens alone."""
    w, x = layer_inputs()
    rng = np.random.default_rng(12)
    masked, by_hand = SparseGPTPruning(dtype="float64"), SparseGPTPruning(dtype="float64")
    for b in np.split(x.reshape(8, 8, 32), 2):  # (batch, seq, features)
        mask = rng.random(b.shape[:-1]) < 0.7
        b = np.where(mask[..., None], b, 30.0)
        masked.calibrate(backend.asarray(b), mask=backend.asarray(mask))
        by_hand.calibrate(backend.asarray(b[mask]))
    assert masked.accumulator.n_samples == by_hand.accumulator.n_samples < 64
    np.testing.assert_array_equal(to_numpy(masked.accumulator.hessian), to_numpy(by_hand.accumulator.hessian))
    got, ref = masked.prune(backend.asarray(w), 0.5), by_hand.prune(backend.asarray(w), 0.5)
    np.testing.assert_array_equal(to_numpy(got[1].mask), to_numpy(ref[1].mask))
    np.testing.assert_array_equal(to_numpy(got[0]), to_numpy(ref[0]))
