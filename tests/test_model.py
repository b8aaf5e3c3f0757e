"""Whole-model pruning: global threshold == concatenate-then-top-k, bounds, rules, report, layer-wise."""

from __future__ import annotations

import math
import re
import tracemalloc

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.nn.utils import prune as torch_prune

from arraysparse import (
    GradientPruning,
    MagnitudePruning,
    RandomPruning,
    SparsityPattern,
    StructuredPruning,
)
from arraysparse.masks import PruningMask, topk_mask
from arraysparse.model import (
    LayerReport,
    ModelMask,
    flatten_model,
    global_mask,
    layer_masks,
    prune_model,
    unflatten_model,
)
from tests.backends import Backend, to_numpy

AVAILABLE = [b for b in Backend if b.available() is None]
INF = math.inf
#: Few distinct values: ties across layers, +/-0 and +/-inf.
TIES = st.sampled_from([-INF, -2.5, -1.0, -0.0, 0.0, 0.5, 1.0, 3.0, INF])
FLOAT_DTYPES = [np.float16, np.float32, np.float64]
INT_DTYPES = [np.int8, np.int32, np.int64, np.uint8]


# -- oracles --------------------------------------------------------------------
def order_values(a: np.ndarray, magnitude: bool, common) -> np.ndarray:
    v = np.ravel(a).astype(common)
    return np.abs(v) if magnitude else v


def common_dtype(arrays: list[np.ndarray]):
    """float64 when dtypes differ (exact for the test data), else the dtype itself."""
    dtypes = {a.dtype for a in arrays}
    if len(dtypes) == 1 and next(iter(dtypes)).kind == "f":
        return next(iter(dtypes))
    return np.float64


def concat_oracle(arrays: list[np.ndarray], sparsity, magnitude: bool) -> list[np.ndarray]:
    """Masks by concatenating everything and calling topk_mask (ties: lower concatenated index)."""
    common = common_dtype(arrays)
    cat = np.concatenate([order_values(a, magnitude, common) for a in arrays]) if arrays else np.zeros(0)
    keep = to_numpy(topk_mask(cat, sparsity).mask)
    out, start = [], 0
    for a in arrays:
        out.append(keep[start : start + a.size].reshape(a.shape))
        start += a.size
    return out


def bounded_oracle(arrays: list[np.ndarray], k: int, lo: list[int], hi: list[int], magnitude: bool) -> list[np.ndarray]:
    """The definition, by brute force: walk the global order until the clamped counts sum to k."""
    common = common_dtype(arrays)
    vals = [order_values(a, magnitude, common) for a in arrays]
    owner = np.concatenate([np.full(v.size, i) for i, v in enumerate(vals)])
    order = np.argsort(np.concatenate(vals), kind="stable")
    counts = [0] * len(arrays)

    def total() -> int:
        return sum(max(lo[i], min(hi[i], c)) for i, c in enumerate(counts))

    for pos in order:
        if total() >= k:
            break
        counts[owner[pos]] += 1
    pruned = [max(lo[i], min(hi[i], c)) for i, c in enumerate(counts)]
    return [to_numpy(topk_mask(v, p).mask).reshape(a.shape) for v, p, a in zip(vals, pruned, arrays)]


@st.composite
def models(draw, dtypes=FLOAT_DTYPES, max_layers=5, mixed=False):
    """A list of arrays (shapes 0-3 dims, some empty) with ties, +/-0, +/-inf for floats."""
    n = draw(st.integers(1, max_layers))
    shared = draw(st.sampled_from(dtypes))
    arrays = []
    for _ in range(n):
        dtype = draw(st.sampled_from(dtypes)) if mixed else shared
        shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5))
        if np.dtype(dtype).kind == "f":
            elements = st.one_of(TIES, st.floats(-1e3, 1e3, width=16))
        else:
            info = np.iinfo(dtype)
            elements = st.integers(max(int(info.min), -300), min(int(info.max), 300))
        arrays.append(draw(hnp.arrays(dtype, shape, elements=elements)))
    return arrays


