"""The one rule for the pruned count, and the shared argument checks."""

from __future__ import annotations

import re

import numpy as np
import pytest

from arraysparse._validation import check_nm, normalize_axis, prune_count


@pytest.mark.parametrize(
    ("sparsity", "size", "count"),
    [
        (0.5, 5, 2),  # round half to even, as torch.nn.utils.prune
        (0.5, 7, 4),
        (0.5, 6, 3),
        (0.3, 10, 3),
        (0.0, 9, 0),
        (1.0, 9, 9),
        (1, 9, 1),  # an int is a count
        (9, 9, 9),
        (0, 0, 0),
        (0.5, 0, 0),
        (np.float32(0.25), 8, 2),
        (np.int64(3), 8, 3),
    ],
)
def test_prune_count(sparsity, size, count) -> None:
    assert prune_count(sparsity, size) == count


def test_prune_count_matches_torch() -> None:
    from torch.nn.utils.prune import _compute_nparams_toprune

    for size in range(0, 40):
        for s in np.linspace(0, 1, 41):
            assert prune_count(float(s), size) == _compute_nparams_toprune(float(s), size)


@pytest.mark.parametrize(
    ("sparsity", "exc", "match"),
    [
        (-0.01, ValueError, r"sparsity=-0.01 must be a fraction in \[0, 1\]"),
        (1.01, ValueError, "sparsity=1.01"),
        (float("nan"), ValueError, "sparsity=nan"),
        (True, TypeError, "sparsity=True is a bool"),
        (np.bool_(False), TypeError, "is a bool"),
        (11, ValueError, r"sparsity=11 is a count of items to prune and must lie in \[0, 10\]"),
        (-1, ValueError, "sparsity=-1"),
        ("0.5", TypeError, "got str"),
        (None, TypeError, "got NoneType"),
    ],
)
def test_prune_count_refuses(sparsity, exc, match) -> None:
    with pytest.raises(exc, match=match):
        prune_count(sparsity, 10)


def test_axis_and_nm_checks() -> None:
    assert normalize_axis(-1, 3) == 2
    assert check_nm(np.int32(2), 4) == (2, 4)
    with pytest.raises(ValueError, match="axis=3 is out of range for an array of 3"):
        normalize_axis(3, 3)
    with pytest.raises(TypeError, match="axis must be an int"):
        normalize_axis(True, 3)


