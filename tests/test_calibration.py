"""Calibration accumulators: streamed batches equal one batch, the reference's running mean, errors."""

from __future__ import annotations

import math

import array_api_compat
import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import arraysparse.calibration as cal
from arraysparse.calibration import (
    HessianAccumulator,
    InputNormAccumulator,
    float_dtype_name,
)
from tests.backends import Backend, to_numpy


def fed(target, *batches):
    """``target`` (an accumulator or a calibrating strategy) after feeding it ``batches``."""
    feed = target.calibrate if hasattr(target, "calibrate") else target.update
    for x in batches:
        assert feed(x) is None  # None, so that a torch forward hook may call it
    return target


FEATURES = 6


def batches(seed: int = 0, sizes=(5, 1, 7, 3)) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((s, FEATURES)) for s in sizes]


def reference_hessian(xs: list[np.ndarray]) -> np.ndarray:
    """SparseGPT's add_batch, transcribed (float64), counting tokens."""
    h = np.zeros((xs[0].shape[-1],) * 2)
    n = 0
    for x in xs:
        x = x.reshape(-1, x.shape[-1])
        t = x.shape[0]
        h *= n / (n + t)
        n += t
        x = math.sqrt(2 / n) * x
        h += x.T @ x
    return h


def assert_same_library(result, like) -> None:
    assert array_api_compat.array_namespace(result) is array_api_compat.array_namespace(like)
    assert str(array_api_compat.device(result)) == str(array_api_compat.device(like))


# -- input norms ---------------------------------------------------------------------------
def test_norms_streamed_equal_one_batch(backend: Backend) -> None:
    """Several batches give the norms of their concatenation, in the batches' library, float64."""
    xs = batches()
    acc = InputNormAccumulator()
    for x in xs:
        assert acc.update(backend.asarray(x)) is None
    whole = np.concatenate(xs)
    assert acc.n_samples == whole.shape[0]
    assert acc.in_features == FEATURES
    assert acc.dtype == "float64"
    assert_same_library(acc.norms, backend.asarray(xs[0]))
    np.testing.assert_allclose(to_numpy(acc.norms), np.linalg.norm(whole, axis=0), rtol=1e-12)
    np.testing.assert_allclose(to_numpy(acc.sum_squares), (whole**2).sum(axis=0), rtol=1e-12)
    one = fed(InputNormAccumulator(), backend.asarray(whole))
    np.testing.assert_allclose(to_numpy(one.norms), to_numpy(acc.norms), rtol=1e-12)


def test_norms_float32_batches_accumulate_in_float64(backend: Backend) -> None:
    """float32 inputs: sums of squares in float64, as exact as float64 arithmetic on the float32 values."""
    rng = np.random.default_rng(3)
    xs = [rng.standard_normal((400, FEATURES)).astype(np.float32) * 1000 for _ in range(5)]
    acc = InputNormAccumulator()
    for x in xs:
        acc.update(backend.asarray(x))
    expected = (np.concatenate(xs).astype(np.float64) ** 2).sum(axis=0)
    assert acc.dtype == "float64"
    np.testing.assert_allclose(to_numpy(acc.sum_squares), expected, rtol=1e-13)


def test_norms_leading_axes_flattened(backend: Backend) -> None:
    """A (batch, seq, features) batch counts batch * seq tokens; a 1-D batch is one token."""
    x = np.random.default_rng(1).standard_normal((2, 3, FEATURES))
    acc = fed(InputNormAccumulator(), backend.asarray(x), backend.asarray(x[0, 0]))
    assert acc.n_samples == 7
    flat = np.concatenate([x.reshape(-1, FEATURES), x[0, :1]])
    np.testing.assert_allclose(to_numpy(acc.norms), np.linalg.norm(flat, axis=0), rtol=1e-12)


def test_norms_integer_inputs() -> None:
    acc = fed(InputNormAccumulator(), np.array([[3, 0], [4, 1]], dtype=np.int16))
    np.testing.assert_array_equal(acc.norms, [5.0, 1.0])


def test_norms_float32_fallback(monkeypatch) -> None:
    """Without float64 on the batches' device the sums are float32 (documented)."""
    monkeypatch.setattr(cal, "has_float64", lambda xp, dev: False)
    x = np.random.default_rng(2).standard_normal((4, 3)).astype(np.float32)
    acc = fed(InputNormAccumulator(), x)
    assert acc.dtype == "float32"
    assert acc.norms.dtype == np.float32
    np.testing.assert_allclose(acc.norms, np.linalg.norm(x.astype(np.float64), axis=0), rtol=1e-6)