def dtypes_for(backend: Backend, dtypes: list) -> list:
    """array-api-strict has no float16."""
    return [d for d in dtypes if not (backend is Backend.ARRAY_API_STRICT and d is np.float16)]


def sparsities(total: int):
    halves = st.integers(0, 2 * max(total, 1)).map(lambda j: j / (2 * max(total, 1)))
    return st.one_of(st.floats(0, 1), halves, st.integers(0, total))


def as_model(arrays: list[np.ndarray], backend: Backend) -> dict:
    """Nested: every other layer under a sub-mapping, to exercise flattening."""
    model: dict = {}
    for i, a in enumerate(arrays):
        if i % 2:
            model.setdefault("block", {})[f"w{i}"] = backend.asarray(a)
        else:
            model[f"layer{i}"] = backend.asarray(a)
    return model


def got_masks(mm: ModelMask) -> list[np.ndarray]:
    return [to_numpy(m.mask) for m in mm.values()]


# -- the global threshold ---------------------------------------------------------
@pytest.mark.parametrize("backend", AVAILABLE, ids=lambda b: b.value)
@given(data=st.data())
def test_global_equals_concatenated_topk(backend: Backend, data) -> None:
    arrays = data.draw(models(dtypes_for(backend, FLOAT_DTYPES + INT_DTYPES)), label="arrays")
    total = sum(a.size for a in arrays)
    s = data.draw(sparsities(total), label="sparsity")
    magnitude = data.draw(st.booleans(), label="magnitude")
    model = as_model(arrays, backend)
    mm = global_mask(model, s, magnitude=magnitude)
    # layers come back in the flattened order, which as_model keeps equal to the list order
    names = list(flatten_model(model))
    order = [names.index(n) for n in mm]
    assert order == sorted(order)
    flat_arrays = [arrays[int(re.search(r"\d+", n).group())] for n in names]
    for got, want in zip(got_masks(mm), concat_oracle(flat_arrays, s, magnitude)):
        np.testing.assert_array_equal(got, want)
    assert mm.num_pruned == (s if isinstance(s, int) else round(s * total))
    for m, a in zip(mm.values(), flatten_model(model).values()):
        assert type(m.mask) is type(a)


@pytest.mark.parametrize("lib", [Backend.NUMPY, Backend.TORCH, Backend.ARRAY_API_STRICT], ids=lambda b: b.value)
@given(data=st.data())
def test_mixed_dtypes_rank_by_value(lib: Backend, data) -> None:
    dtypes = [np.float16, np.float32, np.float64, np.int8, np.int32, np.uint8]
    arrays = data.draw(models(dtypes_for(lib, dtypes), mixed=True))
    s = data.draw(st.floats(0, 1))
    magnitude = data.draw(st.booleans())
    mm = global_mask({f"l{i}": lib.asarray(a) for i, a in enumerate(arrays)}, s, magnitude=magnitude)
    for got, want in zip(got_masks(mm), concat_oracle(arrays, s, magnitude)):
        np.testing.assert_array_equal(got, want)


def test_int64_beyond_float64_precision_is_exact_within_one_dtype() -> None:
    big = 2**60
    model = {"a": np.array([big + 3, big + 1], dtype=np.int64), "b": np.array([big + 2, big], dtype=np.int64)}
    mm = global_mask(model, 2)
    assert to_numpy(mm["a"].mask).tolist() == [True, False]
    assert to_numpy(mm["b"].mask).tolist() == [True, False]


@pytest.mark.parametrize("backend", AVAILABLE, ids=lambda b: b.value)
def test_ties_go_to_the_earlier_layer_then_lower_index(backend: Backend) -> None:
    model = {"a": backend.asarray(np.zeros((2, 3))), "b": backend.asarray(np.zeros(4)), "c": backend.asarray(-np.zeros(2))}
    mm = global_mask(model, 7)
    assert [r.pruned for r in mm.report] == [6, 1, 0]
    assert to_numpy(mm["b"].mask).tolist() == [False, True, True, True]