# -- None where an array belongs ------------------------------------------------------------
def _none_cases(bad=None):
    """(label, call, argument named in the error) for every public function taking an array,
    given ``bad`` where the array belongs."""
    import arraysparse as asp

    w = np.arange(1, 17, dtype=np.float32).reshape(4, 4)
    x = np.ones((8, 4), np.float32)
    acc = asp.HessianAccumulator()
    acc.update(x)
    h = acc.hessian
    mask = asp.topk_mask(w, 0.5)
    pattern = asp.SparsityPattern.unstructured()
    cases = [
        ("topk_mask", lambda: asp.topk_mask(bad, 0.5), "scores"),
        ("nm_mask", lambda: asp.nm_mask(bad, 2, 4), "scores"),
        ("structured_mask", lambda: asp.structured_mask(bad, 0.5), "scores"),
        ("block_mask", lambda: asp.block_mask(bad, 0.5, block=(2, 2)), "scores"),
        ("random_mask", lambda: asp.random_mask(bad, 0.5), "like"),
        ("create_mask", lambda: asp.create_mask(bad, 0.5, pattern), "scores"),
        ("apply_mask weights", lambda: asp.apply_mask(bad, mask), "weights"),
        ("apply_mask mask", lambda: asp.apply_mask(w, bad), "mask"),
        ("PruningMask", lambda: asp.PruningMask(bad), "mask"),
        ("PruningMask.from_zeros", lambda: asp.PruningMask.from_zeros(bad), "x"),
        ("PruningMask.apply", lambda: mask.apply(bad), "weights"),
        ("PruningMask.apply_", lambda: mask.apply_(bad), "weights"),
        ("magnitude_scores", lambda: asp.magnitude_scores(bad), "weights"),
        ("gradient_scores", lambda: asp.gradient_scores(bad, w), "weights"),
        ("structure_scores", lambda: asp.structure_scores(bad), "weights"),
        ("block_scores", lambda: asp.block_scores(bad, (2, 2)), "weights"),
        ("random_scores", lambda: asp.random_scores(bad, seed=0), "like"),
        ("taylor_scores", lambda: asp.taylor_scores(bad, w), "weights"),
        ("snip_scores", lambda: asp.snip_scores(bad, w), "weights"),
        ("movement_scores", lambda: asp.movement_scores(bad, w), "weights"),
        ("wanda_scores weights", lambda: asp.wanda_scores(bad, np.ones(4, np.float32)), "weights"),
        ("wanda_scores norms", lambda: asp.wanda_scores(w, bad), "norms"),
        ("sparsegpt_prune weights", lambda: asp.sparsegpt_prune(bad, h, 0.5), "weights"),
        ("sparsegpt_prune hessian", lambda: asp.sparsegpt_prune(w, bad, 0.5), "hessian"),
        ("compress", lambda: asp.compress(bad), "x"),
        ("compress bitmask", lambda: asp.compress(bad, "bitmask"), "x"),
        ("to_cutlass", lambda: asp.to_cutlass(bad), "dense"),
        ("from_cutlass values", lambda: asp.from_cutlass(bad, np.zeros((4, 1), np.int16)), "values"),
        ("from_cutlass meta", lambda: asp.from_cutlass(np.zeros((4, 2), np.float16), bad), "meta"),
        ("cutlass_meta_from_positions", lambda: asp.cutlass_meta_from_positions(bad, "float16"), "positions"),
        ("positions_from_cutlass_meta", lambda: asp.positions_from_cutlass_meta(bad, "float16"), "meta"),
        ("from_scipy", lambda: asp.from_scipy(bad), "matrix"),
        ("from_torch", lambda: asp.from_torch(bad), "tensor"),
        ("from_cupyx", lambda: asp.from_cupyx(bad), "matrix"),
        ("from_sparse", lambda: asp.from_sparse(bad), "obj"),
        ("to_scipy", lambda: asp.to_scipy(bad), "result"),
        ("to_torch", lambda: asp.to_torch(bad), "result"),
        ("to_cupyx", lambda: asp.to_cupyx(bad), "result"),
        ("global_mask value", lambda: asp.global_mask({"a": w, "b": bad}, 0.5), r"scores\['b'\]"),
        ("global_mask only value", lambda: asp.global_mask({"a": bad}, 0.5), r"scores\['a'\]"),
        ("layer_masks value", lambda: asp.layer_masks({"a": w, "b": bad}, 0.5), r"model\['b'\]"),
        ("prune_model value", lambda: asp.prune_model({"a": w, "b": bad}, 0.5), r"model\['b'\]"),
        ("prune_model layer value", lambda: asp.prune_model({"a": bad}, 0.5, scope="layer"), r"model\['a'\]"),
        ("HessianAccumulator.update", lambda: asp.HessianAccumulator().update(bad), "x"),
        ("InputNormAccumulator.update", lambda: asp.InputNormAccumulator().update(bad), "x"),
        ("MovementPruning.update", lambda: asp.MovementPruning().update(bad, w), "weights"),
        ("LotteryTicketPruning.record_rewind_point", lambda: asp.LotteryTicketPruning().record_rewind_point(bad), "weights"),
        ("WandaPruning.calibrate", lambda: asp.WandaPruning().calibrate(bad), "x"),
        ("SparseGPTPruning.calibrate", lambda: asp.SparseGPTPruning().calibrate(bad), "x"),
    ]
    needs_gradients = {"GradientPruning", "TaylorPruning", "SNIPPruning", "MovementPruning"}
    for name in ("MagnitudePruning", "GradientPruning", "StructuredPruning", "RandomPruning", "TaylorPruning",
                 "SNIPPruning", "MovementPruning", "LotteryTicketPruning", "WandaPruning", "SparseGPTPruning"):
        strategy = getattr(asp, name)

        def make(cls=strategy):
            s = cls()
            if hasattr(s, "calibrate"):
                s.calibrate(x)
            return s

        grads = w if name in needs_gradients else None
        cases += [
            (f"{name}.prune", lambda make=make, g=grads: make().prune(bad, 0.5, gradients=g), "weights"),
            (f"{name}.compute_importance_scores",
             lambda make=make, g=grads: make().compute_importance_scores(bad, g), "weights"),
            (f"{name}.create_mask", lambda make=make: make().create_mask(bad, 0.5), "scores"),
        ]
        if grads is None:  # an optional argument left out (None) is still fine
            cases.append((f"{name}.prune gradients=None", lambda make=make: make().prune(w, 0.5, gradients=None), ""))
    return cases