def test_has_float64_follows_the_namespace() -> None:
    import array_api_strict

    assert cal.has_float64(array_api_compat.array_namespace(np.zeros(1)), "cpu")
    assert cal.has_float64(array_api_strict, array_api_strict.Device("CPU_DEVICE"))


@given(
    x=hnp.arrays(np.float64, st.tuples(st.integers(1, 30), st.integers(1, 5)), elements=st.floats(-1e3, 1e3)),
    cuts=st.lists(st.integers(0, 30), max_size=4),
)
def test_norms_any_split_law(x, cuts) -> None:
    """Law: feeding any split of the tokens (empty pieces included) gives the one-batch result."""
    acc = InputNormAccumulator()
    for piece in np.split(x, sorted(c % (x.shape[0] + 1) for c in cuts)):
        acc.update(piece)
    assert acc.n_samples == x.shape[0]
    np.testing.assert_allclose(acc.sum_squares, (x**2).sum(axis=0), rtol=1e-12, atol=1e-300)


# -- hessian -------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_hessian_streamed_equals_reference_and_one_batch(backend: Backend, dtype) -> None:
    """The running mean of the reference code; equal to 2 X^T X / n of the concatenated batches."""
    xs = batches(seed=4)
    acc = HessianAccumulator(dtype=dtype)
    for x in xs:
        acc.update(backend.asarray(x))
    whole = np.concatenate(xs)
    h = acc.hessian
    assert_same_library(h, backend.asarray(xs[0]))
    assert str(h.dtype).endswith(dtype)
    assert acc.dtype == dtype
    rtol = 1e-12 if dtype == "float64" else 2e-6
    np.testing.assert_allclose(to_numpy(h), reference_hessian(xs), rtol=rtol, atol=rtol)
    np.testing.assert_allclose(to_numpy(h), 2 * whole.T @ whole / whole.shape[0], rtol=rtol, atol=rtol)


def test_hessian_leading_axes_and_integer_inputs() -> None:
    x = np.arange(24, dtype=np.int32).reshape(2, 3, 4)
    acc = fed(HessianAccumulator(dtype="float64"), x)
    flat = x.reshape(6, 4).astype(np.float64)
    assert acc.n_samples == 6
    np.testing.assert_allclose(acc.hessian, 2 * flat.T @ flat / 6, rtol=1e-12)


@given(
    x=hnp.arrays(np.float64, st.tuples(st.integers(1, 20), st.integers(1, 4)), elements=st.floats(-100, 100)),
    cuts=st.lists(st.integers(0, 20), max_size=4),
)
def test_hessian_any_split_law(x, cuts) -> None:
    acc = HessianAccumulator(dtype="float64")
    for piece in np.split(x, sorted(c % (x.shape[0] + 1) for c in cuts)):
        acc.update(piece)
    np.testing.assert_allclose(acc.hessian, 2 * x.T @ x / x.shape[0], rtol=1e-10, atol=1e-9)


@pytest.mark.parametrize(
    "dtype, name",
    [("float64", "float64"), (np.float32, "float32"), (torch.float64, "float64"), (np.dtype("float32"), "float32")],
)
def test_dtype_spellings(dtype, name) -> None:
    assert HessianAccumulator(dtype=dtype).dtype == name
    assert float_dtype_name(dtype) == name


def test_dtype_spellings_of_other_libraries() -> None:
    import array_api_strict
    import jax.numpy as jnp

    assert float_dtype_name(array_api_strict.float64) == "float64"
    assert float_dtype_name(jnp.float32) == "float32"


@pytest.mark.parametrize("dtype", ["float16", "int32", torch.float16, np.int8, "double"])
def test_bad_dtype_value(dtype) -> None:
    with pytest.raises(ValueError, match="float32"):
        HessianAccumulator(dtype=dtype)


@pytest.mark.parametrize("dtype", [3, None, object()])
def test_bad_dtype_type(dtype) -> None:
    with pytest.raises(TypeError, match="dtype"):
        HessianAccumulator(dtype=dtype)


# -- errors and state ----------------------------------------------------------------------
@pytest.mark.parametrize("cls", [InputNormAccumulator, HessianAccumulator])
def test_feature_mismatch(cls) -> None:
    acc = fed(cls(), np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"x has 5 input features .* earlier batches had 4"):
        acc.update(np.zeros((2, 5)))
    assert acc.n_samples == 2


@pytest.mark.parametrize("cls", [InputNormAccumulator, HessianAccumulator])
def test_library_mismatch(cls) -> None:
    acc = fed(cls(), np.zeros((2, 4)))
    with pytest.raises(TypeError, match="torch array but earlier batches were numpy"):
        acc.update(torch.zeros((2, 4)))


