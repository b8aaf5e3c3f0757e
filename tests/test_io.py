"""Persistence: checkpoints (safetensors, .npz, shard directories), save / load, compress_model.

The files are checked against the real readers and writers (the
``safetensors`` package, ``numpy.load``) in both directions; malformed files
must fail with the file named and nothing written; writes are atomic.
"""

from __future__ import annotations

import copy
import json
import os
import pickle
import re
import struct
import tracemalloc
import warnings
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
import safetensors
import safetensors.numpy
import safetensors.torch
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import arraysparse as asp
from arraysparse.io import CheckpointWriter, ModelWriter, TensorInfo, open_checkpoint, write_checkpoint
from arraysparse.model import ModelMask

SUFFIXES = [".safetensors", ".npz"]
#: Every dtype a checkpoint stores, by canonical name (NumPy's or ml_dtypes').
NUMPY_DTYPES = {
    "bool": np.bool_, "int8": np.int8, "int16": np.int16, "int32": np.int32, "int64": np.int64,
    "uint8": np.uint8, "uint16": np.uint16, "uint32": np.uint32, "uint64": np.uint64,
    "float16": np.float16, "float32": np.float32, "float64": np.float64,
    "complex64": np.complex64, "complex128": np.complex128,
    "bfloat16": ml_dtypes.bfloat16, "float8_e4m3fn": ml_dtypes.float8_e4m3fn,
    "float8_e5m2": ml_dtypes.float8_e5m2, "float8_e4m3fnuz": ml_dtypes.float8_e4m3fnuz,
    "float8_e8m0fnu": ml_dtypes.float8_e8m0fnu, "int4": ml_dtypes.int4,
}
TORCH_DTYPES = [torch.bool, torch.int8, torch.int32, torch.int64, torch.uint8, torch.float16, torch.bfloat16,
                torch.float32, torch.float64, torch.complex64, torch.complex128, torch.float8_e4m3fn,
                torch.float8_e5m2, torch.uint16]
STRICT = settings(deadline=None, max_examples=20, suppress_health_check=[HealthCheck.function_scoped_fixture])


def bits(a) -> np.ndarray:
    """The bytes of any array as unsigned integers of its item width, C order (for exact comparisons)."""
    if isinstance(a, torch.Tensor):
        size = a.element_size()
        signed = {1: torch.int8, 2: torch.int16, 4: torch.int32, 8: torch.int64, 16: None}[size]
        a = a.contiguous().reshape(-1)
        if signed is None:
            return a.numpy().view(np.uint64)
        return a.view(signed).numpy().view(f"u{size}")
    a = np.ascontiguousarray(a).reshape(-1)
    a = a if a.dtype.isnative or a.dtype.itemsize == 1 else a.astype(a.dtype.newbyteorder("="))
    return a.view(f"u{a.dtype.itemsize}") if a.dtype.itemsize <= 8 else a.view(np.uint64)


def dtype_name(a) -> str:
    if isinstance(a, torch.Tensor):
        return str(a.dtype).removeprefix("torch.")
    return np.dtype(a.dtype).newbyteorder("=").name if a.dtype.byteorder == ">" else np.dtype(a.dtype).name


def assert_identical(got, want) -> None:
    """Same library, dtype, shape and bits."""
    assert type(got) is type(want) or (isinstance(got, np.ndarray) and isinstance(want, np.ndarray))
    assert dtype_name(got) == dtype_name(want)
    assert tuple(got.shape) == tuple(want.shape)
    assert np.array_equal(bits(got), bits(want))


def random_array(draw, dtype: str, shape) -> np.ndarray:
    dt = np.dtype(NUMPY_DTYPES[dtype])
    size = int(np.prod(shape))
    raw = draw(st.binary(min_size=size * dt.itemsize, max_size=size * dt.itemsize))
    if dt == np.bool_:  # bools are the bytes 0 and 1 (others are refused on read)
        return (np.frombuffer(raw, dtype=np.uint8) & 1).view(np.bool_).reshape(shape)
    return np.frombuffer(raw, dtype=dt).reshape(shape).copy()


@st.composite
def array_dicts(draw):
    names = draw(st.lists(st.text("abcxyz._/0123", min_size=1, max_size=8), min_size=0, max_size=6, unique=True))
    out = {}
    for name in names:
        if name == "__metadata__":
            continue
        dtype = draw(st.sampled_from(sorted(NUMPY_DTYPES)))
        shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5))
        a = random_array(draw, dtype, shape)
        kind = draw(st.sampled_from(["plain", "strided", "swapped", "torch"]))
        if kind == "strided" and a.ndim >= 1:
            a = np.concatenate([a, a], axis=-1)[..., ::2]
        elif kind == "swapped" and a.dtype.kind in "iuf" and a.dtype.itemsize > 1 and dtype in np.sctypeDict:
            a = a.astype(a.dtype.newbyteorder(">"))
        elif kind == "torch" and dtype in ("bfloat16", "float8_e4m3fn"):
            a = torch.from_numpy(a.view(np.int16 if dtype == "bfloat16" else np.int8).copy()).view(getattr(torch, dtype))
        elif kind == "torch" and dtype in ("float32", "int64", "bool", "complex128"):
            a = torch.from_numpy(a.copy())
        out[name] = a
    return out


def expected(a, like: str):
    """What a checkpoint gives back for ``a``: NumPy (native byte order, ml_dtypes) or torch."""
    if isinstance(a, torch.Tensor):
        if like == "torch":
            return a
        if a.dtype in (torch.bfloat16, torch.float8_e4m3fn):
            signed = torch.int16 if a.element_size() == 2 else torch.int8
            return a.view(signed).numpy().view(getattr(ml_dtypes, str(a.dtype).removeprefix("torch.")))
        return a.numpy()
    a = np.asarray(a)
    if not a.dtype.isnative:
        a = a.astype(a.dtype.newbyteorder("="))
    if like == "numpy":
        return a
    if type(a.dtype).__module__.startswith("ml_dtypes") or a.dtype.type.__module__.startswith("ml_dtypes"):
        signed = {1: np.int8, 2: np.int16}[a.dtype.itemsize]
        return torch.from_numpy(a.view(signed).copy()).view(getattr(torch, a.dtype.name))
    return torch.from_numpy(a.copy())


def listing(d: Path) -> list[str]:
    return sorted(os.listdir(d))


def fresh(tmp_path: Path) -> Path:
    """A new empty directory under ``tmp_path`` (hypothesis runs many examples in one test's tmp_path)."""
    import tempfile

    return Path(tempfile.mkdtemp(dir=tmp_path))


# -- (A) checkpoints: round trips ---------------------------------------------------------
@STRICT
@given(items=array_dicts(), suffix=st.sampled_from(SUFFIXES), streamed=st.booleans(),
       meta=st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3))
def test_checkpoint_round_trip_every_dtype_and_layout(tmp_path, items, suffix, streamed, meta):
    path = fresh(tmp_path) / f"c{suffix}"
    write_checkpoint(path, iter(items.items()) if streamed else items, metadata=meta)
    assert listing(path.parent) == [path.name]
    with open_checkpoint(path) as ckpt:
        assert list(ckpt) == list(items)
        assert dict(ckpt.metadata) == meta
        for name, a in items.items():
            assert ckpt.info(name) == TensorInfo(dtype_name(a), tuple(a.shape), path)
            got = ckpt[name]
            assert_identical(got, expected(a, "numpy"))
            assert not got.flags.writeable
    with open_checkpoint(path, like="torch") as ckpt:
        for name, a in items.items():
            if dtype_name(a) == "int4":  # torch has no int4
                with pytest.raises(TypeError, match="int4, which this torch"):
                    ckpt[name]
                continue
            assert_identical(ckpt[name], expected(a, "torch"))


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_checkpoint_to_checkpoint_copies_bits_without_converting(tmp_path, suffix):
    src = {"bf": np.arange(6, dtype=np.float32).astype(ml_dtypes.bfloat16).reshape(2, 3),
           "i4": np.array([-8, 7], ml_dtypes.int4), "c": np.array([1 + 2j])}
    write_checkpoint(tmp_path / "a.safetensors", src)
    with open_checkpoint(tmp_path / "a.safetensors") as ckpt:
        write_checkpoint(tmp_path / f"b{suffix}", ckpt, metadata={"from": "a"})
    with open_checkpoint(tmp_path / f"b{suffix}") as ckpt:
        for name, a in src.items():
            assert_identical(ckpt[name], a)
        assert dict(ckpt.metadata) == {"from": "a"}


def test_numpy_reads_are_read_only_views_torch_reads_are_copies(tmp_path):
    path = tmp_path / "w.safetensors"
    write_checkpoint(path, {"w": np.arange(4.0)})
    before = path.read_bytes()
    with open_checkpoint(path) as ckpt:
        w = ckpt["w"]
        assert not w.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            w[0] = 5
    t = open_checkpoint(path, like="torch")["w"]
    t.mul_(5)
    assert path.read_bytes() == before
    assert w.tolist() == [0.0, 1.0, 2.0, 3.0]  # still valid after close