NONE_CASES = _none_cases()


@pytest.mark.parametrize(("call", "name"), [c[1:] for c in NONE_CASES], ids=[c[0] for c in NONE_CASES])
def test_none_as_an_array_is_a_type_error_naming_the_argument(call, name) -> None:
    """Every public function given None for an array raises TypeError naming that argument
    (not an IndexError from deep inside); None for an optional argument is still accepted."""
    if name == "":
        call()
        return
    with pytest.raises(TypeError, match=rf"^{name} must be .*, got (None|NoneType)$"):
        call()


class _CupyxMatrix:
    """Stands for a cupyx.scipy.sparse matrix (no CuPy needed): only its type's module is read."""


_CupyxMatrix.__module__ = "cupyx.scipy.sparse._csr"


def _sparse_objects():
    """(label, object, the way in the error names, the dense alternative) for each sparse library."""
    sp = pytest.importorskip("scipy.sparse")
    torch = pytest.importorskip("torch")
    dense = np.eye(4, dtype=np.float32)
    return [
        ("scipy csr_matrix", sp.csr_matrix(dense), "from_scipy", "toarray()"),
        ("scipy coo_array", sp.coo_array(dense), "from_scipy", "toarray()"),
        ("torch sparse_coo", torch.from_numpy(dense).to_sparse(), "from_torch", "to_dense()"),
        ("torch sparse_csr", torch.from_numpy(dense).to_sparse_csr(), "from_torch", "to_dense()"),
        ("cupyx csr_matrix", _CupyxMatrix(), "from_cupyx", "toarray()"),
    ]


# every public function that takes an array (the interop functions take sparse objects on purpose)
SPARSE_CASES = [c for c in NONE_CASES if c[2] and not c[0].startswith(("from_", "to_scipy", "to_torch", "to_cupyx"))]


def test_a_sparse_out_is_refused_as_not_dense() -> None:
    import arraysparse as asp

    sp = pytest.importorskip("scipy.sparse")
    r = asp.compress(np.eye(4), "csr")
    with pytest.raises(TypeError, match="^out must be a dense array, got a scipy.sparse csr_matrix$"):
        r.to_dense(out=sp.csr_matrix(np.eye(4)))


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta:UserWarning")
@pytest.mark.parametrize("kind", range(5), ids=["scipy csr_matrix", "scipy coo_array", "torch sparse_coo",
                                                  "torch sparse_csr", "cupyx csr_matrix"])
@pytest.mark.parametrize("label", [c[0] for c in SPARSE_CASES])
def test_a_sparse_object_where_an_array_belongs_points_to_its_importer(kind, label) -> None:
    """compress(scipy_matrix) and friends say how to bring the object in, whatever the function."""
    _, obj, importer, dense = _sparse_objects()[kind]
    call = {c[0]: c for c in _none_cases(obj)}[label][1]
    name = {c[0]: c[2] for c in SPARSE_CASES}[label]
    with pytest.raises(TypeError, match=rf"^{name} is a .*not a dense array: use arraysparse\.{importer}\({name}\).*\.{re.escape(dense)}$"):
        call()


def test_array_namespace_refuses_none_and_nothing() -> None:
    from arraysparse._compat import array_namespace

    with pytest.raises(TypeError, match="^x must be an array, got None$"):
        array_namespace(x=None)
    with pytest.raises(TypeError, match="^y must be an array, got None$"):
        array_namespace(x=np.zeros(2), y=None)
    with pytest.raises(TypeError, match="needs at least one named array"):
        array_namespace()
    assert array_namespace(x=np.zeros(2)) is not None