@pytest.mark.parametrize("cls", [InputNormAccumulator, HessianAccumulator])
def test_device_mismatch(cls) -> None:
    acc = fed(cls(), torch.zeros((2, 4)))
    with pytest.raises(ValueError, match="device meta but earlier batches were on cpu"):
        acc.update(torch.zeros((2, 4), device="meta"))


@pytest.mark.parametrize("cls", [InputNormAccumulator, HessianAccumulator])
@pytest.mark.parametrize(
    "x, err, match",
    [
        (np.zeros((2, 3), dtype=bool), TypeError, "dtype bool"),
        (np.zeros((2, 3), dtype=complex), TypeError, "complex"),
        (np.float64(1.0), TypeError, "x must be an array"),
        (np.zeros(()), ValueError, "0-d"),
        ([[1.0, 2.0]], TypeError, "x must be an array"),
    ],
)
def test_bad_batches(cls, x, err, match) -> None:
    with pytest.raises(err, match=match):
        fed(cls(), x)


@pytest.mark.parametrize("cls, attr", [(InputNormAccumulator, "norms"), (InputNormAccumulator, "sum_squares"),
                                       (HessianAccumulator, "hessian")])
def test_not_fed_yet(cls, attr) -> None:
    acc = cls()
    assert acc.is_empty and acc.in_features is None
    with pytest.raises(ValueError, match="no calibration data yet"):
        getattr(acc, attr)
    acc.update(np.zeros((0, 3)))  # an empty batch fixes the features but brings no data
    assert acc.is_empty and acc.in_features == 3
    with pytest.raises(ValueError, match="no calibration data yet"):
        getattr(acc, attr)


@pytest.mark.parametrize("cls", [InputNormAccumulator, HessianAccumulator])
def test_reset(cls) -> None:
    acc = fed(cls(), np.ones((2, 4)))
    acc.reset()
    assert acc.is_empty and acc.n_samples == 0
    acc.update(torch.ones((3, 2)))  # new features and library after a reset
    assert acc.in_features == 2 and acc.n_samples == 3


def test_inputs_untouched(backend: Backend) -> None:
    x = np.random.default_rng(5).standard_normal((3, 4))
    xb = backend.asarray(x)
    fed(InputNormAccumulator(), xb)
    fed(HessianAccumulator(), xb)
    np.testing.assert_array_equal(to_numpy(xb), x)


def test_repr() -> None:
    assert "n_samples=2" in repr(fed(HessianAccumulator(), np.ones((2, 3))))
    assert "in_features=3" in repr(fed(InputNormAccumulator(), np.ones((2, 3))))


# -- padding masks -------------------------------------------------------------------------
def statistics(acc) -> np.ndarray:
    return to_numpy(acc.sum_squares if isinstance(acc, InputNormAccumulator) else acc.hessian)


