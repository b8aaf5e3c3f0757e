"""The command line (issue 13.2-3) and prune_checkpoint, the out-of-core prune it runs (issue 12.5).

Library checks run in process: prune_checkpoint's tensors equal prune_model's
on the whole model in memory, bit for bit, for every scope, bound and tie; a
counted source shows how many times each tensor is read. The CLI runs in
subprocesses (``python -m arraysparse``) on a safetensors file, an .npz and a
shard directory with a Hugging Face index, and its output is checked against
the library in process; bad input is checked through the console script's
entry function (``arraysparse.cli.main``) and, for the exit status itself,
in subprocesses. A subprocess measures the peak memory of a streamed global
prune, another is killed mid-write.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
import tomllib

import arraysparse as asp
from arraysparse.cli import main
from arraysparse.cli._inspect import tensor_stats
from arraysparse.demo import MODEL_PATH
from arraysparse.io import open_checkpoint, write_checkpoint
from arraysparse.strategies.wanda import wanda_scores

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
WEIGHTS = ["layers.0.attn.weight", "layers.0.mlp.weight", "layers.1.attn.weight", "layers.1.mlp.weight"]


def cli(*args: object, timeout: float = 180) -> subprocess.CompletedProcess:
    """``python -m arraysparse ARGS`` in a fresh process."""
    return subprocess.run(
        [sys.executable, "-m", "arraysparse", *map(str, args)], capture_output=True, text=True, env=ENV,
        timeout=timeout,
    )


def make_model(seed: int = 0) -> dict[str, np.ndarray]:
    """Four weights (float32 and one float16: mixed key widths; rounded: many ties; never zero), a
    bias, a norm and an integer buffer (the last three pass through by default)."""
    rng = np.random.default_rng(seed)

    def weight(shape: tuple[int, int], dtype: type = np.float32) -> np.ndarray:
        w = np.round(rng.standard_normal(shape), 1) + 0.05  # a grid of ties, no zero
        return w.astype(dtype)

    return {
        "layers.0.attn.weight": weight((48, 64)),
        "layers.0.attn.bias": rng.standard_normal(48).astype(np.float32),
        "layers.0.mlp.weight": weight((64, 48)),
        "layers.1.attn.weight": weight((48, 64), np.float16),
        "layers.1.mlp.weight": weight((64, 48)),
        "norm.weight": np.ones(64, np.float32),
        "step": np.array([1000], np.int64),
    }


def same(a: np.ndarray, b: np.ndarray) -> bool:
    """Bit for bit."""
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def digest(path: Path) -> str:
    if path.is_dir():
        return "".join(digest(p) for p in sorted(path.iterdir()))
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The model as a .safetensors file, an .npz file and a directory of two shards with an index."""
    d = tmp_path_factory.mktemp("sources")
    model = make_model()
    write_checkpoint(d / "model.safetensors", model, metadata={"origin": "test"})
    write_checkpoint(d / "model.npz", model)
    shards = d / "shards"
    shards.mkdir()
    names = list(model)
    split = {f"model-0000{i + 1}-of-00002.safetensors": names[i::2] for i in range(2)}
    for file, part in split.items():
        write_checkpoint(shards / file, {n: model[n] for n in part})
    index = {"metadata": {"total_size": sum(a.nbytes for a in model.values())},
             "weight_map": {n: f for f, part in split.items() for n in part}}
    (shards / "model.safetensors.index.json").write_text(json.dumps(index))
    return {"file": d / "model.safetensors", "npz": d / "model.npz", "shards": shards}


@pytest.fixture
def model() -> dict[str, np.ndarray]:
    return make_model()


# --------------------------------------------------------------------------- prune_checkpoint


PASS_THROUGH = ["layers.0.attn.bias", "norm.weight", "step"]


@pytest.mark.parametrize(
    ("sparsity", "options"),
    [
        (0.6, {"scope": "global"}),
        (0.3, {"scope": "global", "min_sparsity": 0.25, "max_sparsity": 0.5}),
        (5000, {"scope": "global"}),  # a count
        (0.7, {"scope": "layer"}),
        (0.5, {"scope": "layer", "pattern": asp.SparsityPattern.rows()}),
        (None, {"scope": "layer", "pattern": asp.SparsityPattern.two_four()}),
    ],
    ids=["global", "global-bounded", "global-count", "layer", "layer-rows", "layer-2:4"],
)
def test_prune_checkpoint_equals_prune_model(sources, sparsity, options):
    """Tensors and report of the streamed prune are those of prune_model on the model in memory."""
    out = {}
    report = asp.prune_checkpoint(sources["file"], out, sparsity, **options)
    with open_checkpoint(sources["file"]) as ckpt:
        model = {n: np.array(ckpt[n]) for n in ckpt}
    pruned, mm = asp.prune_model(model, sparsity, exclude=PASS_THROUGH, **options)
    assert list(out) == list(model)
    for name in model:
        assert same(out[name], pruned[name]), name
        if name in WEIGHTS:  # no zero in the input: the zeros are the mask, bit for bit
            assert np.array_equal(out[name] != 0, mm[name].mask), name
    assert [(r.name, r.pruned) for r in report] == [(r.name, r.pruned) for r in mm.report]
    assert [r.rule for r in report if r.name in WEIGHTS] == [r.rule for r in mm.report if r.name in WEIGHTS]