def test_matches_torch_global_unstructured_on_tie_free_weights() -> None:
    rng = np.random.default_rng(0)
    shapes = [(16, 8), (32,), (4, 3, 3, 3), (10, 10)]
    weights = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    modules = []
    for w in weights:
        m = torch.nn.Module()
        m.weight = torch.nn.Parameter(torch.from_numpy(w.copy()))
        modules.append(m)
    torch_prune.global_unstructured([(m, "weight") for m in modules], torch_prune.L1Unstructured, amount=0.37)
    mm = global_mask({f"m{i}": w for i, w in enumerate(weights)}, 0.37, magnitude=True)
    for m, got in zip(modules, got_masks(mm)):
        np.testing.assert_array_equal(got, m.weight_mask.numpy().astype(bool))


@pytest.mark.parametrize("backend", AVAILABLE, ids=lambda b: b.value)
def test_nan_raises_with_count_and_layer_name(backend: Backend) -> None:
    model = {"ok": backend.asarray(np.ones(3)), "bad": {"w": backend.asarray(np.array([1.0, np.nan, np.nan]))}}
    with pytest.raises(ValueError, match=r"'bad\.w'.*2 NaN"):
        global_mask(model, 0.5)


# -- per-layer bounds -------------------------------------------------------------
@pytest.mark.parametrize("lib", [Backend.NUMPY, Backend.TORCH, Backend.ARRAY_API_STRICT], ids=lambda b: b.value)
@given(data=st.data())
def test_bounds_clamp_each_layer_and_keep_the_global_count(lib: Backend, data) -> None:
    arrays = data.draw(models([np.float32, np.float64], max_layers=4))
    sizes = [a.size for a in arrays]
    lo_f = data.draw(st.sampled_from([0.0, 0.1, 0.25, 0.5]))
    hi_f = data.draw(st.sampled_from([0.5, 0.6, 0.9, 1.0]))
    lo = [round(lo_f * n) for n in sizes]
    hi = [round(hi_f * n) for n in sizes]
    k = data.draw(st.integers(sum(lo), sum(hi)))
    magnitude = data.draw(st.booleans())
    model = {f"l{i}": lib.asarray(a) for i, a in enumerate(arrays)}
    mm = global_mask(model, k, magnitude=magnitude, min_sparsity=lo_f, max_sparsity=hi_f)
    assert mm.num_pruned == k
    for r, a, b in zip(mm.report, lo, hi):
        assert a <= r.pruned <= b
    for got, want in zip(got_masks(mm), bounded_oracle(arrays, k, lo, hi, magnitude)):
        np.testing.assert_array_equal(got, want)


def test_bounds_report_which_layers_were_clamped() -> None:
    model = {"small": np.arange(1.0, 11.0), "large": np.arange(100.0, 110.0)}
    mm = global_mask(model, 0.5, min_sparsity=0.2, max_sparsity=0.7)
    assert [r.pruned for r in mm.report] == [7, 3]
    assert [r.rule for r in mm.report] == ["global, max_sparsity", "global"]
    mm = global_mask(model, 0.5)
    assert [r.pruned for r in mm.report] == [10, 0]


def test_infeasible_bounds_and_bad_bounds_raise() -> None:
    model = {"a": np.ones(10), "b": np.ones(10)}
    with pytest.raises(ValueError, match="allow only 10 to 20"):
        global_mask(model, 0.2, min_sparsity=0.5)
    with pytest.raises(ValueError, match="exceeds max_sparsity"):
        global_mask(model, 0.5, min_sparsity=0.6, max_sparsity=0.4)
    with pytest.raises(ValueError, match="min_sparsity"):
        global_mask(model, 0.5, min_sparsity=1.5)
    with pytest.raises(TypeError, match="max_sparsity"):
        global_mask(model, 0.5, max_sparsity="1")


# -- name rules -------------------------------------------------------------------
def _mlp(rng: np.random.Generator) -> dict:
    return {
        "fc1": {"weight": rng.standard_normal((6, 4)), "bias": rng.standard_normal(6)},
        "fc2": {"weight": rng.standard_normal((3, 6)), "bias": rng.standard_normal(3)},
        "head": {"weight": rng.standard_normal((2, 3))},
    }