def padded_batches(seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """(batch, seq, features) inputs and their (batch, seq) attention masks, right-padded."""
    rng = np.random.default_rng(seed)
    out = []
    for batch, seq in ((3, 5), (2, 7), (4, 1)):
        x = rng.standard_normal((batch, seq, FEATURES))
        lengths = rng.integers(0, seq + 1, batch)
        mask = np.arange(seq)[None, :] < lengths[:, None]
        x[~mask] = 1e3  # padding states that would swamp the statistics
        out.append((x, mask))
    return out


@pytest.mark.parametrize("cls", [InputNormAccumulator, lambda: HessianAccumulator(dtype="float64")],
                         ids=["norms", "hessian"])
def test_mask_equals_feeding_only_the_real_tokens(backend: Backend, cls) -> None:
    """Statistics and token count over the masked batches are those of the real tokens alone."""
    masked, by_hand = cls(), cls()
    for x, mask in padded_batches():
        assert masked.update(backend.asarray(x), mask=backend.asarray(mask)) is None
        by_hand.update(backend.asarray(x[mask]))  # the real rows, in order
    assert masked.n_samples == by_hand.n_samples == sum(int(m.sum()) for _, m in padded_batches())
    np.testing.assert_array_equal(statistics(masked), statistics(by_hand))
    assert_same_library(masked.sum_squares if isinstance(masked, InputNormAccumulator) else masked.hessian,
                        backend.asarray(padded_batches()[0][0]))


@pytest.mark.parametrize("cls", [InputNormAccumulator, HessianAccumulator])
def test_mask_forms(cls) -> None:
    """0/1 integer masks (Hugging Face's attention_mask) read as booleans; a mask broadcasts over
    the token axes; all-real and all-padding masks."""
    x, mask = padded_batches(1)[0]
    ints = cls()
    ints.update(torch.from_numpy(x), mask=torch.from_numpy(mask.astype(np.int64)))
    np.testing.assert_array_equal(statistics(ints), statistics(fed(cls(), torch.from_numpy(x[mask]))))
    seq = cls()  # one mask for every sequence of the batch: (seq,) broadcasts to (batch, seq)
    seq.update(x, mask=mask[0])
    np.testing.assert_array_equal(statistics(seq), statistics(fed(cls(), x[:, mask[0]])))
    np.testing.assert_array_equal(statistics(fed(cls(), x)), statistics(cls_update(cls(), x, np.ones(x.shape[:-1], bool))))
    none = cls_update(cls(), x, np.zeros(x.shape[:-1], bool))
    assert none.is_empty and none.in_features == FEATURES


def cls_update(acc, x, mask):
    acc.update(x, mask=mask)
    return acc


@pytest.mark.parametrize(
    "mask, err, match",
    [
        (np.ones((3, 5), np.float32), TypeError, "mask has dtype float32; give booleans"),
        (np.ones((5, 3), bool), ValueError, r"mask has shape \(5, 3\), which does not broadcast to the token axes \(3, 5\)"),
        (np.ones((3, 5, 6), bool), ValueError, "does not broadcast"),
        (np.full((3, 5), 7), ValueError, "mask holds 7, not only 0 and 1"),
        (torch.ones((3, 5), dtype=torch.bool), TypeError, "x and mask come from different array libraries"),
        ([[True] * 5] * 3, TypeError, "mask must be an array"),
    ],
)
def test_bad_masks(mask, err, match) -> None:
    acc = InputNormAccumulator()
    with pytest.raises(err, match=match):
        acc.update(np.ones((3, 5, 4)), mask=mask)
    assert acc.is_empty and acc.in_features is None


# -- forward hooks -------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [InputNormAccumulator, HessianAccumulator])
def test_hook_leaves_the_output_and_feeds_the_inputs(cls) -> None:
    """A real torch.nn.Linear with the accumulator's hook: outputs unchanged, statistics equal to
    feeding the same inputs by hand. A forward pre-hook works the same way."""
    torch.manual_seed(0)
    layer = torch.nn.Linear(FEATURES, 3)
    xs = [torch.from_numpy(x).float() for x in batches(2)]
    for register in (layer.register_forward_hook, layer.register_forward_pre_hook):
        acc = cls()
        handle = register(acc.hook())
        with torch.no_grad():
            outs = [layer(x) for x in xs]
        handle.remove()
        for x, out in zip(xs, outs):
            assert isinstance(out, torch.Tensor)
            torch.testing.assert_close(out, torch.nn.functional.linear(x, layer.weight, layer.bias), rtol=0, atol=0)
        np.testing.assert_array_equal(statistics(acc), statistics(fed(cls(), *xs)))


def test_hook_reads_the_current_mask_and_leaves_no_autograd_graph() -> None:
    """``mask=`` is called at every forward; activations that track grad (no torch.no_grad()) are
    read detached, so the statistics hold no graph and pruning works on them."""
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Linear(FEATURES, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    acc = HessianAccumulator(dtype="float64")
    current = {}
    net[2].register_forward_hook(acc.hook(mask=lambda: current["mask"]))
    ref = HessianAccumulator(dtype="float64")
    for x, mask in padded_batches(3):
        current["mask"] = torch.from_numpy(mask)
        xt = torch.from_numpy(x).float()
        net(xt)  # grad mode on: the second layer's input requires grad
        with torch.no_grad():
            ref.update(net[1](net[0](xt))[torch.from_numpy(mask)])
    assert not acc.hessian.requires_grad and acc.n_samples == ref.n_samples
    np.testing.assert_allclose(statistics(acc), statistics(ref), rtol=1e-6)


def test_hook_errors() -> None:
    acc = InputNormAccumulator()
    with pytest.raises(TypeError, match="mask must be a function returning the current batch's mask"):
        acc.hook(mask=np.ones(3, bool))
    layer = torch.nn.Linear(FEATURES, 2)
    layer.register_forward_hook(acc.hook())
    with pytest.raises(ValueError, match="the hooked Linear got no positional input"):
        layer(input=torch.ones(2, FEATURES))


@pytest.mark.parametrize("cls", [InputNormAccumulator, HessianAccumulator])
def test_check_partner_names_the_calibration_statistics(cls) -> None:
    acc = fed(cls(), torch.zeros((2, 4)))
    acc.check_partner(torch.ones((3, 4)), "weights")
    with pytest.raises(TypeError, match="^weights is a numpy array but the calibration statistics are torch arrays"):
        acc.check_partner(np.ones((3, 4)), "weights")
    with pytest.raises(ValueError, match="^weights is on device meta but the calibration statistics are on cpu"):
        acc.check_partner(torch.ones((3, 4), device="meta"), "weights")