class Counted:
    """A lazy tensor that counts how often its data is read."""

    def __init__(self, a: np.ndarray, reads: dict[str, int], name: str):
        self.a, self.reads, self.name = a, reads, name
        self.shape, self.dtype = a.shape, a.dtype

    def __array__(self, dtype=None, copy=None):
        self.reads[self.name] += 1
        return self.a


@pytest.mark.parametrize(
    ("dtype", "scope", "reads"),
    [(np.float32, "global", 3), (np.float16, "global", 2), (ml_dtypes.bfloat16, "global", 2),
     (np.float32, "layer", 1)],
    ids=["float32-global", "float16-global", "bfloat16-global", "layer"],
)
def test_prune_checkpoint_reads_each_tensor(dtype, scope, reads):
    """Layer scope reads each tensor once; the global threshold of 16-bit floats takes one read
    (16-bit keys, one digit level) and float32 two, then one more read writes."""
    rng = np.random.default_rng(1)
    data = {f"w{i}": rng.standard_normal((32, 64)).astype(dtype) for i in range(5)}
    count = dict.fromkeys(data, 0)
    lazy = {n: Counted(a, count, n) for n, a in data.items()}
    out = {}
    asp.prune_checkpoint(lazy, out, 0.5, scope=scope)
    assert count == dict.fromkeys(data, reads)
    pruned, _ = asp.prune_model(data, 0.5, scope=scope)
    assert all(same(out[n], pruned[n]) for n in data)


def test_prune_checkpoint_progress_bars(sources, capsys):
    """progress=True: a tqdm bar per read of the model (threshold reads, then the write)."""
    pytest.importorskip("tqdm")
    out = {}
    asp.prune_checkpoint(sources["file"], out, 0.5, progress=True)
    err = capsys.readouterr().err
    assert "global threshold, read 1" in err and "global threshold, read 2" in err and "prune and write" in err
    asp.prune_checkpoint(sources["file"], out, 0.5, progress=False)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("dtype", [np.float32, ml_dtypes.bfloat16])
def test_prune_checkpoint_refuses_nan_and_sources_that_change(dtype):
    rng = np.random.default_rng(4)
    data = {f"w{i}": rng.standard_normal((16, 32)).astype(dtype) for i in range(3)}
    data["w1"][2, 3] = np.nan
    with pytest.raises(ValueError, match=r"src\['w1'\] contains 1 NaN"):
        asp.prune_checkpoint(data, {}, 0.5)
    data["w1"][2, 3] = 1.0

    class Drifting(Counted):  # another value on every read
        def __array__(self, dtype=None, copy=None):
            super().__array__()
            return self.a * (1 + self.reads[self.name])

    count = dict.fromkeys(data, 0)
    with pytest.raises(ValueError, match="changed between the passes"):
        asp.prune_checkpoint({n: Drifting(a, count, n) for n, a in data.items()}, {}, 0.5)


def test_prune_checkpoint_reference_backend():
    """Arrays no kernel takes (array-api-strict) stream through the standard-only selection."""
    xps = pytest.importorskip("array_api_strict")
    model = make_model(3)
    strict = {n: xps.asarray(model[n]) for n in WEIGHTS[:2] + [WEIGHTS[3]]}
    out = {}
    asp.prune_checkpoint(strict, out, 0.55)
    pruned, _ = asp.prune_model(strict, 0.55)
    assert all(same(np.asarray(out[n]), np.asarray(pruned[n])) for n in strict)


def test_prune_checkpoint_wanda_and_sparsegpt_from_calibration(model, tmp_path):
    """Statistics per weight from a file: Wanda's masks and SparseGPT's updated weights are the
    library's, layer by layer."""
    rng = np.random.default_rng(2)
    weights = {n: model[n].astype(np.float32) for n in WEIGHTS}
    inputs = {n: rng.standard_normal((256, w.shape[1])).astype(np.float32) for n, w in weights.items()}
    norms, hessians = {}, {}
    for n, x in inputs.items():
        norm_acc, hessian_acc = asp.InputNormAccumulator(), asp.HessianAccumulator()
        norm_acc.update(x)
        hessian_acc.update(x)
        norms[n], hessians[n] = norm_acc.norms.astype(np.float32), hessian_acc.hessian
    write_checkpoint(tmp_path / "norms.safetensors", norms)
    write_checkpoint(tmp_path / "hessians.npz", hessians)
    out_w, out_s = {}, {}
    asp.prune_checkpoint(weights, out_w, 0.5, scope="layer", strategy=asp.WandaPruning(),
                         calibration=tmp_path / "norms.safetensors")
    asp.prune_checkpoint(weights, out_s, None, scope="layer",
                         strategy=asp.SparseGPTPruning(asp.SparsityPattern.two_four()),
                         calibration=tmp_path / "hessians.npz")
    for n, w in weights.items():
        mask = asp.WandaPruning().create_mask(wanda_scores(w, norms[n]), 0.5)
        assert same(out_w[n], mask.apply(w)), n
        expected, _ = asp.sparsegpt_prune(w, hessians[n], pattern=asp.SparsityPattern.two_four())
        assert same(out_s[n], expected), n