def test_exclusions_and_overrides_by_glob_and_regex() -> None:
    model = _mlp(np.random.default_rng(1))
    flat = flatten_model(model)
    mm = global_mask(
        model, 0.5, magnitude=True, exclude=["*.bias"], overrides={re.compile(r"^head\."): 0.0, "fc2.*": 0.9}
    )
    rules = {r.name: r.rule for r in mm.report}
    assert rules["fc1.bias"] == "excluded '*.bias'"
    assert rules["fc2.bias"] == "excluded '*.bias'"  # exclusion wins over the fc2.* override
    assert rules["head.weight"].startswith("override re.compile('^head\\\\.')")
    assert rules["fc2.weight"] == "override 'fc2.*' -> 0.9"
    assert rules["fc1.weight"] == "global"
    assert to_numpy(mm["fc1.bias"].mask).all() and to_numpy(mm["head.weight"].mask).all()
    want = to_numpy(topk_mask(flat["fc2.weight"], 0.9, magnitude=True).mask)
    np.testing.assert_array_equal(to_numpy(mm["fc2.weight"].mask), want)
    # the pool is fc1.weight alone: global == its own top-k
    np.testing.assert_array_equal(
        to_numpy(mm["fc1.weight"].mask), to_numpy(topk_mask(flat["fc1.weight"], 0.5, magnitude=True).mask)
    )
    text = str(mm.report)
    assert "fc1.weight" in text and "excluded" in text and "total" in text


def test_unknown_patterns_and_bad_rules_raise() -> None:
    model = _mlp(np.random.default_rng(2))
    with pytest.raises(ValueError, match=r"exclude pattern '\*\.bais' matches no layer"):
        global_mask(model, 0.5, exclude="*.bais")
    with pytest.raises(ValueError, match="overrides pattern"):
        global_mask(model, 0.5, overrides={re.compile("conv"): 0.1})
    with pytest.raises(TypeError, match="exclude entries"):
        global_mask(model, 0.5, exclude=[3])
    with pytest.raises(TypeError, match="overrides must be a mapping"):
        global_mask(model, 0.5, overrides=["fc1.*"])
    with pytest.raises(ValueError, match="overrides"):
        global_mask(model, 0.5, overrides={"fc1.*": 1.5})


# -- bad inputs -------------------------------------------------------------------
def test_bad_models_raise() -> None:
    with pytest.raises(ValueError, match="holds no arrays"):
        global_mask({}, 0.5)
    with pytest.raises(ValueError, match="holds no arrays"):
        global_mask({"a": {}}, 0.5)
    with pytest.raises(TypeError, match=r"scores\['a'\] must be an array"):
        global_mask({"a": [1.0, 2.0]}, 0.5)
    with pytest.raises(TypeError, match="different array libraries"):
        global_mask({"a": np.ones(2), "b": torch.ones(2)}, 0.5)
    with pytest.raises(TypeError, match="bool"):
        global_mask({"a": np.ones(2, bool)}, 0.5)
    with pytest.raises(TypeError, match="complex"):
        global_mask({"a": np.ones(2, complex)}, 0.5)
    with pytest.raises(TypeError, match="mapping"):
        global_mask([np.ones(2)], 0.5)
    with pytest.raises(TypeError, match="keys must be str"):
        global_mask({1: np.ones(2)}, 0.5)
    with pytest.raises(ValueError, match="same name 'a.b'"):
        global_mask({"a.b": np.ones(2), "a": {"b": np.ones(2)}}, 0.5)
    with pytest.raises(TypeError, match="magnitude"):
        global_mask({"a": np.ones(2)}, 0.5, magnitude=1)
    with pytest.raises(TypeError, match="bool"):
        global_mask({"a": np.ones(2)}, True)
    with pytest.raises(ValueError, match=r"must lie in \[0, 2\]"):
        global_mask({"a": np.ones(2)}, 3)