def test_opening_a_huge_checkpoint_reads_the_header_only(tmp_path):
    """4 GiB of tensors (a sparse file: no disk used) open instantly and one small tensor costs itself."""
    path = tmp_path / "huge.safetensors"
    big = 1 << 32
    header = {"big": {"dtype": "F32", "shape": [big // 4], "data_offsets": [0, big]},
              "small": {"dtype": "I64", "shape": [3], "data_offsets": [big, big + 24]}}
    text = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        f.truncate(8 + len(text) + big + 24)
    tracemalloc.start()
    with open_checkpoint(path) as ckpt:
        assert ckpt.info("big").nbytes == big
        assert ckpt["small"].tolist() == [0, 0, 0]
        assert float(ckpt["big"][123_456_789]) == 0.0
        peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 1 << 20


# -- (A) interop with the safetensors package and NumPy ---------------------------------------
@pytest.mark.parametrize("dtype", TORCH_DTYPES, ids=str)
def test_files_written_here_open_in_safetensors(tmp_path, dtype):
    t = (torch.arange(-6, 6) % 5).to(torch.float32).reshape(3, 4).to(dtype)
    n = np.arange(6, dtype=np.float32).astype(ml_dtypes.bfloat16)
    path = tmp_path / "ours.safetensors"
    write_checkpoint(path, {"t": t, "n": n, "s": torch.tensor(3.0)}, metadata={"who": "us"})
    loaded = safetensors.torch.load_file(path)
    # complex128 has no tag: other readers see its (real, imag) float64 pairs
    want = torch.view_as_real(t) if dtype == torch.complex128 else t
    assert_identical(loaded["t"], want)
    assert loaded["n"].dtype == torch.bfloat16
    assert torch.equal(loaded["n"].float(), torch.from_numpy(n.astype(np.float32)))
    with safetensors.safe_open(path, framework="pt") as f:
        assert f.metadata() == ({"who": "us", "arraysparse.dtypes": '{"t":"complex128"}'} if dtype == torch.complex128
                                else {"who": "us"})
        assert_identical(f.get_tensor("t"), want)


def test_files_written_by_safetensors_open_here(tmp_path):
    tensors = {"a": torch.randn(3, 5).bfloat16(), "b": torch.arange(7, dtype=torch.int64),
               "c": torch.randn(2).to(torch.float8_e5m2), "empty": torch.zeros(0, 4)}
    safetensors.torch.save_file(tensors, tmp_path / "t.safetensors", metadata={"format": "pt"})
    arrays = {"x": np.arange(12, dtype=np.uint16).reshape(3, 4), "y": np.array([1 + 1j], np.complex64)}
    safetensors.numpy.save_file(arrays, tmp_path / "n.safetensors")
    with open_checkpoint(tmp_path / "t.safetensors", like="torch") as ckpt:
        assert dict(ckpt.metadata) == {"format": "pt"}
        for k, v in tensors.items():
            assert_identical(ckpt[k], v)
    with open_checkpoint(tmp_path / "n.safetensors") as ckpt:
        for k, v in arrays.items():
            assert_identical(ckpt[k], v)


def test_npz_interop_with_numpy(tmp_path):
    arrays = {"a": np.arange(10.0).reshape(2, 5), "f": np.asfortranarray(np.arange(6).reshape(2, 3)),
              "b": np.array([True])}
    np.savez(tmp_path / "plain.npz", **arrays)
    np.savez_compressed(tmp_path / "small.npz", **arrays)
    for name in ("plain.npz", "small.npz"):
        with open_checkpoint(tmp_path / name) as ckpt:
            assert dict(ckpt.metadata) == {}
            for k, v in arrays.items():
                assert_identical(ckpt[k], v)
    write_checkpoint(tmp_path / "ours.npz", {**arrays, "bf": np.ones(3, ml_dtypes.bfloat16)}, metadata={"k": "v"})
    with np.load(tmp_path / "ours.npz", allow_pickle=False) as z:
        for k, v in arrays.items():
            assert_identical(z[k], v)
        assert json.loads(z["__metadata__"].tobytes()) == {"k": "v", "arraysparse.dtypes": '{"bf":"bfloat16"}'}
    with open_checkpoint(tmp_path / "ours.npz") as ckpt:  # stored members come back mapped and 64-byte aligned
        for k in arrays:
            assert ckpt[k].__array_interface__["data"][0] % 64 == 0
        assert_identical(ckpt["bf"], np.ones(3, ml_dtypes.bfloat16))
    np.savez(tmp_path / "objects.npz", o=np.array([{}], dtype=object))
    with pytest.raises(ValueError, match="objects.npz.*pickle"):
        open_checkpoint(tmp_path / "objects.npz")


def test_shard_directories_with_and_without_an_index(tmp_path):
    shards = {"model-00001-of-00002.safetensors": {"a": torch.ones(2), "b": torch.zeros(3).bfloat16()},
              "model-00002-of-00002.safetensors": {"c": torch.arange(4)}}
    for file, tensors in shards.items():
        safetensors.torch.save_file(tensors, tmp_path / file, metadata={"format": "pt"})
    with open_checkpoint(tmp_path, like="torch") as ckpt:
        assert sorted(ckpt) == ["a", "b", "c"]
        assert ckpt.info("c").file.name == "model-00002-of-00002.safetensors"
        assert_identical(ckpt["b"], shards["model-00001-of-00002.safetensors"]["b"])
        assert dict(ckpt.metadata) == {"format": "pt"}
    weight_map = {n: f for f, ts in shards.items() for n in ts}
    index = tmp_path / "model.safetensors.index.json"
    index.write_text(json.dumps({"metadata": {"total_size": 30}, "weight_map": weight_map}))
    with open_checkpoint(tmp_path) as ckpt:
        assert list(ckpt) == ["a", "b", "c"]
        assert dict(ckpt.metadata) == {"total_size": "30"}
        assert ckpt["c"].tolist() == [0, 1, 2, 3]
    index.write_text(json.dumps({"weight_map": {**weight_map, "c": "model-00001-of-00002.safetensors"}}))
    with pytest.raises(ValueError, match="places 'c' in 'model-00001-of-00002.safetensors'"):
        open_checkpoint(tmp_path)
    index.write_text(json.dumps({"weight_map": {"a": "missing.safetensors"}}))
    with pytest.raises(ValueError, match="missing.safetensors"):
        open_checkpoint(tmp_path)
    index.unlink()
    safetensors.torch.save_file({"a": torch.ones(1)}, tmp_path / "extra.safetensors")
    with pytest.raises(ValueError, match="'a' is in two shards"):
        open_checkpoint(tmp_path)


# -- (A) malformed files ------------------------------------------------------------------------
def valid_file(tmp_path) -> bytes:
    path = tmp_path / "ok.safetensors"
    write_checkpoint(path, {"a": np.arange(4, dtype=np.float32), "b": np.ones((2, 2), np.int16)})
    return path.read_bytes()


def forged(tmp_path, header: dict, data: bytes = b"", *, raw: bytes | None = None) -> Path:
    text = raw if raw is not None else json.dumps(header).encode()
    path = tmp_path / "bad.safetensors"
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)
    return path


MALFORMED = [
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"", "runs past|past its end"),
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, b"\0" * 4, "need 8 bytes"),
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
      "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, b"\0" * 8, "overlap"),
    ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, b"\0" * 8, "belong to no tensor"),
    ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 8, "trailing bytes"),
    ({"a": {"dtype": "Q7", "shape": [1], "data_offsets": [0, 1]}}, b"\0", "unknown dtype 'Q7'"),
    ({"a": {"dtype": "F4", "shape": [2], "data_offsets": [0, 1]}}, b"\0", "F4.*not supported"),
    ({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"\0" * 4, "shape"),
    ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}}, b"\0" * 4, "data_offsets"),
    ({"a": {"dtype": "F32", "shape": [1]}}, b"", "exactly the keys"),
    ({"__metadata__": {"k": 1}}, b"", "__metadata__"),
    ({"__metadata__": {"arraysparse.dtypes": '{"zz": "bfloat16"}'}}, b"", "does not have"),
]


@pytest.mark.parametrize(("header", "data", "match"), MALFORMED)
def test_malformed_headers_are_named(tmp_path, header, data, match):
    path = forged(tmp_path, header, data)
    with pytest.raises(ValueError, match=match) as err:
        open_checkpoint(path)
    assert "bad.safetensors" in str(err.value)
    with pytest.raises(ValueError, match=match):  # copying it writes nothing
        write_checkpoint(tmp_path / "copy.npz", open_checkpoint(path))
    assert listing(tmp_path) == ["bad.safetensors"]