def test_prune_checkpoint_refuses_bad_input_and_writes_nothing(sources, tmp_path, model):
    dst = tmp_path / "out.safetensors"
    write_checkpoint(tmp_path / "short.safetensors", {WEIGHTS[0]: np.ones(63, np.float32)})
    cases = [
        ((sources["file"], sources["file"], 0.5), {}, "is the input"),
        ((sources["file"], dst, 0.5), {"pattern": asp.SparsityPattern.rows()}, "needs scope='layer'"),
        ((sources["file"], dst, 1.5), {}, "must be a fraction in [0, 1]"),
        ((sources["file"], dst, 0.5), {"strategy": asp.RandomPruning()}, "needs an int seed"),
        ((sources["file"], dst, 0.5), {"strategy": asp.WandaPruning(), "scope": "layer"}, "needs calibration"),
        ((sources["file"], dst, 0.5), {"strategy": asp.WandaPruning(), "scope": "layer",
                                       "calibration": tmp_path / "short.safetensors"}, "short.safetensors"),
        ((sources["file"], dst, 0.5), {"exclude": "nothing.*"}, "matches no layer"),
        ((sources["file"], dst, 0.5), {"include": "nothing.*"}, "matches no tensor"),
    ]
    for args, options, message in cases:
        with pytest.raises((ValueError, TypeError), match=message.replace("[", r"\[").replace("]", r"\]")):
            asp.prune_checkpoint(*args, **options)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["short.safetensors"]


# --------------------------------------------------------------------------- the command line