# -- memory -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "dtypes",
    [[np.float32], [np.float16], [np.float32, np.float64, np.int32]],
    ids=["float32", "float16-widened", "mixed-as-float64"],
)
@pytest.mark.parametrize("bounds", [False, True], ids=["plain", "bounded"])
def test_peak_extra_memory_is_bounded_by_the_largest_array(dtypes, bounds) -> None:
    rng = np.random.default_rng(3)
    sizes = [1_000_000] + [200_000] * 15  # model ~ 4x the largest array
    model = {f"l{i}": rng.standard_normal(n).astype(dtypes[i % len(dtypes)]) for i, n in enumerate(sizes)}
    options = {"min_sparsity": 0.1, "max_sparsity": 0.9} if bounds else {}
    global_mask({"warm": np.ones(10, dtypes[0])}, 0.5, **options)  # compile outside the measurement
    tracemalloc.start()
    try:
        mm = global_mask(model, 0.5, magnitude=True, **options)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    masks = sum(m.size for m in mm.values())  # the result: one bool per value
    largest = max(a.nbytes for a in model.values())
    widened = max(n for n in sizes) * 8  # a float64 copy of the largest array, at most
    model_bytes = sum(a.nbytes for a in model.values())
    extra = peak - masks
    assert extra <= 2 * max(largest, widened) + (4 << 20), (extra, largest)
    assert extra < model_bytes  # a concatenation alone would be at least this
    assert mm.num_pruned == round(0.5 * sum(sizes))


# -- ModelMask --------------------------------------------------------------------
@pytest.mark.parametrize("backend", AVAILABLE, ids=lambda b: b.value)
def test_apply_returns_a_new_model_and_apply_in_place(backend: Backend) -> None:
    rng = np.random.default_rng(4)
    raw = _mlp(rng)
    model = {k: {n: backend.asarray(v) for n, v in layer.items()} for k, layer in raw.items()}
    mm = global_mask(model, 0.5, magnitude=True)
    pruned = mm.apply(model)
    assert list(flatten_model(pruned)) == list(flatten_model(model))
    for name, w in flatten_model(model).items():
        np.testing.assert_array_equal(to_numpy(w), flatten_model(raw)[name])  # untouched
        want = np.where(to_numpy(mm[name].mask), flatten_model(raw)[name], 0)
        np.testing.assert_array_equal(to_numpy(flatten_model(pruned)[name]), want)
    out = mm.apply_(model)
    assert out is model
    for name, w in flatten_model(model).items():
        np.testing.assert_array_equal(to_numpy(w), to_numpy(flatten_model(pruned)[name]))


def test_apply_in_place_reaches_a_torch_module_through_its_state_dict() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(8, 6), torch.nn.ReLU(), torch.nn.Linear(6, 2))
    mm = global_mask(dict(net.state_dict()), 0.5, magnitude=True, exclude="*.bias")
    mm.apply_(net.state_dict())
    assert int((net[0].weight == 0).sum() + (net[2].weight == 0).sum()) == round(0.5 * (48 + 12))
    assert bool((net[0].bias != 0).all())


def test_model_mask_is_a_read_only_mapping_with_checks() -> None:
    mm = ModelMask({"a": {"w": np.array([True, False, False, True])}, "b": PruningMask(np.ones(2, bool))})
    assert list(mm) == ["a.w", "b"] and len(mm) == 2 and mm.sparsity == 2 / 6
    assert isinstance(mm.report[0], LayerReport) and mm.report[0].rule == "given"
    with pytest.raises(TypeError):
        mm["b"] = None  # type: ignore[index]
    with pytest.raises(ValueError, match="no layer named 'a.w'"):
        mm.apply({"b": np.ones(2)})
    with pytest.raises(ValueError, match=r"layer 'b'.*shape"):
        mm.apply({"a": {"w": np.ones(4)}, "b": np.ones(3)})
    with pytest.raises(TypeError, match=r"masks\['a'\]"):
        ModelMask({"a": np.ones(2)})
    ro = np.ones(2)
    ro.flags.writeable = False
    model = {"a": {"w": np.ones(4)}, "b": ro}
    mm.apply_(model)
    assert model["b"] is not ro and ro.all()


def test_flatten_and_unflatten_round_trip() -> None:
    model = {"x": {"y": {"z": 1}, "w": 2}, "v": 3}
    flat = flatten_model(model)
    assert flat == {"x.y.z": 1, "x.w": 2, "v": 3}
    assert unflatten_model(flat, like=model) == model
    with pytest.raises(ValueError, match="missing"):
        unflatten_model({"v": 3}, like=model)