def test_truncated_and_garbage_files(tmp_path):
    good = valid_file(tmp_path)
    path = tmp_path / "bad.safetensors"
    for cut in (0, 3, 8, 9, len(good) // 2, len(good) - 1):
        path.write_bytes(good[:cut])
        with pytest.raises(ValueError, match="bad.safetensors.*(truncated|past|too small|trailing|end)"):
            open_checkpoint(path)
    path.write_bytes(struct.pack("<Q", 1 << 40) + b"{}")
    with pytest.raises(ValueError, match="exceeds the limit"):
        open_checkpoint(path)
    for raw, match in [(b"[1, 2]  ", "start with"), (b"{nope}  ", "not UTF-8 JSON"), (b"{\xff\xfe}   ", "not UTF-8 JSON"),
                       (b'{"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}',
                        "twice")]:
        with pytest.raises(ValueError, match=match):
            open_checkpoint(forged(tmp_path, {}, raw=raw))
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 this is not a zip")
    with pytest.raises(ValueError, match="bad.npz.*not a valid .npz"):
        open_checkpoint(tmp_path / "bad.npz")


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("like", ["numpy", "torch"])
def test_bool_bytes_other_than_0_and_1_are_refused(tmp_path, suffix, like):
    # a mask file whose bool bytes were corrupted (or written by a tool that stores 0xFF for
    # True) must not come back as bools whose ~ and == answer wrongly
    bad = np.array([[1, 0], [255, 1]], np.uint8).view(bool)  # bytes as such a file holds them
    path = write_checkpoint(tmp_path / f"m{suffix}", {"mask": bad, "w": np.ones(3, np.float32)})
    with open_checkpoint(path, like=like) as ckpt:
        assert np.array_equal(np.asarray(ckpt["w"]), np.ones(3))  # other tensors still read
        with pytest.raises(ValueError, match=r"'mask'.*holds byte 255 at flat index 2"):
            ckpt["mask"]


@given(cut=st.integers(0, 400), flip=st.tuples(st.integers(0, 400), st.integers(1, 255)))
@settings(deadline=None, max_examples=60)
def test_any_corruption_is_a_value_error_or_reads_the_same_size(cut, flip):
    """Cutting or flipping a byte anywhere never crashes: a ValueError naming the file, or a file that checks out."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        good = valid_file(Path(d))
        data = bytearray(good[: min(cut, len(good))] if cut < len(good) else good)
        if flip[0] < len(data):
            data[flip[0]] ^= flip[1]
        path = Path(d) / "x.safetensors"
        path.write_bytes(bytes(data))
        try:
            with open_checkpoint(path) as ckpt:
                for name in ckpt:
                    ckpt[name]
        except ValueError as e:
            assert "x.safetensors" in str(e)


# -- (A) atomic writes ----------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("failure", ["iterator", "bad array", "duplicate"])
def test_a_failed_write_leaves_the_destination_and_no_temporary_file(tmp_path, suffix, failure):
    path = tmp_path / f"model{suffix}"
    write_checkpoint(path, {"old": np.ones(3)})
    before, files = path.read_bytes(), listing(tmp_path)

    def items():
        yield "a", np.zeros(1000)
        yield "b", torch.ones(10)
        if failure == "iterator":
            raise RuntimeError("disk quota, say")
        if failure == "bad array":
            yield "c", [1, 2, 3]
        yield "a", np.zeros(2)

    with pytest.raises((RuntimeError, TypeError, ValueError), match="quota|items\\['c'\\]|twice"):
        write_checkpoint(path, items())
    assert path.read_bytes() == before
    assert listing(tmp_path) == files
    with pytest.raises(RuntimeError), CheckpointWriter(tmp_path / f"new{suffix}") as w:
        w.add("x", np.ones(2))
        raise RuntimeError
    assert listing(tmp_path) == files


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_a_killed_writer_leaves_the_destination(tmp_path, suffix):
    """SIGKILL mid-write: the destination is as it was and nothing is beside it."""
    import signal
    import subprocess
    import sys
    import time

    path = tmp_path / f"model{suffix}"
    write_checkpoint(path, {"old": np.ones(3)})
    before = path.read_bytes()
    code = (
        "import sys, time, numpy as np\n"
        "from arraysparse.io import write_checkpoint\n"
        "def items():\n"
        "    for i in range(1000):\n"
        "        yield f'a{i}', np.zeros(1 << 16)\n"
        "        if i == 3:\n"
        "            print('writing', flush=True)\n"
        "        time.sleep(0.01)\n"
        f"write_checkpoint({str(path)!r}, items())\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, env=env)
    assert proc.stdout.readline().strip() == b"writing"
    time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert path.read_bytes() == before
    assert listing(tmp_path) == [path.name]


KILLED_WRITER = """
import sys, numpy as np
from arraysparse.io import write_checkpoint
arrays = {f"a{i}": np.full(1 << 18, i, np.float32) for i in range(24)}  # 24 MiB
print("ready", flush=True)
write_checkpoint(sys.argv[1], iter(arrays.items()) if sys.argv[2] == "stream" else arrays)
print("done", flush=True)
"""


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_a_writer_killed_at_random_points_leaves_the_old_or_the_new_file_and_nothing_else(tmp_path, suffix):
    """SIGKILL anywhere from start-up to after the rename, streamed and planned writes: the destination
    is the old file or the complete new one, and no other file exists, save a hidden temporary file
    named with the killed pid in the two-syscall window (link, rename) of the commit, which the next
    writer removes."""
    import random
    import signal
    import subprocess
    import sys
    import time

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    path = tmp_path / f"model{suffix}"

    def start(mode: str) -> tuple[subprocess.Popen, float]:
        proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(path), mode], stdout=subprocess.PIPE, env=env)
        assert proc.stdout.readline().strip() == b"ready"
        return proc, time.monotonic()

    proc, t0 = start("plan")  # one whole run: the new file, and how long a write takes
    assert proc.stdout.readline().strip() == b"done"
    took = time.monotonic() - t0
    proc.wait()
    new = path.read_bytes()
    window = []
    for i in range(6):
        write_checkpoint(path, {"old": np.ones(3)})  # also removes what a killed writer left
        old = path.read_bytes()
        proc, _ = start("stream" if i % 2 else "plan")
        time.sleep(random.uniform(0, 1.3 * took))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert path.read_bytes() in (old, new)
        others = [n for n in listing(tmp_path) if n != path.name]
        window += others
        assert all(re.fullmatch(rf"\.{re.escape(path.name)}\.{proc.pid}\.[0-9a-f]{{8}}\.tmp", n) for n in others), others
    write_checkpoint(path, {"old": np.ones(3)})
    assert listing(tmp_path) == [path.name], window


def test_stale_temporary_files_of_dead_writers_are_removed_and_no_others(tmp_path):
    """The next writer removes a hidden file whose pid is dead and whose lock is free; not one whose pid
    lives, nor one locked by a live writer (another pid namespace, say), nor a name not of that form."""
    import fcntl
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          check=True).stdout.decode().strip()
    path = tmp_path / "m.npz"
    names = {"dead": f".m.npz.{dead}.0123abcd.tmp", "alive": f".m.npz.{os.getppid()}.0123abcd.tmp",
             "locked": f".m.npz.{dead}.4567cdef.tmp", "other": ".m.npz.tmp", "other file": f".n.npz.{dead}.0123abcd.tmp"}
    for name in names.values():
        (tmp_path / name).write_bytes(b"x")
    with open(tmp_path / names["locked"], "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        write_checkpoint(path, {"w": np.ones(3)})
    assert listing(tmp_path) == sorted({*names.values(), path.name} - {names["dead"]})


@pytest.mark.parametrize("how", ["unnamed", "no O_TMPFILE", "link fails"])
def test_atomic_file_modes_and_fallbacks(tmp_path, monkeypatch, how):
    """New files get 0o666 & ~umask, replaced ones keep their mode; where there is no O_TMPFILE the
    data goes to a named hidden file (seen while writing, gone after), and where the unnamed file
    cannot be linked it is copied to one (and later writes there go named): the files are the same."""
    from arraysparse.io import _atomic

    monkeypatch.setattr(_atomic, "_UNNAMED_FAILED", set())
    if how == "no O_TMPFILE":
        monkeypatch.setattr(_atomic, "_O_TMPFILE", None)
    elif how == "link fails":
        def link(*args, **kwargs):
            raise OSError(18, "Invalid cross-device link")
        monkeypatch.setattr(os, "link", link)
    path = tmp_path / "a.bin"
    umask = os.umask(0o027)
    try:
        with _atomic.AtomicFile(path) as f:
            f.file.write(b"abc")
            seen = listing(tmp_path)
    finally:
        os.umask(umask)
    assert path.read_bytes() == b"abc"
    assert os.stat(path).st_mode & 0o777 == 0o640
    hidden = [n for n in seen if re.fullmatch(rf"\.a\.bin\.{os.getpid()}\.[0-9a-f]{{8}}\.tmp", n)]
    assert len(hidden) == (how == "no O_TMPFILE") and len(seen) == len(hidden), seen
    assert (how == "link fails") == bool(_atomic._UNNAMED_FAILED)
    os.chmod(path, 0o604)
    arrays = {"w": np.arange(1000.0), "v": np.ones(7, np.float32)}
    for suffix in SUFFIXES:
        with _atomic.AtomicFile(path) as f:
            f.file.write(b"defg")
        with CheckpointWriter(tmp_path / f"m{suffix}") as w:
            for name, a in arrays.items():
                w.add(name, a)
        write_checkpoint(tmp_path / f"p{suffix}", arrays)
    assert path.read_bytes() == b"defg"
    assert os.stat(path).st_mode & 0o777 == 0o604
    monkeypatch.undo()
    for suffix in SUFFIXES:
        write_checkpoint(tmp_path / f"expected{suffix}", arrays)
        expected = (tmp_path / f"expected{suffix}").read_bytes()
        assert (tmp_path / f"m{suffix}").read_bytes() == expected
        assert (tmp_path / f"p{suffix}").read_bytes() == expected
    assert listing(tmp_path) == sorted(["a.bin", *(f"{k}{s}" for k in ("m", "p", "expected") for s in SUFFIXES)])


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_writing_over_the_file_being_read_is_refused(tmp_path, suffix):
    path = tmp_path / f"m{suffix}"
    write_checkpoint(path, {"w": np.arange(3.0), "v": np.ones(2)})
    before = path.read_bytes()
    saved = asp.save(tmp_path / f"saved{suffix}", {"w": np.arange(3.0)})
    with pytest.raises(ValueError, match="tensor 'w' is read from .* the file being written"):
        asp.save(saved, asp.load(saved))
    with open_checkpoint(path) as ckpt:
        with pytest.raises(ValueError, match="being written"):
            write_checkpoint(path, ckpt)
        with pytest.raises(ValueError, match="being written"):
            write_checkpoint(path, ((n, ckpt[n]) for n in ckpt))
        with pytest.raises(ValueError, match="being written"):
            write_checkpoint(path, {"w": ckpt["w"][1:]})
    assert path.read_bytes() == before
    assert listing(tmp_path) == sorted([path.name, saved.name])


def test_streaming_writer_holds_about_one_array(tmp_path):
    """Twenty 4 MB arrays from a generator: peak traced memory stays near one array."""
    one = 4 << 20

    def items():
        for i in range(20):
            yield f"layer{i}", np.full(one // 8, i, dtype=np.float64)

    for suffix in SUFFIXES:
        tracemalloc.start()
        write_checkpoint(tmp_path / f"s{suffix}", items())
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < 2.5 * one, (suffix, peak)
        with open_checkpoint(tmp_path / f"s{suffix}") as ckpt:
            assert float(ckpt["layer19"][-1]) == 19.0


# -- (A) argument errors ----------------------------------------------------------------------------
def test_checkpoint_argument_errors(tmp_path):
    p = tmp_path / "x.safetensors"
    with pytest.raises(ValueError, match="must end in .safetensors or .npz"):
        write_checkpoint(tmp_path / "x.bin", {})
    with pytest.raises(ValueError, match="is a directory"):
        write_checkpoint(tmp_path, {})
    with pytest.raises(ValueError, match="does not exist"):
        write_checkpoint(tmp_path / "no" / "x.npz", {})
    with pytest.raises(TypeError, match="mapping or an iterable"):
        write_checkpoint(p, 3)
    with pytest.raises(TypeError, match="tensor names must be str"):
        write_checkpoint(p, {1: np.ones(1)})
    with pytest.raises(ValueError, match="reserved '__metadata__'"):
        write_checkpoint(p, {"__metadata__": np.ones(1)})
    with pytest.raises(TypeError, match="flatten_model"):
        write_checkpoint(p, {"a": {"b": np.ones(1)}})
    with pytest.raises(TypeError, match=r"items\['a'\] must be an array"):
        write_checkpoint(p, {"a": "text"})
    with pytest.raises(TypeError, match="cannot be stored"):
        write_checkpoint(p, {"a": np.array(["text"])})
    with pytest.raises(TypeError, match="str to str"):
        write_checkpoint(p, {}, metadata={"a": 1})
    with pytest.raises(ValueError, match="reserved"):
        write_checkpoint(p, {}, metadata={"arraysparse.dtypes": "{}"})
    with pytest.raises(ValueError, match="like='pandas' must be one of 'numpy', 'torch', 'jax'"):
        open_checkpoint(p, like="pandas")
    with pytest.raises(FileNotFoundError):
        open_checkpoint(p)
    assert not p.exists()
    write_checkpoint(p, {})
    with open_checkpoint(p) as ckpt:
        assert len(ckpt) == 0 and dict(ckpt.metadata) == {}
    ckpt = open_checkpoint(p)
    ckpt.close()
    with pytest.raises(KeyError):
        ckpt["nope"]
    assert safetensors.torch.load_file(p) == {}


# -- (A) sharded directories ------------------------------------------------------------------------
SHARD_NAME = re.compile(r"model-(\d{5})-of-(\d{5})\.safetensors")


def shard_state(d: Path) -> dict:
    """The index of a directory written with max_shard_size, checked for structure against the files:
    exactly ``metadata`` and ``weight_map``; ``total_size`` an int; shards named ``model-k-of-N`` for
    k = 1..N, every one present, holding exactly the names the index gives it, in the index's order."""
    doc = json.loads((d / "model.safetensors.index.json").read_text())
    assert set(doc) == {"metadata", "weight_map"}
    assert isinstance(doc["metadata"]["total_size"], int)
    shards = list(dict.fromkeys(doc["weight_map"].values()))
    n = len(shards)
    assert shards == [f"model-{k:05d}-of-{n:05d}.safetensors" for k in range(1, n + 1)]
    for file in shards:
        with safetensors.safe_open(d / file, framework="np") as f:
            assert sorted(f.keys()) == sorted(t for t, s in doc["weight_map"].items() if s == file)
            assert f.metadata()["format"] == "pt"  # transformers' loader asks for it
    assert sorted(p.name for p in d.iterdir() if SHARD_NAME.fullmatch(p.name)) == shards  # no stray shard
    return doc


def tensor_bytes(a) -> int:
    return a.element_size() * a.numel() if isinstance(a, torch.Tensor) else np.asarray(a).nbytes


@pytest.mark.parametrize("how", ["dict", "stream", "checkpoint", "writer"])
def test_shard_directory_round_trip(tmp_path, how):
    """Every way into write_checkpoint(max_shard_size=...): the index's exact structure, the shards as the
    safetensors package reads them, and open_checkpoint / load of the directory, array for array."""
    tensors = {"embed": torch.randn(100, 16).bfloat16(), "a.weight": np.arange(600, dtype=np.float32).reshape(20, 30),
               "a.bias": np.zeros(20, np.float16), "big": np.ones(3000, np.float64), "step": np.array(7, np.int64),
               "f8": np.ones(5, ml_dtypes.float8_e4m3fn), "i4": np.arange(6).astype(ml_dtypes.int4)}
    src = tmp_path / "src.safetensors"
    write_checkpoint(src, tensors)
    d = tmp_path / "out"
    with open_checkpoint(src) as ckpt:
        items = {"dict": tensors, "stream": iter(tensors.items()), "checkpoint": ckpt}.get(how)
        if how == "writer":
            with CheckpointWriter(d, metadata={"who": "us"}, max_shard_size="3.2KB") as w:
                for name, a in tensors.items():
                    w.add(name, a)
        else:
            assert write_checkpoint(d, items, metadata={"who": "us"}, max_shard_size="3.2KB") == d
    doc = shard_state(d)
    sizes = {n: tensor_bytes(a) for n, a in tensors.items()}
    assert doc["metadata"] == {"total_size": sum(sizes.values()), "who": "us"}
    assert list(doc["weight_map"]) == list(tensors)
    # 3200 bytes a shard: embed 3200 | a.weight 2400, a.bias 40, step 8, (big 24000 alone) | f8 5, i4 6
    groups = [["embed"], ["a.weight", "a.bias"], ["big"], ["step", "f8", "i4"]]
    assert [[t for t, s in doc["weight_map"].items() if s == f] for f in dict.fromkeys(doc["weight_map"].values())] \
        == groups
    assert sorted(os.listdir(d)) == [*(f"model-{k:05d}-of-00004.safetensors" for k in range(1, 5)),
                                     "model.safetensors.index.json"]
    assert listing(tmp_path) == ["out", "src.safetensors"]  # no staging directory left
    with safetensors.safe_open(d / "model-00001-of-00004.safetensors", framework="pt") as f:
        assert_identical(f.get_tensor("embed"), tensors["embed"])
    with open_checkpoint(d) as ckpt:
        assert list(ckpt) == list(tensors)
        assert dict(ckpt.metadata) == {"total_size": str(sum(sizes.values())), "who": "us"}
        for name, a in tensors.items():
            assert_identical(ckpt[name], expected(a, "numpy"))
            assert ckpt.info(name).file.name == doc["weight_map"][name]
    with open_checkpoint(d, like="torch") as ckpt:
        assert_identical(ckpt["embed"], tensors["embed"])


def test_shards_streamed_and_planned_are_the_same_bytes(tmp_path):
    rng = np.random.default_rng(0)
    tensors = {f"t{i}": rng.standard_normal(int(n)).astype(np.float32) for i, n in enumerate(rng.integers(1, 900, 12))}
    write_checkpoint(tmp_path / "planned", tensors, max_shard_size=2000)
    write_checkpoint(tmp_path / "streamed", iter(tensors.items()), max_shard_size=2000)
    a, b = sorted(os.listdir(tmp_path / "planned")), sorted(os.listdir(tmp_path / "streamed"))
    assert a == b and len(a) > 3
    assert all((tmp_path / "planned" / f).read_bytes() == (tmp_path / "streamed" / f).read_bytes() for f in a)


@STRICT
@given(sizes=st.lists(st.integers(0, 300), max_size=14), limit=st.integers(1, 700), streamed=st.booleans(),
       itemsize=st.sampled_from([1, 2, 4]))
def test_shards_hold_at_most_the_limit_in_order(tmp_path, sizes, limit, streamed, itemsize):
    """Random tensor sizes and limits: every shard holds at most the limit of tensor bytes, unless it holds
    one larger tensor alone; a shard ends only when the next tensor would overflow it (Hugging Face's rule,
    without its reordering); the order is kept; total_size is the sum; every name is there once."""
    dtype = {1: np.uint8, 2: np.float16, 4: np.int32}[itemsize]
    tensors = {f"t{i}": np.full(n, i, dtype) for i, n in enumerate(sizes)}
    d = fresh(tmp_path) / "shards"
    write_checkpoint(d, iter(tensors.items()) if streamed else tensors, max_shard_size=limit)
    doc = shard_state(d)
    assert list(doc["weight_map"]) == list(tensors)
    assert doc["metadata"]["total_size"] == sum(a.nbytes for a in tensors.values())
    groups = [[t for t, s in doc["weight_map"].items() if s == f] for f in dict.fromkeys(doc["weight_map"].values())]
    held = [sum(tensors[t].nbytes for t in g) for g in groups]
    for k, (g, h) in enumerate(zip(groups, held)):
        assert h <= limit or len(g) == 1, (g, h, limit)
        if k + 1 < len(groups):  # greedy: the next shard's first tensor did not fit
            assert h + tensors[groups[k + 1][0]].nbytes > limit
    with open_checkpoint(d) as ckpt:
        assert list(ckpt) == list(tensors)
        assert all(np.array_equal(ckpt[n], a) for n, a in tensors.items())


def test_shard_split_and_sizes():
    from arraysparse.io._shards import parse_size, split

    # huggingface_hub's docstring example, and a tensor over the limit between others: a shard of its own,
    # the order kept (Hugging Face would put it first and the small ones together)
    assert split([6, 6, 2, 6, 2, 2], 10) == [[0], [1, 2], [3, 4, 5]]
    assert split([1, 50, 1], 10) == [[0], [1], [2]]
    assert split([], 10) == []
    assert split([0, 0, 10, 0, 1], 10) == [[0, 1, 2, 3], [4]]
    cases = {"5GB": 5 * 10**9, "5gb": 5 * 10**9, "500MB": 5 * 10**8, "2GiB": 2 * 2**30, "1.5 KB": 1500,
             "3kib": 3072, "1TB": 10**12, "1TiB": 2**40, "7": 7, " 12 B ": 12, ".5kB": 500, 4096: 4096,
             np.int64(9): 9}
    for text, size in cases.items():
        assert parse_size(text) == size, text
    for bad in ["5XB", "GB", "", "-1GB", "0", "1e9", "5 G B", "0.1B", 0, -3]:
        with pytest.raises(ValueError, match=f"max_shard_size={re.escape(repr(bad))}"):
            parse_size(bad)
    for bad in [True, None, [1]]:
        with pytest.raises(TypeError, match="max_shard_size must be an int"):
            parse_size(bad)


def test_shard_directory_argument_errors(tmp_path):
    arrays = {"w": np.ones(4)}
    with pytest.raises(ValueError, match=r"max_shard_size='5XB' is not a size"):
        write_checkpoint(tmp_path / "d", arrays, max_shard_size="5XB")
    with pytest.raises(ValueError, match="sharding does not apply to .npz"):
        write_checkpoint(tmp_path / "m.npz", arrays, max_shard_size="1GB")
    with pytest.raises(ValueError, match="names a file, but max_shard_size writes a directory"):
        write_checkpoint(tmp_path / "m.safetensors", arrays, max_shard_size="1GB")
    with pytest.raises(ValueError, match="does not exist"):
        write_checkpoint(tmp_path / "no" / "d", arrays, max_shard_size="1GB")
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(ValueError, match="is a file"):
        write_checkpoint(tmp_path / "file", arrays, max_shard_size="1GB")
    with pytest.raises(TypeError, match="overwrite must be a bool"):
        write_checkpoint(tmp_path / "d", arrays, max_shard_size="1GB", overwrite="yes")
    with pytest.raises(ValueError, match="is a directory; give a file name"):
        write_checkpoint(tmp_path, arrays)  # a directory needs max_shard_size
    with pytest.raises(ValueError, match="must end in .safetensors or .npz"):
        CheckpointWriter(tmp_path / "d")
    with pytest.raises(ValueError, match=r"max_shard_size=0 must be at least one byte"):
        asp.save(tmp_path / "d", {"w": np.ones(2)}, max_shard_size=0)
    with pytest.raises(ValueError, match="max_shard_size is for a dst path"):
        asp.prune_checkpoint({"w": np.ones((4, 4))}, {}, 0.5, max_shard_size="1GB")
    assert listing(tmp_path) == ["file"]
    write_checkpoint(tmp_path / "empty", {}, max_shard_size=1)  # no tensors: an empty index
    assert json.loads((tmp_path / "empty" / "model.safetensors.index.json").read_text()) == {
        "metadata": {"total_size": 0}, "weight_map": {}}
    with open_checkpoint(tmp_path / "empty") as ckpt:
        assert len(ckpt) == 0


def test_shard_directory_reading_its_own_files_is_refused(tmp_path):
    d = tmp_path / "d"
    write_checkpoint(d, {"w": np.arange(4.0), "v": np.ones(2)}, max_shard_size=16)
    before = {f: (d / f).read_bytes() for f in os.listdir(d)}
    with open_checkpoint(d) as ckpt:
        for items in (ckpt, ((n, ckpt[n]) for n in ckpt), {"w": ckpt["w"]}):
            with pytest.raises(ValueError, match="a file of the directory being written"):
                write_checkpoint(d, items, max_shard_size=16, overwrite=True)
    assert {f: (d / f).read_bytes() for f in os.listdir(d)} == before


def test_an_existing_directory_keeps_its_other_files_and_its_checkpoint_is_replaced_on_request(tmp_path):
    """A directory with only other files is written into; one holding a checkpoint is refused without
    overwrite (nothing changes) and replaced with it: the old index, the shards it names and a
    model.safetensors go, every other file (config, an adapter the index does not name, an .npz) stays."""
    d = tmp_path / "model"
    d.mkdir()
    (d / "config.json").write_text("{}")
    write_checkpoint(d, {f"w{i}": np.full(100, i, np.float32) for i in range(3)}, max_shard_size=400)
    assert sorted(os.listdir(d)) == ["config.json", *(f"model-0000{k}-of-00003.safetensors" for k in (1, 2, 3)),
                                     "model.safetensors.index.json"]
    write_checkpoint(d / "model.safetensors", {"stale": np.ones(1)})
    write_checkpoint(d / "adapter_model.safetensors", {"lora": np.ones(1)})
    write_checkpoint(d / "extra.npz", {"x": np.ones(1)})
    before = {f: (d / f).read_bytes() for f in os.listdir(d)}
    with pytest.raises(ValueError, match="already holds a checkpoint.*overwrite=True"):
        write_checkpoint(d, {"new": np.ones(5)}, max_shard_size=400)
    assert {f: (d / f).read_bytes() for f in os.listdir(d)} == before
    new = {f"n{i}": np.full(50, -i, np.float32) for i in range(5)}  # five shards: no name in common
    write_checkpoint(d, new, max_shard_size=200, overwrite=True)
    assert sorted(os.listdir(d)) == ["adapter_model.safetensors", "config.json", "extra.npz",
                                     *(f"model-0000{k}-of-00005.safetensors" for k in range(1, 6)),
                                     "model.safetensors.index.json"]
    shard_state(d)
    for kept in ("adapter_model.safetensors", "config.json", "extra.npz"):
        assert (d / kept).read_bytes() == before[kept]
    with open_checkpoint(d) as ckpt:
        assert list(ckpt) == list(new)
    # the same names again (every shard name taken by the old checkpoint), from a stream
    again = {k: v + 1 for k, v in new.items()}
    write_checkpoint(d, iter(again.items()), max_shard_size=200, overwrite=True)
    assert sorted(os.listdir(d)) == ["adapter_model.safetensors", "config.json", "extra.npz",
                                     *(f"model-0000{k}-of-00005.safetensors" for k in range(1, 6)),
                                     "model.safetensors.index.json"]
    with open_checkpoint(d) as ckpt:
        assert all(np.array_equal(ckpt[n], a) for n, a in again.items())


def test_an_unindexed_checkpoint_directory_is_replaced_whole(tmp_path):
    d = tmp_path / "plain"
    d.mkdir()
    safetensors.numpy.save_file({"a": np.ones(3)}, d / "one.safetensors")
    safetensors.numpy.save_file({"b": np.ones(3)}, d / "model-00001-of-00001.safetensors")
    (d / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="already holds a checkpoint .one.safetensors|model-00001"):
        write_checkpoint(d, {"c": np.ones(2)}, max_shard_size=8)
    write_checkpoint(d, {"c": np.ones(2)}, max_shard_size=8, overwrite=True)
    assert sorted(os.listdir(d)) == ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
                                     "model.safetensors.index.json", "notes.txt"] or \
        sorted(os.listdir(d)) == ["model-00001-of-00001.safetensors", "model.safetensors.index.json", "notes.txt"]
    with open_checkpoint(d) as ckpt:
        assert list(ckpt) == ["c"]