@pytest.mark.parametrize("kind", ["file", "npz", "shards"])
def test_cli_prune_each_source(sources, tmp_path, kind):
    """`arraysparse prune` on every kind of source writes what prune_checkpoint writes."""
    dst = tmp_path / ("out.npz" if kind == "npz" else "out.safetensors")
    r = cli("prune", sources[kind], dst, "-s", "60%", "--exclude", "norm.*", "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    expected = {}
    asp.prune_checkpoint(sources[kind], expected, 0.6, exclude="norm.*")
    with open_checkpoint(dst) as got:
        assert sorted(got) == sorted(expected)
        assert all(same(got[n], expected[n]) for n in expected)
    assert {t["name"]: t["rule"] for t in report["tensors"]}["norm.weight"] == "excluded 'norm.*'"
    assert report["pruned"] == round(0.6 * sum(make_model()[n].size for n in WEIGHTS))
    if kind == "file":
        with open_checkpoint(dst) as got:
            assert dict(got.metadata) == {"origin": "test"}  # the source's metadata carries over


def test_cli_prune_wanda_2_4_with_calibration_file(sources, tmp_path, model):
    norms = {n: np.abs(np.random.default_rng(5).standard_normal(model[n].shape[1])).astype(np.float32) for n in WEIGHTS}
    write_checkpoint(tmp_path / "calib.safetensors", norms)
    dst = tmp_path / "wanda.safetensors"
    r = cli("prune", sources["file"], dst, "--strategy", "wanda", "-p", "2:4", "--calibration",
            tmp_path / "calib.safetensors", "-q")
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""  # --quiet
    with open_checkpoint(dst) as got:
        for n in WEIGHTS:
            w = model[n]
            expected = asp.nm_mask(wanda_scores(w, norms[n].astype(w.dtype)), 2, 4).apply(w)
            assert same(got[n], expected), n
            assert asp.PruningMask.from_zeros(got[n]).satisfies(asp.SparsityPattern.two_four())


def test_cli_inspect_json_matches_the_library(sources, tmp_path, capsys):
    pruned = tmp_path / "p.safetensors"
    assert cli("prune", sources["file"], pruned, "-p", "2:4", "-q").returncode == 0
    r = cli("inspect", pruned, "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    with open_checkpoint(pruned) as ckpt:
        for t in doc["tensors"]:
            s = tensor_stats(t["name"], ckpt[t["name"]])
            assert t["shape"] == list(s.shape) and t["dtype"] == s.dtype and t["zeros"] == s.zeros
            assert t["formats"] == s.formats and t["patterns"] == s.patterns
    by_name = {t["name"]: t for t in doc["tensors"]}
    assert by_name[WEIGHTS[0]]["patterns"] == ["2:4"] and by_name[WEIGHTS[0]]["sparsity"] == 0.5
    assert by_name[WEIGHTS[0]]["formats"]["2:4"] < by_name[WEIGHTS[0]]["nbytes"]
    assert doc["total"]["nbytes"] == sum(t["nbytes"] for t in doc["tensors"])
    assert run_main(["inspect", str(pruned)]) == 0  # the table, in process
    table = capsys.readouterr().out
    assert WEIGHTS[0] in table and "2:4 1.88x" in table and table.splitlines()[-1].startswith("total")


def test_cli_plot_writes_pngs(sources, tmp_path):
    pytest.importorskip("matplotlib")
    from matplotlib.image import imread

    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    asp.prune_checkpoint(sources["file"], a, 0.7)
    asp.prune_checkpoint(sources["file"], b, None, pattern=asp.SparsityPattern.two_four(), scope="layer")
    r = cli("plot", a, b, "-o", tmp_path / "plots", "--tensor", WEIGHTS[0], "--tensor", WEIGHTS[3])
    assert r.returncode == 0, r.stderr
    for name in ("sparsity.png", "masks.png", "nm_occupancy.png"):
        path = tmp_path / "plots" / name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        image = imread(path)
        assert image.ndim == 3 and min(image.shape[:2]) > 100
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["masks.png", "nm_occupancy.png", "sparsity.png"]


def test_cli_compress_and_decompress_round_trip(sources, tmp_path):
    pruned = tmp_path / "p.safetensors"
    asp.prune_checkpoint(sources["file"], pruned, None, pattern=asp.SparsityPattern.two_four(), scope="layer")
    packed, back = tmp_path / "c.safetensors", tmp_path / "d.npz"
    r = cli("compress", pruned, packed, "-f", "2:4", "-q")
    assert r.returncode == 0, r.stderr
    loaded = asp.load(packed)
    assert isinstance(loaded[WEIGHTS[0]], asp.SparseCompressionResult)  # flat names, as in the checkpoint
    assert isinstance(loaded["layers.0.attn.bias"], np.ndarray)  # 1-D: left dense
    with open_checkpoint(pruned) as ckpt:  # what compress_model gives in process, array for array
        expected = asp.compress_model(ckpt, "2:4", where=lambda name, a: a.ndim >= 2 and a.dtype.kind == "f")
        for name, value in expected.items():
            if isinstance(value, asp.SparseCompressionResult):
                assert loaded[name].format == value.format and loaded[name].shape == value.shape
                assert all(same(loaded[name].arrays[k], value.arrays[k]) for k in value.arrays)
            else:
                assert same(loaded[name], value)
    r = cli("decompress", packed, back)
    assert r.returncode == 0, r.stderr
    with open_checkpoint(pruned) as a, open_checkpoint(back) as b:
        assert sorted(a) == sorted(b) and all(same(a[n], b[n]) for n in a)
        assert dict(b.metadata) == dict(a.metadata)  # the file's own metadata comes back with it
    assert packed.stat().st_size < pruned.stat().st_size


def test_cli_demo(tmp_path):
    """No arguments beyond where to write: the shipped model pruned every way, table, files, plots."""
    plots = importlib.util.find_spec("matplotlib") is not None
    t0 = time.perf_counter()
    r = cli("demo", "-o", tmp_path / "demo")
    seconds = time.perf_counter() - t0
    assert r.returncode == 0, r.stderr
    assert "SparseGPT 2:4" in r.stdout and "magnitude global 50%" in r.stdout
    results = json.loads((tmp_path / "demo" / "results.json").read_text())
    acc = {row["label"]: row["accuracy"] for row in results["results"]}
    assert results["dense_accuracy"] > 0.95
    assert acc["magnitude layer 50%"] > 0.9 and acc["SparseGPT 50%"] > acc["magnitude layer 90%"]
    assert acc["SparseGPT 2:4"] >= acc["magnitude 2:4"]
    for row in results["results"]:
        assert Path(row["path"]).exists()
        assert row["nbytes"]["best"] < row["nbytes"]["dense"] or row["sparsity"] < 0.3
    if plots:
        assert {p.name for p in (tmp_path / "demo" / "plots").iterdir()} == {
            "sparsity.png", "masks.png", "nm_occupancy.png"}
    print(f"demo subprocess: {seconds:.1f} s")
    # every row is the command it prints: the same checkpoint, byte for byte
    for i, row in enumerate(results["results"]):
        out = tmp_path / f"again{i}.safetensors"
        argv = shlex.split(row["command"].replace("MODEL", str(MODEL_PATH)).replace("OUT", str(out)))
        assert argv[:2] == ["arraysparse", "prune"]
        assert main([*argv[1:], "-q"]) == 0, row["command"]
        assert digest(out) == digest(Path(row["path"])), row["label"]


def test_demo_build_remakes_the_shipped_files(tmp_path):
    """The script that made the shipped model and digits makes them again (same digits; same weights
    here, close anywhere: another BLAS may round the training's sums differently)."""
    pytest.importorskip("sklearn")
    from arraysparse.demo import DATA_PATH, load_model
    from arraysparse.demo.build import build

    model_path, data_path, acc = build(tmp_path)
    with np.load(data_path) as new, np.load(DATA_PATH) as shipped:
        assert sorted(new) == sorted(shipped) and all(same(new[k], shipped[k]) for k in new)
    new_model, shipped_model = load_model(model_path), load_model(MODEL_PATH)
    for layer, params in shipped_model.items():
        for key, value in params.items():
            np.testing.assert_allclose(new_model[layer][key], value, rtol=1e-4, atol=1e-5)
    with open_checkpoint(MODEL_PATH) as ckpt:
        assert f"test accuracy {acc:.4f}" in ckpt.metadata["arraysparse.demo"]


def test_cli_start_up_imports_nothing_heavy(sources, tmp_path):
    """Parsing and a quiet prune load neither matplotlib, tqdm nor torch."""
    code = textwrap.dedent(f"""
        import sys
        from arraysparse.cli import main
        rc = main(["prune", {str(sources["file"])!r}, {str(tmp_path / "o.safetensors")!r}, "-s", "0.5", "-q"])
        print(rc, sorted(m for m in ("matplotlib", "tqdm", "torch", "sklearn") if m in sys.modules))
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=120)
    assert r.stdout.split("\n")[0] == "0 []", r.stderr


def test_console_script_is_main():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"arraysparse": "arraysparse.cli:main"}


# --------------------------------------------------------------------------- shard directories out


def shard_index(d: Path) -> dict:
    """The index of a directory the CLI wrote, checked against its shards (names, contents, header metadata)."""
    doc = json.loads((d / "model.safetensors.index.json").read_text())
    assert set(doc) == {"metadata", "weight_map"} and isinstance(doc["metadata"]["total_size"], int)
    files = list(dict.fromkeys(doc["weight_map"].values()))
    assert files == [f"model-{k:05d}-of-{len(files):05d}.safetensors" for k in range(1, len(files) + 1)]
    with open_checkpoint(d) as ckpt:
        assert list(ckpt) == list(doc["weight_map"])
        assert doc["metadata"]["total_size"] == sum(ckpt.info(n).nbytes for n in ckpt)
    return doc


def test_cli_writes_shard_directories(sources, tmp_path):
    """A DST that is not a .safetensors / .npz name is a directory of shards: prune, compress and decompress
    write one (--max-shard-size, default 5GB: one shard here) that the library reads back equal to what
    it writes in process; a directory holding a checkpoint is replaced only with --overwrite."""
    out = tmp_path / "pruned"
    r = cli("prune", sources["file"], out, "-s", "60%", "--max-shard-size", "10KB", "-q")
    assert r.returncode == 0, r.stderr
    doc = shard_index(out)
    # in order: the 12 KiB weights over the limit alone, the bias, the float16 weight, norm and step together
    assert [len([n for n in doc["weight_map"] if doc["weight_map"][n] == f])
            for f in dict.fromkeys(doc["weight_map"].values())] == [1, 1, 1, 1, 1, 2]
    assert doc["metadata"]["origin"] == "test"  # the source's metadata, in the index
    expected = {}
    asp.prune_checkpoint(sources["file"], expected, 0.6)
    with open_checkpoint(out) as got:
        assert list(got) == list(make_model()) and all(same(got[n], expected[n]) for n in expected)

    r = cli("prune", sources["shards"], tmp_path / "from-shards", "-s", "60%", "-q")  # the default: 5GB
    assert r.returncode == 0, r.stderr
    doc = shard_index(tmp_path / "from-shards")
    assert set(doc["weight_map"].values()) == {"model-00001-of-00001.safetensors"}  # its own total_size

    packed, dense = tmp_path / "packed", tmp_path / "dense"
    r = cli("compress", out, packed, "-f", "csr", "--max-shard-size", "8KB")
    assert r.returncode == 0, r.stderr
    assert f"wrote {packed} (" in r.stdout and "shards and their index)" in r.stdout
    assert len(set(shard_index(packed)["weight_map"].values())) > 2
    assert isinstance(asp.load(packed)[WEIGHTS[0]], asp.SparseCompressionResult)
    r = cli("decompress", packed, dense, "--max-shard-size", "20KB", "-q")
    assert r.returncode == 0, r.stderr
    with open_checkpoint(out) as a, open_checkpoint(dense) as b:
        assert sorted(a) == sorted(b) and all(same(a[n], b[n]) for n in a)

    (out / "config.json").write_text("{}")
    before = digest(out)
    r = cli("prune", sources["file"], out, "-s", "30%", "--max-shard-size", "10KB")
    assert r.returncode == 2 and r.stdout == "" and "already holds a checkpoint" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "--overwrite" in r.stderr
    assert digest(out) == before
    r = cli("prune", sources["file"], out, "-s", "30%", "--max-shard-size", "100KB", "--overwrite", "-q")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model-00001-of-00001.safetensors",
                                                     "model.safetensors.index.json"]
    assert (out / "config.json").read_text() == "{}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dense", "from-shards", "packed", "pruned"]


# --------------------------------------------------------------------------- bad input: exit 2, one line


def _bad_files(d: Path, good: Path) -> dict[str, Path]:
    data = good.read_bytes()
    (d / "truncated.safetensors").write_bytes(data[: len(data) - 100])
    (d / "garbage.safetensors").write_bytes(b"not a checkpoint at all")
    write_checkpoint(d / "calib-shape.safetensors", {n: np.ones(7, np.float32) for n in WEIGHTS})
    return {"truncated": d / "truncated.safetensors", "garbage": d / "garbage.safetensors",
            "calibration": d / "calib-shape.safetensors"}


def test_cli_bad_input_one_line_exit_2_nothing_written(sources, tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    files = _bad_files(bad, sources["file"])
    out = tmp_path / "out"
    out.mkdir()
    dst = out / "x.safetensors"
    src = sources["file"]
    cases = [
        (["prune", files["truncated"], dst, "-s", "0.5"], "truncated.safetensors"),
        (["prune", files["garbage"], dst, "-s", "0.5"], "garbage.safetensors"),
        (["prune", bad / "missing.safetensors", dst, "-s", "0.5"], "missing.safetensors"),
        (["prune", src, dst, "--strategy", "wanda", "--calibration", files["calibration"], "-s", "0.5"],
         "calib-shape.safetensors"),
        (["prune", src, dst, "--strategy", "sparsegpt", "-s", "0.5"], "--calibration"),
        (["prune", src, dst, "--strategy", "wanda", "--calibration", files["calibration"], "-s", "0.5",
          "--include", "layers.0.attn.bias"], "prunes 2-D (out, in) weights; 'layers.0.attn.bias' has shape (48,): leave"),
        (["prune", src, dst, "-p", "3:5:7"], "unknown pattern '3:5:7'"),
        (["prune", src, dst, "-s", "150%"], "outside [0, 1]"),
        (["prune", src, dst, "-p", "rows"], "--sparsity is required"),
        (["prune", src, src, "-s", "0.5"], "is the input"),
        (["prune", sources["shards"], sources["shards"] / "x.safetensors", "-s", "0.5"], "is the input"),
        (["inspect", files["truncated"]], "truncated.safetensors"),
        (["plot", files["garbage"], "-o", out / "plots"], "garbage.safetensors"),
        (["compress", src, dst, "-f", "bsr"], "--block"),
        (["compress", src, dst, "-f", "2:4"], "violates the 2:4 pattern"),
        (["decompress", src, dst], "not an arraysparse file"),
        (["prune", src, out / "d", "-s", "0.5", "--max-shard-size", "5XB"], "--max-shard-size: '5XB' is not a size"),
        (["prune", src, out / "d", "-s", "0.5", "--max-shard-size", "0"], "--max-shard-size: '0' is not a size"),
        (["compress", src, out / "d", "--max-shard-size", "1.5 parsecs"], "'1.5 parsecs' is not a size"),
        (["prune", src, out / "x.npz", "-s", "0.5", "--max-shard-size", "1GB"], "x.npz' is an .npz file, which is never sharded"),
        (["decompress", src, dst, "--max-shard-size", "1GB"], "is one .safetensors file"),
        (["prune", sources["shards"] / "model-00001-of-00002.safetensors", sources["shards"], "-s", "0.5",
          "--overwrite"], "holds the input"),
        (["prune", src, out / "x.safetensor", "-s", "0.5"], "ends in '.safetensor', which arraysparse does not write"),
        (["compress", src, out / "model.pt", "-f", "csr"], "ends in '.pt'"),
        (["decompress", src, out / "model.bin"], "ends in '.bin'"),
    ]
    if importlib.util.find_spec("matplotlib") is None:  # plot stops at the import, before any file
        cases = [c for c in cases if c[0][0] != "plot"]
    before = digest(sources["shards"]), digest(src)
    for argv, message in cases:
        rc = run_main([str(a) for a in argv])
        err = capsys.readouterr().err
        assert rc == 2, (argv, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (argv, err)
        assert lines[0].startswith(f"arraysparse {argv[0]}: error: ")
        assert list(out.iterdir()) == [], argv  # nothing written, no temporary file left
    assert (digest(sources["shards"]), digest(src)) == before


def run_main(argv: list[str]) -> int:
    """The console script's function in process; argparse's usage errors exit (status 2)."""
    try:
        return main(argv)
    except SystemExit as e:
        return int(e.code)


def test_cli_exit_status_in_a_subprocess(sources, tmp_path):
    """The process itself ends with status 2 and one line on stderr (a file, then a usage error)."""
    (tmp_path / "t.safetensors").write_bytes(sources["file"].read_bytes()[:-10])
    for args, needle in [(["inspect", tmp_path / "t.safetensors"], "t.safetensors"),
                         (["prune", sources["file"], tmp_path / "o.safetensors", "-s", "2"], "--sparsity")]:
        r = cli(*args)
        assert r.returncode == 2 and r.stdout == ""
        assert len(r.stderr.strip().splitlines()) == 1 and needle in r.stderr, r.stderr
    assert not (tmp_path / "o.safetensors").exists()


# --------------------------------------------------------------------------- interrupted writes


KILLED = textwrap.dedent("""
    import sys, time
    import arraysparse.io.checkpoint as checkpoint
    add = checkpoint.CheckpointWriter.add
    count = [0]

    def slow_add(self, name, array):  # the second tensor is written, then the run stalls
        add(self, name, array)
        count[0] += 1
        if count[0] == 2:
            open(sys.argv[1], "w").close()
            time.sleep(120)

    checkpoint.CheckpointWriter.add = slow_add
    from arraysparse.cli import main
    sys.exit(main(sys.argv[2:]))
""")


def _kill_mid_write(src: Path, dst: Path, flag: Path) -> None:
    p = subprocess.Popen([sys.executable, "-c", KILLED, str(flag), "prune", str(src), str(dst), "-s", "0.5", "-q"],
                         env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not flag.exists():
            assert p.poll() is None, p.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        p.send_signal(signal.SIGKILL)
    finally:
        p.wait(timeout=30)
    assert p.returncode == -signal.SIGKILL


@pytest.mark.parametrize("suffix", [".safetensors", ".npz", ""])
def test_cli_killed_mid_write_leaves_nothing(sources, tmp_path, suffix):
    """A file output leaves nothing; a directory of shards leaves only its hidden staging directory, which
    the next run to that output removes."""
    out = tmp_path / "out"
    out.mkdir()
    flag = tmp_path / "flag"
    before = digest(sources["file"])
    _kill_mid_write(sources["file"], out / f"pruned{suffix}", flag)
    left = [p.name for p in out.iterdir()]
    if suffix:
        assert left == []  # no output, no temporary file beside it
    else:
        assert len(left) == 1 and re.fullmatch(r"\.pruned\.\d+\.[0-9a-f]{8}\.tmp", left[0]), left
        assert (out / left[0]).is_dir()
        r = cli("prune", sources["file"], out / "pruned", "-s", "0.5", "--max-shard-size", "10KB", "-q")
        assert r.returncode == 0, r.stderr
        assert [p.name for p in out.iterdir()] == ["pruned"]
    assert digest(sources["file"]) == before


# --------------------------------------------------------------------------- memory


MEASURE = textwrap.dedent("""
    import json, sys, threading, time, tracemalloc
    import numpy as np
    import arraysparse as asp
    from arraysparse.io import open_checkpoint

    def anon():
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("RssAnon:"))

    def peak(run):
        # the peak of anonymous memory above the start (sampled) and of NumPy's allocations (traced)
        state = {"peak": anon(), "stop": False}
        def sample():
            while not state["stop"]:
                state["peak"] = max(state["peak"], anon())
                time.sleep(0.0005)
        t = threading.Thread(target=sample)
        base = state["peak"]
        tracemalloc.start()
        t.start()
        t0 = time.perf_counter()
        run()
        seconds = time.perf_counter() - t0
        state["stop"] = True
        t.join()
        traced = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return {"anon": max(state["peak"], anon()) - base, "traced": traced, "seconds": seconds}

    src, dst, shards = sys.argv[1], sys.argv[2], sys.argv[3]
    small = {f"w{i}": np.random.default_rng(i).standard_normal((64, 64), dtype=np.float32) for i in range(3)}
    asp.prune_checkpoint(small, {}, 0.5)  # the kernels, loaded before measuring
    asp.prune_model(small, 0.5)
    streamed = peak(lambda: asp.prune_checkpoint(src, dst, 0.5))
    sharded = peak(lambda: asp.prune_checkpoint(src, shards, 0.5, max_shard_size=3 << 21))  # 3 tensors a shard
    with open_checkpoint(src) as ckpt:
        def in_memory():
            model = {n: np.array(ckpt[n]) for n in ckpt}
            asp.prune_model(model, 0.5)
        whole = peak(in_memory)
    print(json.dumps({"streamed": streamed, "sharded": sharded, "in_memory": whole}))
""")


def test_global_prune_checkpoint_peak_memory_is_about_one_tensor(tmp_path):
    """16 tensors of 2 MiB: the streamed global prune peaks at a few tensors, to one file or to shards,
    the in-memory one at the model (a copy of it, the pruned copy and the masks)."""
    tensors, shape = 16, (1024, 512)
    tensor = shape[0] * shape[1] * 4
    rng = np.random.default_rng(0)
    src = tmp_path / "big.safetensors"
    write_checkpoint(src, ((f"layer{i}.weight", rng.standard_normal(shape, dtype=np.float32)) for i in range(tensors)))
    r = subprocess.run([sys.executable, "-c", MEASURE, str(src), str(tmp_path / "out.safetensors"),
                        str(tmp_path / "shards")], capture_output=True, text=True, env=ENV, timeout=300)
    assert r.returncode == 0, r.stderr
    m = json.loads(r.stdout)
    s, w, d = m["streamed"], m["in_memory"], m["sharded"]
    print(f"\npeak above start, tensor {tensor / 2**20:.0f} MiB, model {tensors * tensor / 2**20:.0f} MiB: "
          f"streamed anon {s['anon'] / 2**20:.1f} MiB, traced {s['traced'] / 2**20:.1f} MiB, {s['seconds']:.2f} s; "
          f"in memory anon {w['anon'] / 2**20:.1f} MiB, traced {w['traced'] / 2**20:.1f} MiB, {w['seconds']:.2f} s")
    print(f"into 6 MiB shards: anon {d['anon'] / 2**20:.1f} MiB, traced {d['traced'] / 2**20:.1f} MiB, "
          f"{d['seconds']:.2f} s")
    assert s["traced"] < 3 * tensor  # the pruned tensor, its mask and the selection's histograms
    assert s["anon"] < 4 * tensor
    assert d["traced"] < 3 * tensor and d["anon"] < 4 * tensor  # shards: the same
    assert len(list((tmp_path / "shards").glob("model-*-of-00006.safetensors"))) == 6
    assert w["traced"] > tensors * tensor  # the model in memory
    assert s["anon"] < w["anon"] / 4


def test_a_model_directory_comes_out_a_model_directory(sources, tmp_path, capsys):
    """prune / compress / decompress of a directory into a directory carry config.json, tokenizer files
    and the like (what transformers needs beside the weights); weights of other formats stay behind, a
    file the output already has is kept, a file output carries nothing."""
    src = tmp_path / "model"
    shutil.copytree(sources["shards"], src)
    (src / "config.json").write_text('{"model_type": "llama"}')
    (src / "tokenizer.json").write_text("{}")
    (src / "pytorch_model.bin").write_bytes(b"stale dense weights")
    (src / ".cache").mkdir()
    pruned, packed, dense = tmp_path / "pruned", tmp_path / "packed", tmp_path / "dense"
    assert run_main(["prune", str(src), str(pruned), "-s", "0.5"]) == 0
    assert "copied beside the weights" in capsys.readouterr().out
    companions = {"config.json", "tokenizer.json"}
    assert companions <= set(os.listdir(pruned)) and "pytorch_model.bin" not in os.listdir(pruned)
    assert (pruned / "config.json").read_bytes() == (src / "config.json").read_bytes()
    assert run_main(["compress", str(pruned), str(packed), "-f", "csr", "-q"]) == 0
    assert capsys.readouterr().out == ""  # -q: not a line
    (dense).mkdir()
    (dense / "config.json").write_text("mine")  # the output's own file wins
    assert run_main(["decompress", str(packed), str(dense), "-q"]) == 0
    assert companions <= set(os.listdir(dense)) and (dense / "config.json").read_text() == "mine"
    with open_checkpoint(dense) as d, open_checkpoint(pruned) as p:
        assert sorted(d) == sorted(p)
    assert run_main(["prune", str(src), str(tmp_path / "one.safetensors"), "-s", "0.5", "-q"]) == 0
    assert sorted(os.listdir(tmp_path)) == sorted(["model", "pruned", "packed", "dense", "one.safetensors"])


def test_cli_inspect_of_an_arraysparse_file_shows_what_each_entry_is_stored_as(tmp_path, capsys):
    """A compressed model, a mask and a dense array as stored: format, sparsity, dense and stored bytes
    (the results' own nbytes), in the table and in --json; a single saved result too."""
    rng = np.random.default_rng(3)
    w = rng.standard_normal((16, 32)).astype(np.float32)
    w24 = asp.nm_mask(w, 2, 4).apply(w)
    model = {"fc": {"weight": asp.compress(w24, "2:4"), "bias": np.zeros(16, np.float32)},
             "head": asp.compress(np.where(rng.random((8, 32)) < 0.7, 0, w[:8]), "csr"),
             "keep": asp.topk_mask(w, 0.25)}
    path = asp.save(tmp_path / "m.safetensors", model)
    assert run_main(["inspect", str(path), "--json"]) == 0
    got = {e["name"]: e for e in json.loads(capsys.readouterr().out)["entries"]}
    assert set(got) == {"fc.weight", "fc.bias", "head", "keep"}
    for name, r in (("fc.weight", model["fc"]["weight"]), ("head", model["head"])):
        assert got[name]["stored_as"] == r.format and got[name]["nbytes"] == r.nbytes
        assert got[name]["dense_nbytes"] == r.dense_nbytes and got[name]["zeros"] == r.size - r.nnz
    assert got["fc.bias"]["stored_as"] == "dense" and got["fc.bias"]["zeros"] == 16
    assert got["keep"]["stored_as"] == "mask" and got["keep"]["zeros"] == model["keep"].num_pruned
    assert run_main(["inspect", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["name", "shape", "dtype", "stored"] and lines[-1].startswith("total")
    assert any(ln.startswith("fc.weight") and "2:4" in ln and "50.0%" in ln for ln in lines)
    one = asp.save(tmp_path / "r.safetensors", model["head"])
    assert run_main(["inspect", str(one)]) == 0
    assert "(result)" in capsys.readouterr().out