# -- layer-wise -------------------------------------------------------------------
@pytest.mark.parametrize("backend", AVAILABLE, ids=lambda b: b.value)
@pytest.mark.parametrize(
    ("strategy", "pattern", "sparsity"),
    [
        (MagnitudePruning(), None, 0.5),
        (GradientPruning(), None, 0.3),
        (RandomPruning(seed=7), None, 0.6),
        (StructuredPruning(SparsityPattern.rows()), None, 0.5),
        (MagnitudePruning(), SparsityPattern.two_four(), None),
        (GradientPruning(), SparsityPattern.n_m(1, 2), None),
    ],
    ids=["magnitude", "gradient", "random", "rows", "2:4", "gradient-1:2"],
)
def test_layer_masks_equal_the_strategy_per_layer(backend: Backend, strategy, pattern, sparsity) -> None:
    rng = np.random.default_rng(5)
    raw = {"a": {"w": rng.standard_normal((4, 8))}, "b": rng.standard_normal((6, 4)), "c": rng.standard_normal(8)}
    model = {"a": {"w": backend.asarray(raw["a"]["w"])}, "b": backend.asarray(raw["b"])}
    grads_raw = {n: rng.standard_normal(w.shape) for n, w in flatten_model(raw).items()}
    grads = {n: backend.asarray(g) for n, g in grads_raw.items() if n != "c"}
    mm = layer_masks(model, sparsity, strategy=strategy, pattern=pattern, gradients=grads)
    for name, w in flatten_model(model).items():
        g = grads[name] if strategy.requires_gradients else None
        scores = strategy.compute_importance_scores(w, g)
        if pattern is None:
            want = strategy.create_mask(scores, sparsity)
        else:
            want = type(strategy)(pattern).create_mask(scores, sparsity)
        np.testing.assert_array_equal(to_numpy(mm[name].mask), to_numpy(want.mask))
        assert mm[name].pattern == want.pattern
    assert all(r.rule == "layer" for r in mm.report)


def test_layer_masks_rules_and_errors_name_the_layer() -> None:
    rng = np.random.default_rng(6)
    model = {"fc": {"weight": rng.standard_normal((4, 8)), "bias": rng.standard_normal(3)}}
    mm = layer_masks(model, pattern=SparsityPattern.two_four(), exclude="*.bias")
    assert [r.rule for r in mm.report] == ["layer", "excluded '*.bias'"]
    assert mm["fc.weight"].sparsity == 0.5 and mm["fc.bias"].sparsity == 0.0
    mm = layer_masks(model, 0.25, overrides={"*.bias": 2})
    assert [r.pruned for r in mm.report] == [8, 2]
    with pytest.raises(ValueError, match=r"layer 'fc\.bias'.*m=4 must divide"):
        layer_masks(model, pattern=SparsityPattern.two_four())
    with pytest.raises(ValueError, match="needs gradients"):
        layer_masks(model, 0.5, strategy=GradientPruning())
    with pytest.raises(ValueError, match="lacks 1 pruned layer"):
        layer_masks(model, 0.5, strategy=GradientPruning(), gradients={"fc": {"weight": np.ones((4, 8))}})
    with pytest.raises(ValueError, match="names the model lacks"):
        layer_masks(model, 0.5, gradients={"fc.weight": np.ones((4, 8)), "other": np.ones(1)})
    with pytest.raises(TypeError, match="strategy must be a PruningStrategy"):
        layer_masks(model, 0.5, strategy="magnitude")


def _zeros(model) -> dict[str, int]:
    return {n: int((to_numpy(a) == 0).sum()) for n, a in flatten_model(model).items()}