def test_a_directory_replacement_refuses_what_it_cannot_account_for(tmp_path):
    """Another checkpoint's index, a file in the way of a new shard that the old index does not name,
    an index that is not JSON: refused, with nothing changed."""
    cases = {
        "foreign index": ("diffusion_pytorch_model.safetensors.index.json", b"{}", "index 'diffusion_pytorch"),
        "in the way": ("model-00001-of-00001.safetensors", None, "is in the way"),
        "bad index": ("model.safetensors.index.json", b"not json", "not valid JSON"),
    }
    for what, (name, data, match) in cases.items():
        d = fresh(tmp_path)
        if what == "in the way":
            write_checkpoint(d, {"old": np.ones(2)}, max_shard_size=100)  # model-00001-of-00001
            (d / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {}}))
        else:
            (d / name).write_bytes(data)
        before = {f: (d / f).read_bytes() for f in os.listdir(d)}
        with pytest.raises(ValueError, match=match):
            write_checkpoint(d, {"w": np.ones(2)}, max_shard_size=100, overwrite=True)
        assert {f: (d / f).read_bytes() for f in os.listdir(d)} == before, what


@pytest.mark.parametrize("where", ["new", "existing"])
def test_a_failed_sharded_write_leaves_the_directory_as_it_was(tmp_path, where):
    d = tmp_path / "d"
    if where == "existing":
        write_checkpoint(d, {"old": np.ones(300)}, max_shard_size=1000)
    before = {f: (d / f).read_bytes() for f in os.listdir(d)} if d.exists() else None

    def items():
        for i in range(5):
            yield f"a{i}", np.zeros(200)  # 1600 bytes: a shard each, written before the failure
        raise RuntimeError("disk quota, say")

    with pytest.raises(RuntimeError, match="quota"):
        write_checkpoint(d, items(), max_shard_size=1000, overwrite=True)
    assert listing(tmp_path) == (["d"] if before is not None else [])
    if before is not None:
        assert {f: (d / f).read_bytes() for f in os.listdir(d)} == before


def test_sharded_streaming_holds_about_one_array(tmp_path):
    """Twenty 4 MB arrays from a generator into 10 MB shards: peak traced memory stays near one array."""
    one = 4 << 20

    def items():
        for i in range(20):
            yield f"layer{i}", np.full(one // 8, i, dtype=np.float64)

    tracemalloc.start()
    write_checkpoint(tmp_path / "d", items(), max_shard_size="10MB")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 2.5 * one, peak
    assert len(shard_state(tmp_path / "d")["weight_map"]) == 20
    assert len(list((tmp_path / "d").glob("*.safetensors"))) == 10
    with open_checkpoint(tmp_path / "d") as ckpt:
        assert float(ckpt["layer19"][-1]) == 19.0


# A child process writes, and dies (os._exit) before its k-th rename / link / unlink / mkdir in the
# sharded writer's module: every state between two file-system steps of a commit is a state a kill
# can leave. Forked, so each death costs no interpreter start.
def _die_at(k: int, write) -> int:
    """Run ``write`` in a forked child that dies before its k-th file-system step of arraysparse.io._shards;
    returns how many steps it took when it did not die."""
    from arraysparse.io import _shards

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(r)
        code = 0
        try:
            count = [0]

            class Dying:
                def __getattr__(self, name):
                    f = getattr(os, name)
                    if name not in ("rename", "link", "unlink", "mkdir", "replace"):
                        return f

                    def step(*args, **kwargs):
                        count[0] += 1
                        if count[0] == k:
                            os._exit(9)
                        return f(*args, **kwargs)

                    return step

            _shards.os = Dying()
            write()
            os.write(w, str(count[0]).encode())
        except BaseException:
            import traceback

            traceback.print_exc()
            code = 3
        finally:
            os._exit(code)
    os.close(w)
    import select

    if not select.select([r], [], [], 120)[0]:  # a child stuck (fork copies no other thread) fails, never hangs
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        os.close(r)
        pytest.fail(f"the writer forked to die at step {k} did not finish in 120 s")
    with os.fdopen(r) as f:
        steps = f.read()
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    assert code in (0, 9), code
    return int(steps) if code == 0 else -1


def _contents(d: Path) -> dict | None:
    """What a reader of ``d`` sees (None: no checkpoint there), read whole: open_checkpoint checks that
    every file the index names is there and complete (every header, the tiling of every file)."""
    names = [n for n in os.listdir(d) if not n.startswith(".")] if d.is_dir() else []
    if not any(n.endswith((".safetensors", ".safetensors.index.json")) for n in names):
        return None
    with open_checkpoint(d) as ckpt:
        return {n: ckpt[n].copy() for n in ckpt}


def _same(a: dict | None, b: dict | None) -> bool:
    if a is None or b is None:
        return a is b
    return list(a) == list(b) and all(np.array_equal(a[n], b[n]) for n in a)


# The child runs only arraysparse.io and os calls, never JAX or a Numba kernel, so the threads of
# the parent that fork leaves behind hold nothing it needs: JAX's fork warning does not apply.
@pytest.mark.filterwarnings("ignore:os.fork\\(\\) was called:RuntimeWarning")
@pytest.mark.skipif(not hasattr(os, "fork"), reason="forks a dying writer")
@pytest.mark.parametrize("old", ["new directory", "no checkpoint", "indexed, same names", "indexed, other names",
                                 "unindexed", "model.safetensors"])
def test_a_sharded_writer_killed_at_every_step_leaves_the_old_or_the_new_checkpoint(tmp_path, old):
    """Killed before each file-system step of a write (its staging directory, the shards' names, the pin,
    the moves, the renames, the commit, the removals): a reader of the directory sees the old checkpoint
    or the new one, whole (never an index naming a missing or partial file, never old and new mixed);
    the user's other files are untouched; the next writer's recovery leaves exactly the old files or the
    new ones, and nothing else, in the directory and beside it; a write then succeeds."""
    from arraysparse.io._shards import ShardDirectory

    new = {f"n{i}": np.full(40, i, np.float32) for i in range(3)}  # 160 bytes each: three shards of 200
    olds = {  # the old checkpoint, and how it was written: shards of that size, or one file of that name
        "indexed, same names": ({f"o{i}": np.full(30, -i, np.float64) for i in range(3)}, 240),  # 3 shards
        "indexed, other names": ({f"o{i}": np.full(10, -i, np.float64) for i in range(4)}, 80),  # 4 shards
        "unindexed": ({"o": np.ones(3)}, "weights.safetensors"),
        "model.safetensors": ({"o": np.ones(3)}, "model.safetensors"),
    }
    new_files = [*(["config.json"] if old != "new directory" else []),
                 *(f"model-0000{i}-of-00003.safetensors" for i in (1, 2, 3)), "model.safetensors.index.json"]
    steps, k = None, 1
    while steps is None or k <= steps + 1:
        root = fresh(tmp_path)
        d = root / "model"
        if old != "new directory":
            d.mkdir()
            (d / "config.json").write_text('{"keep": 1}')
        if old in olds:
            tensors, how = olds[old]
            if isinstance(how, int):
                write_checkpoint(d, tensors, max_shard_size=how)
            else:
                write_checkpoint(d / how, tensors)
        old_files = listing(d) if d.exists() else None
        seen = _contents(d)
        took = _die_at(k, lambda d=d: write_checkpoint(d, new, max_shard_size=200, overwrite=True))
        if took >= 0:
            steps = took
        assert _same(_contents(d), seen) or _same(_contents(d), new), (old, k)
        if old != "new directory":
            assert (d / "config.json").read_text() == '{"keep": 1}'
        ShardDirectory(d, overwrite=True).abort()  # what the next writer does first
        if _same(_contents(d), new):
            assert listing(d) == new_files, (old, k)
        else:
            assert (listing(d) if d.exists() else None) == old_files, (old, k)
        assert listing(root) == (["model"] if d.exists() else []), (old, k)
        write_checkpoint(d, new, max_shard_size=200, overwrite=True)
        assert listing(d) == new_files
        k += 1
    assert steps >= 5, steps
    print(f"{old}: killed before each of {steps} steps")


# -- (B) save / load -------------------------------------------------------------------------------

FORMATS = ["coo", "csr", "csc", "bsr", "ell", "dia", "n:m", "2:4", "bitmask"]
RESULT_DTYPES = ["float32", "float64", "float16", "bfloat16", "int8", "int32", "uint8", "bool", "complex64",
                 "complex128"]
#: CPU inputs: NumPy (ml_dtypes for bfloat16), read-only NumPy, torch.
INPUTS = ["numpy", "numpy_readonly", "torch"]


def sparse_input(rng, shape, fmt: str, dtype: str) -> np.ndarray:
    """A matrix with zeros; for the N:M formats 2:4-valid (so 4:8 and 1:4 hold too)."""
    rows = shape[0]
    x = rng.integers(1, 5, size=(rows, int(np.prod(shape[1:])))).astype(np.float64)
    x *= rng.choice([-1, 1], size=x.shape)
    if fmt in ("n:m", "2:4"):  # on the 2-D view, as the formats group it
        x = np.asarray(asp.nm_mask(np.abs(x), 2, 4).apply(x))
    x = x.reshape(shape)
    x[rng.random(shape) < 0.3] = 0
    if dtype == "bool":
        return x != 0
    if dtype.startswith("uint"):
        x = np.abs(x)
    return x.astype(NUMPY_DTYPES[dtype])


def on(kind: str, x: np.ndarray):
    if kind == "numpy":
        return x
    if kind == "numpy_readonly":
        x = x.copy()
        x.flags.writeable = False
        return x
    if x.dtype == ml_dtypes.bfloat16:
        return torch.from_numpy(x.view(np.int16).copy()).view(torch.bfloat16)
    return torch.from_numpy(x.copy())


def format_params(fmt: str, draw, rows: int) -> dict:
    if fmt == "bsr":
        return {"block": draw(st.sampled_from([(1, 1), (1, 4)] + ([(2, 2)] if rows % 2 == 0 else [])))}
    if fmt == "n:m":
        return draw(st.sampled_from([{"n": 2, "m": 4}, {"n": 4, "m": 8}, {"n": 1, "m": 4}]))
    if fmt == "ell":
        return draw(st.sampled_from([{}, {"width": 20}]))
    return {}


def assert_same_result(got, want, like: str) -> None:
    assert isinstance(got, asp.SparseCompressionResult)
    assert got.format is want.format
    assert got.shape == want.shape
    assert dict(got.params) == dict(want.params)
    assert list(got.arrays) == list(want.arrays)
    assert str(got.dtype).removeprefix("torch.") == str(want.dtype).removeprefix("torch.")
    assert got.nnz == want.nnz
    for name, a in want.arrays.items():
        assert_identical(got.arrays[name], expected(a, like))
    if like == "torch":
        assert all(isinstance(a, torch.Tensor) for a in got.arrays.values())
        assert isinstance(got.dtype, torch.dtype)
    else:
        assert all(isinstance(a, np.ndarray) for a in got.arrays.values())
        assert isinstance(got.dtype, np.dtype)
    assert np.array_equal(bits(got.to_dense()), bits(expected(want.to_dense(), like)))


@st.composite
def results(draw):
    fmt = draw(st.sampled_from(FORMATS))
    dtype = draw(st.sampled_from(RESULT_DTYPES))
    kind = draw(st.sampled_from(INPUTS))
    rows = draw(st.sampled_from([0, 1, 2, 4, 6]))
    cols = draw(st.sampled_from([8, 16]))
    rank3 = draw(st.booleans())
    shape = (rows, 2, cols // 2) if rank3 else (rows, cols)
    x = sparse_input(np.random.default_rng(draw(st.integers(0, 2**16))), shape, fmt, dtype)
    return asp.compress(on(kind, x), fmt, **format_params(fmt, draw, rows)), kind


@settings(deadline=None, max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=results(), suffix=st.sampled_from(SUFFIXES))
def test_save_load_round_trips_every_format_input_and_dtype(tmp_path, case, suffix):
    r, kind = case
    path = fresh(tmp_path) / f"r{suffix}"
    asp.save(path, r, metadata={"note": "x"})
    assert_same_result(asp.load(path), r, "numpy")
    if kind == "torch":
        assert_same_result(asp.load(path, like="torch"), r, "torch")
    with open_checkpoint(path) as ckpt:
        assert list(ckpt) == list(r.arrays)  # a lone result's tensors are its array names
        assert ckpt.metadata["note"] == "x"
        assert ckpt.metadata["arraysparse.content"] == "result"


@settings(deadline=None, max_examples=40)
@given(case=results())
def test_results_pickle_and_deepcopy(case):
    r, kind = case
    for back in (pickle.loads(pickle.dumps(r)), copy.deepcopy(r)):
        assert_same_result(back, r, "torch" if kind == "torch" else "numpy")
        assert back.dtype == r.dtype
        with pytest.raises(TypeError):
            back.arrays["data"] = None  # still read-only
        with pytest.raises(TypeError):
            back.params["n"] = 3
    deep = copy.deepcopy(r)
    first = next(iter(r.arrays))
    assert not np.shares_memory(bits(deep.arrays[first]), bits(r.arrays[first])) or r.arrays[first].size == 0 or (
        isinstance(r.arrays[first], torch.Tensor))


def test_saving_keeps_bfloat16_from_every_library(tmp_path):
    x = sparse_input(np.random.default_rng(1), (4, 8), "2:4", "float32")
    for source in (torch.from_numpy(x).bfloat16(), x.astype(ml_dtypes.bfloat16)):
        r = asp.compress(source, "2:4")
        asp.save(tmp_path / "b.safetensors", r)
        back = asp.load(tmp_path / "b.safetensors")
        assert back.dtype == np.dtype(ml_dtypes.bfloat16)
        assert back.values.dtype == ml_dtypes.bfloat16
        t = asp.load(tmp_path / "b.safetensors", like="torch")
        assert t.dtype == torch.bfloat16 and t.values.dtype == torch.bfloat16
        assert torch.equal(t.to_dense(), torch.from_numpy(x).bfloat16())
        assert safetensors.torch.load_file(tmp_path / "b.safetensors")["values"].dtype == torch.bfloat16


def nested_model(rng):
    w = sparse_input(rng, (4, 8), "2:4", "float32")
    return {
        "encoder": {
            "layer.0": {"weight": asp.compress(torch.from_numpy(w).bfloat16(), "2:4"), "bias": torch.zeros(4)},
            "layer.1": {"weight": asp.compress(w, "csr"), "bias": np.ones(4, np.float16),
                        "mask": asp.nm_mask(np.abs(w), 2, 4)},
        },
        "head.weight": asp.compress(w.astype(ml_dtypes.bfloat16), "bsr", block=(2, 4)),
        "empty": {},
        "scale": np.float64(0.5),
    }


def assert_same_tree(got, want, like):
    assert isinstance(got, dict) and list(got) == list(want)
    for k, v in want.items():
        if isinstance(v, asp.SparseCompressionResult):
            assert_same_result(got[k], v, like)
        elif isinstance(v, asp.PruningMask):
            assert got[k].pattern == v.pattern
            assert np.array_equal(np.asarray(got[k].mask), np.asarray(v.mask))
        elif isinstance(v, dict):
            assert_same_tree(got[k], v, like)
        else:
            assert_identical(got[k], expected(v, like))


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_save_load_nested_models(tmp_path, suffix):
    model = nested_model(np.random.default_rng(0))
    path = asp.save(tmp_path / f"m{suffix}", model)
    for like in ("numpy", "torch"):
        assert_same_tree(asp.load(path, like=like), model, like)
    with open_checkpoint(path) as ckpt:
        assert "encoder.layer.0.bias" in ckpt and "encoder.layer.0.weight.values" in ckpt
        assert "head.weight.indptr" in ckpt
        entries = json.loads(ckpt.metadata["arraysparse.entries"])
        assert entries[0]["path"] == ["encoder", "layer.0", "weight"]
        assert entries[0]["dtype"] == "bfloat16" and entries[0]["format"] == "2:4"
        assert ckpt.metadata["arraysparse.layout"] == "1"
        assert ckpt.metadata["arraysparse.version"] == asp.__version__
    if suffix == ".safetensors":  # the dense tensors keep their state_dict names for any reader
        plain = safetensors.torch.load_file(path)
        assert torch.equal(plain["encoder.layer.0.bias"], torch.zeros(4))


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_save_load_model_masks(tmp_path, suffix):
    model = {"fc": {"w": torch.arange(1.0, 25.0).reshape(4, 6)}, "conv": torch.arange(1.0, 17.0).reshape(2, 8)}
    _, mm = asp.prune_model(model, 0.5)
    layer = asp.layer_masks({"a": np.arange(1.0, 17.0).reshape(2, 8)}, 0.5,
                            pattern=asp.SparsityPattern.n_m(2, 4))
    for masks in (mm, layer):
        path = asp.save(tmp_path / f"mm{suffix}", masks)
        back = asp.load(path)
        assert isinstance(back, ModelMask)
        assert list(back) == list(masks)
        assert [tuple(r.__dict__.values()) for r in back.report] == [tuple(r.__dict__.values()) for r in masks.report]
        for name in masks:
            assert back[name].pattern == masks[name].pattern
            assert np.array_equal(np.asarray(back[name].mask), np.asarray(masks[name].mask))
        assert isinstance(asp.load(path, like="torch")[next(iter(masks))].mask, torch.Tensor)
        again = pickle.loads(pickle.dumps(masks))
        assert str(again.report) == str(masks.report)


def test_load_refuses_foreign_newer_and_inconsistent_files(tmp_path):
    plain = tmp_path / "plain.safetensors"
    safetensors.torch.save_file({"w": torch.ones(2)}, plain)
    with pytest.raises(ValueError, match="plain.safetensors.*not an arraysparse file.*open_checkpoint"):
        asp.load(plain)
    r = asp.compress(np.eye(3), "csr")
    path = asp.save(tmp_path / "r.safetensors", r)
    with open_checkpoint(path) as ckpt:
        meta = dict(ckpt.metadata)
        arrays = {n: ckpt[n].copy() for n in ckpt}
    newer = tmp_path / "newer.safetensors"
    write_checkpoint(newer, arrays, metadata={**meta, "arraysparse.layout": "7", "arraysparse.version": "9.0"})
    with pytest.raises(ValueError, match="layout 7 by arraysparse 9.0.*reads layouts up to 1: upgrade"):
        asp.load(newer)
    broken = tmp_path / "broken.safetensors"
    entries = json.loads(meta["arraysparse.entries"])
    cases = [
        ({**meta, "arraysparse.entries": "[{"}, arrays, "not a JSON list"),
        ({**meta, "arraysparse.content": "soup"}, arrays, "content"),
        ({**meta, "arraysparse.entries": json.dumps([{**entries[0], "format": "ell"}])}, arrays, "has arrays"),
        ({**meta, "arraysparse.entries": json.dumps([{**entries[0], "dtype": "int8"}])}, arrays, "dtype int8"),
        (meta, {**arrays, "stray": np.ones(1)}, "belong to no entry"),
        (meta, {k: v for k, v in arrays.items() if k != "data"}, "does not hold"),
    ]
    for metadata, tensors, match in cases:
        write_checkpoint(broken, tensors, metadata=metadata)
        with pytest.raises(ValueError, match=match):
            asp.load(broken)


def test_save_errors_name_the_entry_and_write_nothing(tmp_path):
    path = tmp_path / "m.safetensors"
    with pytest.raises(TypeError, match=r"model\['a'\]\['n'\] is a int"):
        asp.save(path, {"a": {"w": np.ones(2), "n": 3}})
    with pytest.raises(ValueError, match=r"model\['a.b'\] and model\['a'\]\['b'\] would both be stored as the tensor 'a.b'|"
                                         r"model\['a'\]\['b'\] and model\['a.b'\]"):
        asp.save(path, {"a.b": np.ones(1), "a": {"b": np.ones(1)}})
    with pytest.raises(ValueError, match="reserved"):
        asp.save(path, {"w": np.ones(1)}, metadata={"arraysparse.layout": "2"})
    with pytest.raises(TypeError, match="obj must be a SparseCompressionResult"):
        asp.save(path, [np.ones(1)])
    with pytest.raises(ValueError, match="like='cuda' must be one of"):
        asp.load(path, like="cuda")
    assert listing(tmp_path) == []


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_model_writer_streams_what_save_writes(tmp_path, suffix):
    model = nested_model(np.random.default_rng(2))
    with ModelWriter(tmp_path / f"w{suffix}", metadata={"k": "v"}) as w:
        for key, value in model.items():
            w.add(key, value)
    asp.save(tmp_path / f"s{suffix}", model, metadata={"k": "v"})
    for like in ("numpy", "torch"):
        assert_same_tree(asp.load(tmp_path / f"w{suffix}", like=like), model, like)
    with open_checkpoint(tmp_path / f"w{suffix}") as a, open_checkpoint(tmp_path / f"s{suffix}") as b:
        assert dict(a.metadata) == dict(b.metadata) and list(a) == list(b)
    files = listing(tmp_path)
    with pytest.raises(ValueError, match="already written"), ModelWriter(tmp_path / f"x{suffix}") as w:
        w.add(("a", "b"), np.ones(2))
        w.add("a", np.ones(2))
    with pytest.raises(ValueError, match="already written"), ModelWriter(tmp_path / f"x{suffix}") as w:
        w.add("a", {"b": np.ones(2)})
        w.add(("a", "c"), np.ones(2))
    with pytest.raises(TypeError, match="key must be"), ModelWriter(tmp_path / f"x{suffix}") as w:
        w.add(("a", 3), np.ones(2))
    with pytest.raises(TypeError, match=r"model\['n'\] is a int"), ModelWriter(tmp_path / f"x{suffix}") as w:
        w.add("w", np.ones(2))
        w.add("n", 3)
    assert listing(tmp_path) == files


def test_model_writer_compresses_a_checkpoint_tensor_by_tensor(tmp_path):
    """The CLI's path: open a checkpoint lazily, compress each 2-D tensor, write as it goes."""
    rng = np.random.default_rng(3)
    src = {f"layer{i}.weight": sparse_input(rng, (64, 64), "2:4", "float32") for i in range(6)}
    src["norm.weight"] = np.ones(64, np.float32)
    write_checkpoint(tmp_path / "src.safetensors", src)
    tracemalloc.start()
    with open_checkpoint(tmp_path / "src.safetensors") as ckpt, ModelWriter(tmp_path / "out.safetensors") as w:
        for name in ckpt:
            a = ckpt[name]
            w.add(name, asp.compress(a, "2:4") if a.ndim == 2 else a)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 2 * 64 * 64 * 4 + (1 << 20)
    back = asp.decompress_model(asp.load(tmp_path / "out.safetensors"))
    assert list(back) == list(src)
    for name, a in src.items():
        assert_identical(back[name], a)


def test_save_and_model_writer_write_shards_that_load_reads(tmp_path):
    """save(..., max_shard_size=...) and ModelWriter(..., max_shard_size=...): a shard directory whose index
    holds the layout's metadata (the shards' headers only {"format": "pt"}), loaded back equal; a
    ModelMask too; overwrite replaces a saved directory."""
    rng = np.random.default_rng(4)
    model = {f"fc{i}": {"weight": asp.compress(sparse_input(rng, (16, 32), "csr", "float32"), "csr"),
                        "bias": np.zeros(16, np.float32), "mask": asp.PruningMask(rng.random((4, 8)) < 0.5)}
             for i in range(3)}
    d = asp.save(tmp_path / "saved", model, max_shard_size="1KB", metadata={"run": "7"})
    doc = shard_state(d)
    assert len(set(doc["weight_map"].values())) > 2
    meta = doc["metadata"]
    assert meta["run"] == "7" and meta["arraysparse.content"] == "model" and "arraysparse.entries" in meta
    with safetensors.safe_open(d / "model-00001-of-" f"{len(set(doc['weight_map'].values())):05d}.safetensors",
                               framework="np") as f:
        assert f.metadata() == {"format": "pt"}
    with ModelWriter(tmp_path / "streamed", max_shard_size="1KB", metadata={"run": "7"}) as w:
        for name, layer in model.items():
            w.add(name, layer)
    assert w.path == tmp_path / "streamed"
    for path in (d, tmp_path / "streamed"):
        back = asp.load(path)
        assert list(back) == list(model)
        for name, layer in model.items():
            assert_same_result(back[name]["weight"], layer["weight"], "numpy")
            assert_identical(back[name]["bias"], layer["bias"])
            assert np.array_equal(back[name]["mask"].mask, layer["mask"].mask)
    mm = asp.global_mask({"a": rng.random((8, 8)), "b": rng.random((4, 4))}, 0.5)
    with pytest.raises(ValueError, match="already holds a checkpoint"):
        asp.save(d, mm, max_shard_size="1KB")
    asp.save(d, mm, max_shard_size="1KB", overwrite=True)
    assert [r.pruned for r in asp.load(d).report] == [r.pruned for r in mm.report]
    assert listing(tmp_path) == ["saved", "streamed"]


# -- (B2) every backend: array-api-strict, JAX, CuPy / CUDA torch, Dask -----------------------------------
jnp = pytest.importorskip("jax.numpy")
xps = pytest.importorskip("array_api_strict")


def to_lib(lib: str, x: np.ndarray, device=None):
    if lib == "jax":
        return jnp.asarray(x)
    return xps.asarray(x, device=device)


def host(a) -> np.ndarray:
    """Any array's values as NumPy, through DLPack where it can (for bit comparisons)."""
    if isinstance(a, torch.Tensor):
        return a
    if type(a).__module__.startswith("array_api_strict"):
        return np.from_dlpack(a.to_device(xps.Device("CPU_DEVICE")))
    return np.asarray(a)


def assert_result_in(got, want, lib: str, *, dense: bool = True) -> None:
    """``got`` is ``want`` with its arrays in ``lib``: same format, parameters and bits."""
    assert isinstance(got, asp.SparseCompressionResult)
    assert got.backend == lib
    assert (got.format, got.shape, dict(got.params), got.nnz) == (want.format, want.shape, dict(want.params), want.nnz)
    assert str(got.dtype).rsplit(".", 1)[-1] == str(want.dtype).rsplit(".", 1)[-1]
    assert list(got.arrays) == list(want.arrays)
    for name, a in want.arrays.items():
        g, w = host(got.arrays[name]), host(a)
        assert dtype_name(g) == dtype_name(w) and tuple(g.shape) == tuple(w.shape)
        assert np.array_equal(bits(g), bits(w)), name
    if dense:
        assert np.array_equal(bits(host(got.to_dense())), bits(host(want.to_dense())))


@st.composite
def other_results(draw):
    lib = draw(st.sampled_from(["array_api_strict", "jax"]))
    fmt = draw(st.sampled_from(FORMATS))
    dtypes = [d for d in RESULT_DTYPES if lib == "jax" or d not in ("bfloat16", "float16")]  # not in the standard
    dtype = draw(st.sampled_from(dtypes))
    rows = draw(st.sampled_from([0, 1, 2, 4]))
    x = sparse_input(np.random.default_rng(draw(st.integers(0, 2**16))), (rows, 8), fmt, dtype)
    return asp.compress(to_lib(lib, x), fmt, **format_params(fmt, draw, rows)), lib


@settings(deadline=None, max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=other_results(), suffix=st.sampled_from(SUFFIXES))
def test_save_load_round_trips_strict_and_jax_results(tmp_path, case, suffix):
    r, lib = case
    path = asp.save(fresh(tmp_path) / f"r{suffix}", r)
    assert_result_in(asp.load(path), r, "numpy")
    assert_result_in(asp.load(path, like=lib), r, lib)
    assert_result_in(asp.load(path, like=next(iter(r.arrays.values()))), r, lib)
    assert_result_in(asp.load(path, like="torch"), r, "torch")
    if lib == "jax":  # and the other way: a NumPy-saved result comes back as JAX / strict arrays
        assert_result_in(asp.load(path, like="jax"), asp.load(path), "jax")


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_strict_models_masks_and_devices(tmp_path, suffix):
    """A model of array-api-strict arrays (dense, compressed, a mask) on a non-default device saves without
    being refused, and like=<array> puts it back on that array's device."""
    dev = xps.Device("device1")
    w = sparse_input(np.random.default_rng(4), (4, 8), "2:4", "float32")
    model = {"fc": {"weight": asp.compress(to_lib("array_api_strict", w, dev), "2:4"),
                    "bias": to_lib("array_api_strict", np.ones(4, np.float32), dev),
                    "mask": asp.nm_mask(to_lib("array_api_strict", np.abs(w), dev), 2, 4)},
           "head": jnp.asarray(w, dtype=jnp.bfloat16)}
    path = asp.save(tmp_path / f"m{suffix}", model)
    back = asp.load(asp.save(tmp_path / f"fc{suffix}", {"fc": model["fc"]}),
                    like=to_lib("array_api_strict", np.zeros(1), dev))
    assert back["fc"]["weight"].backend == "array_api_strict"
    assert all(a.device == dev for a in back["fc"]["weight"].arrays.values())
    # dense=False: decoding 2:4 on strict's device1 mixes devices in _backends.reference_formats (not io's)
    assert_result_in(back["fc"]["weight"], model["fc"]["weight"], "array_api_strict", dense=False)
    assert back["fc"]["bias"].device == dev and np.array_equal(host(back["fc"]["bias"]), np.ones(4))
    assert back["fc"]["mask"].mask.device == dev
    assert np.array_equal(host(back["fc"]["mask"].mask), host(model["fc"]["mask"].mask))
    with pytest.raises(TypeError, match="'head' .*bfloat16, which array_api_strict has no dtype for"):
        asp.load(path, like="array_api_strict")
    j = asp.load(path, like="jax")
    assert j["head"].dtype == jnp.bfloat16 and np.array_equal(bits(np.asarray(j["head"])), bits(np.asarray(model["head"])))
    assert type(j["fc"]["bias"]).__module__.startswith("jax")
    # the writers take them too, and a JAX model compressed by compress_model saves as it is
    write_checkpoint(tmp_path / f"c{suffix}", {"b": model["fc"]["bias"], "h": model["head"]})
    with open_checkpoint(tmp_path / f"c{suffix}", like="jax") as ckpt:
        assert ckpt.like == "jax" and ckpt["h"].dtype == jnp.bfloat16
    packed = asp.compress_model({"w": jnp.asarray(w)}, "csr")
    with ModelWriter(tmp_path / f"w{suffix}") as mw:
        mw.add("w", packed["w"])
    assert_result_in(asp.load(tmp_path / f"w{suffix}", like="jax")["w"], packed["w"], "jax")


def test_every_backend_refusals(tmp_path):
    path = asp.save(tmp_path / "r.npz", asp.compress(np.eye(4, dtype=np.float32), "csr"))
    for bad in ("pandas", "cuda", 3, [1.0], object()):
        with pytest.raises(ValueError, match=r"like=.* must be one of 'numpy', 'torch', 'jax', 'cupy', 'array_api_strict'"):
            asp.load(path, like=bad)
    try:
        import cupy  # noqa: F401
    except ImportError:
        with pytest.raises(ModuleNotFoundError, match=r"like='cupy' needs CuPy: pip install 'arraysparse\[cupy"):
            asp.load(path, like="cupy")
    da = pytest.importorskip("dask.array")
    for save in (lambda p: asp.save(p, {"w": da.ones(4)}), lambda p: write_checkpoint(p, {"w": da.ones(4)})):
        with pytest.raises(TypeError, match=r"'w'.* is a Dask array.*arraysparse.to_zarr"):
            save(tmp_path / "d.safetensors")
    with pytest.raises(TypeError, match="meta with layout"):
        write_checkpoint(tmp_path / "d.npz", {"w": torch.ones(2, device="meta")})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.npz"]


@pytest.mark.cuda
@pytest.mark.parametrize("suffix", SUFFIXES)
def test_device_arrays_are_saved_through_the_host_and_loaded_onto_a_device(tmp_path, suffix):
    cupy = pytest.importorskip("cupy")
    if cupy.cuda.runtime.getDeviceCount() == 0 or not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    w = sparse_input(np.random.default_rng(5), (4, 8), "2:4", "float32")
    for source, lib in ((cupy.asarray(w), "cupy"), (torch.from_numpy(w).cuda(), "torch")):
        r = asp.compress(source, "2:4")
        path = asp.save(tmp_path / f"g{suffix}", {"w": r, "b": source[0]})
        back = asp.load(path, like=source)
        assert back["w"].backend == lib and back["b"].device == source.device
        assert all(a.device == source.device for a in back["w"].arrays.values())
        for name, a in r.arrays.items():
            want = a.get() if lib == "cupy" else a.cpu()
            assert np.array_equal(bits(host(asp.load(path)["w"].arrays[name])), bits(want))
        assert asp.load(path, like="cupy")["w"].backend == "cupy"


# -- (C) compress_model / decompress_model -------------------------------------------------------------


def model_of(kind: str, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    two_four = sparse_input(rng, (4, 8), "2:4", "float32")
    odd = sparse_input(rng, (3, 6), "csr", "float32")  # 6 columns: 2:4 cannot take it
    model = {"block": {"attn": {"weight": two_four, "bias": np.ones(4, np.float32)},
                       "mlp": {"weight": odd}}, "step": 7, "norm.weight": np.ones(8, np.float32)}
    if kind == "torch":
        model = {"block": {k: {n: torch.from_numpy(a).bfloat16() for n, a in v.items()}
                           for k, v in model["block"].items()},
                 "step": 7, "norm.weight": torch.ones(8)}
    return model


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_compress_model_selects_compresses_and_comes_back(kind):
    model = model_of(kind)
    out = asp.compress_model(model, "csr", exclude="*.bias", where=lambda n, a: a.ndim >= 2)
    assert out["block"]["attn"]["weight"].format is asp.SparseFormat.CSR
    assert out["block"]["mlp"]["weight"].format is asp.SparseFormat.CSR
    assert out["block"]["attn"]["bias"] is model["block"]["attn"]["bias"]
    assert out["norm.weight"] is model["norm.weight"] and out["step"] == 7
    back = asp.decompress_model(out)
    assert list(back) == list(model) and list(back["block"]) == ["attn", "mlp"]
    for name in ("attn", "mlp"):
        assert_identical(back["block"][name]["weight"], model["block"][name]["weight"])
    only = asp.compress_model(model, "bitmask", include=["block.*.weight"])
    assert isinstance(only["block"]["mlp"]["weight"], asp.SparseCompressionResult)
    assert not isinstance(only["norm.weight"], asp.SparseCompressionResult)
    again = asp.compress_model(only, "coo", include=re.compile(r"norm"))  # results already compressed pass through
    assert again["block"]["mlp"]["weight"] is only["block"]["mlp"]["weight"]
    assert again["norm.weight"].format is asp.SparseFormat.COO


def test_compress_model_errors_name_the_tensor_or_leave_it_dense():
    model = model_of("numpy")
    with pytest.raises(ValueError, match=r"tensor 'block.mlp.weight': m=4 must divide the length 6"):
        asp.compress_model(model, "2:4", where=lambda n, a: a.ndim >= 2)
    out = asp.compress_model(model, "2:4", where=lambda n, a: a.ndim >= 2, on_error="dense")
    assert out["block"]["attn"]["weight"].format is asp.SparseFormat.STRUCTURED_2_TO_4
    assert out["block"]["mlp"]["weight"] is model["block"]["mlp"]["weight"]
    with pytest.warns(UserWarning, match=r"tensor 'block.mlp.weight' left dense: m=4 must divide"):
        asp.compress_model(model, "2:4", include="block.*.weight", on_error="warn")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        asp.compress_model(model, "csr", on_error="warn")
    for kwargs, error, match in [
        ({"on_error": "skip"}, ValueError, "on_error='skip' must be one of"),
        ({"block": (2, 2)}, ValueError, "block=\\(2, 2\\) does not apply to format csr"),
        ({"blocks": 2}, TypeError, "blocks=2 is not a format parameter"),
        ({"include": "*.wieght"}, ValueError, "include pattern '\\*.wieght' matches no array"),
        ({"exclude": [3]}, TypeError, "exclude entries must be glob strings"),
        ({"where": "a.ndim > 1"}, TypeError, "where must be a callable"),
    ]:
        with pytest.raises(error, match=match):
            asp.compress_model(model, "csr", **{"on_error": "dense", **kwargs})
    for fmt, match in [("bsr", "needs block"), ("n:m", "needs n and m")]:
        with pytest.raises(ValueError, match=match):
            asp.compress_model(model, fmt, on_error="dense")
    with pytest.raises(TypeError, match="model must be a mapping"):
        asp.compress_model([np.ones(2)], "csr")


@settings(deadline=None, max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cols=st.lists(st.sampled_from([1, 4, 6, 8, 12]), min_size=1, max_size=5), kind=st.sampled_from(INPUTS),
       fmt=st.sampled_from(["2:4", "bsr", "ell"]), suffix=st.sampled_from(SUFFIXES), seed=st.integers(0, 99))
def test_compress_save_load_decompress_law(tmp_path, cols, kind, fmt, suffix, seed):
    """compress_model -> save -> load -> decompress_model gives the model back, bit for bit."""
    rng = np.random.default_rng(seed)
    model = {f"layer{i}": {"weight": on(kind, sparse_input(rng, (2, c), "2:4" if c % 4 == 0 else "csr", "float32")),
                           "bias": on(kind, np.ones(2, np.float32))} for i, c in enumerate(cols)}
    params = {"block": (2, 4)} if fmt == "bsr" else {}
    packed = asp.compress_model(model, fmt, exclude="*.bias", on_error="dense", **params)
    for i, c in enumerate(cols):
        takes = fmt == "ell" or c % 4 == 0
        assert isinstance(packed[f"layer{i}"]["weight"], asp.SparseCompressionResult) == takes
    path = asp.save(fresh(tmp_path) / f"m{suffix}", packed)
    like = "torch" if kind == "torch" else "numpy"
    back = asp.decompress_model(asp.load(path, like=like))
    assert list(back) == list(model)
    for name, layer in model.items():
        for key, a in layer.items():
            assert_identical(back[name][key], expected(a, like))


# -- docs ---------------------------------------------------------------------------------------------
def test_persistence_docs_run_as_written(monkeypatch, tmp_path):
    """Every python block of docs/persistence.md runs, in order, in one namespace."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "persistence.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 8
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for i, block in enumerate(blocks):
        try:
            exec(compile(block, f"docs/persistence.md block {i + 1}", "exec"), namespace)
        except Exception as e:  # noqa: BLE001 - name the block
            raise AssertionError(f"block {i + 1} of docs/persistence.md failed: {e!r}\n{block}") from e