@pytest.mark.parametrize("backend", AVAILABLE, ids=lambda b: b.value)
def test_prune_model_twice_reports_the_zeros_of_the_returned_model(backend) -> None:
    """A second call's report counted the weights zeroed by the first as "excluded 0.00%" and
    gave the masks' total: it describes the returned model now (zeros per layer, their total
    fraction), and an excluded line still means a layer this call left alone."""
    rng = np.random.default_rng(11)
    model = {"fc1": {"weight": rng.standard_normal((64, 32)), "bias": rng.standard_normal(64)},
             "fc2": {"weight": rng.standard_normal((10, 64)), "bias": rng.standard_normal(10)}}
    model = unflatten_model({n: backend.asarray(a) for n, a in flatten_model(model).items()}, like=model)
    step1, _ = prune_model(model, 0.5, scope="layer", exclude=["*.bias", "fc2.*"])
    for second in (
        lambda m: prune_model(m, 0.5, scope="layer", exclude=["*.bias", "fc1.*"]),  # the other layer
        lambda m: prune_model(m, 0.25, exclude="*.bias"),  # global, below what fc1 already has
    ):
        step2, mm = second(step1)
        zeros = _zeros(step2)
        size = sum(r.size for r in mm.report)
        assert [r.zeros for r in mm.report] == [zeros[r.name] for r in mm.report]
        assert mm.report.zeros == sum(zeros.values())
        assert mm.report.sparsity == sum(zeros.values()) / size  # the real fraction of zeros
        fc1 = mm.report[0]
        assert fc1.zeros == 1024 and fc1.sparsity == 0.5
        assert mm.num_pruned == sum(r.pruned for r in mm.report)  # the masks' own count, unchanged
        assert mm.sparsity == mm.num_pruned / size
        for r in mm.report:
            if r.rule.startswith("excluded"):
                assert r.pruned == 0 and to_numpy(mm[r.name].mask).all()
        text = str(mm.report)
        assert text.splitlines()[0].split() == ["name", "shape", "size", "pruned", "zeros", "sparsity", "rule"]
        assert text.splitlines()[-1].split()[-1] == f"{100 * mm.report.sparsity:.2f}%"
    rules = [r.rule for r in prune_model(step1, 0.5, scope="layer", exclude=["*.bias", "fc1.*"])[1].report]
    assert rules == ["excluded 'fc1.*'", "excluded '*.bias'", "layer", "excluded '*.bias'"]


def test_reports_without_a_model_count_the_masks() -> None:
    """global_mask / layer_masks return masks only: no zeros column, sparsity of the masks."""
    model = _mlp(np.random.default_rng(12))
    mm = global_mask(model, 0.5, magnitude=True)
    assert mm.report.zeros is None and all(r.zeros is None for r in mm.report)
    assert mm.report.sparsity == mm.sparsity == mm.num_pruned / mm.size
    assert "zeros" not in str(mm.report).splitlines()[0]
    assert LayerReport("a", (4,), 4, 1, "given").sparsity == 0.25
    assert LayerReport("a", (4,), 4, 1, "given", zeros=3).sparsity == 0.75


def test_prune_model_scopes() -> None:
    rng = np.random.default_rng(7)
    model = _mlp(rng)
    grads = {n: rng.standard_normal(w.shape) for n, w in flatten_model(model).items()}
    _, mm = prune_model(model, 0.5)
    ref = global_mask(model, 0.5, magnitude=True)
    for name in mm:
        np.testing.assert_array_equal(to_numpy(mm[name].mask), to_numpy(ref[name].mask))
    assert mm.num_pruned == round(0.5 * mm.size)
    _, mm = prune_model(model, 0.5, strategy=GradientPruning(), gradients=grads)
    scores = {n: np.abs(w * grads[n]) for n, w in flatten_model(model).items()}
    ref = global_mask(scores, 0.5)
    for name in mm:
        np.testing.assert_array_equal(to_numpy(mm[name].mask), to_numpy(ref[name].mask))
    _pruned, mm = prune_model(model, 0.5, scope="layer", exclude="*.bias")
    assert all(r.sparsity == 0.5 for r in mm.report if r.rule == "layer")
    with pytest.raises(ValueError, match="needs scope='layer'"):
        prune_model(model, 0.5, pattern=SparsityPattern.rows())
    with pytest.raises(ValueError, match="scope='layer'"):
        prune_model(model, 0.5, scope="layer", min_sparsity=0.1)
    with pytest.raises(ValueError, match="scope='model'"):
        prune_model(model, 0.5, scope="model")
