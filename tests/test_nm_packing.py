"""The packed positions of the N:M formats: the documented layout, exact sizes, round trips
on every backend and dtype, and corrupt streams refused alike everywhere."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import arraysparse as asp
from arraysparse.formats.base import SparseCompressionResult
from arraysparse.formats.nm import packed_layout
from tests.backends import Backend, to_numpy

torch = pytest.importorskip("torch")

# one of each decoder: m <= 8 with fields tiling a byte (2:4, 1:2, 3:4 positions; 4:8, 1:4
# masks), m <= 8 with fields that do not (6:8 and 4:6 positions of 6 bits, 2:6 a 6-bit mask,
# 0:3), m > 8 positions of 4 to 8 bits and masks, keep = 0, m = 1
PAIRS = [(2, 4), (1, 2), (3, 4), (4, 8), (1, 4), (6, 8), (4, 6), (2, 6), (0, 3), (12, 16), (8, 16),
         (28, 32), (16, 32), (60, 64), (120, 128), (250, 256), (200, 256), (5, 17), (4, 4), (0, 1)]
BACKENDS = [Backend.NUMPY, Backend.NUMPY_READONLY, Backend.TORCH, Backend.ARRAY_API_STRICT, Backend.JAX]


def random_nm(rng, rows, groups, n, m, dtype="float32"):
    """Every group holds between 0 and m - n non-zeros at random positions."""
    keep = m - n
    x = np.zeros((rows, groups * m), dtype)
    for r in range(rows):
        for g in range(groups):
            k = int(rng.integers(0, keep + 1))
            where = g * m + rng.choice(m, k, replace=False)
            x[r, where] = rng.integers(1, 100, size=k) * rng.choice([-1, 1], size=k)
    return x


def expected_positions(x, n, m):
    """The documented choice: the non-zeros, then zeros in the order n, ..., m-1, 0, ..., n-1."""
    rows, cols = x.shape
    keep = m - n
    out = np.zeros((rows, cols // m * keep), np.uint8)
    for r in range(rows):
        for g in range(cols // m):
            nz = [i for i in range(m) if x[r, g * m + i] != 0]
            pad = [i for i in [*range(n, m), *range(n)] if i not in nz][: keep - len(nz)]
            out[r, g * keep : (g + 1) * keep] = sorted(nz + pad)
    return out


def expected_packed(positions, n, m, cols):
    """The documented stream, written from the positions with NumPy's own bit packing."""
    lay = packed_layout(n, m)
    rows, keep, b = positions.shape[0], m - n, lay.position_bits
    out = np.zeros((rows, lay.row_bytes(cols)), np.uint8)
    for r in range(rows):
        bits = []
        for g in range(cols // m):
            kept = positions[r, g * keep : (g + 1) * keep].tolist()
            if lay.bitmask:
                bits += [int(i in kept) for i in range(m)]
            else:
                bits += [p >> t & 1 for p in kept for t in range(b)]
        if bits:
            out[r] = np.packbits(np.array(bits, np.uint8), bitorder="little")
    return out


def decode_by_hand(packed, n, m, cols):
    """The positions read back from the documented layout (no arraysparse code)."""
    lay = packed_layout(n, m)
    rows, groups, keep, b = packed.shape[0], cols // m, m - n, lay.position_bits
    bits = np.unpackbits(packed, axis=1, bitorder="little").astype(np.int64)
    if lay.bitmask:
        mask = bits[:, : groups * m].reshape(rows, groups, m).astype(bool)
        return np.nonzero(mask)[2].reshape(rows, groups * keep).astype(np.uint8)
    fields = bits[:, : groups * keep * b].reshape(rows, groups * keep, b)
    return (fields << np.arange(b)).sum(axis=2).astype(np.uint8)


# -- the layout ---------------------------------------------------------------------------
def test_layout_rule_for_every_n_and_m():
    for m in range(1, 257):
        b = math.ceil(math.log2(m)) if m > 1 else 0
        for n in range(m + 1):
            lay = packed_layout(n, m)
            keep = m - n
            assert lay.position_bits == b
            assert lay.bitmask == (m < keep * b)  # the mask only where strictly smaller
            assert lay.group_bits == min(keep * b, m) <= m
            assert lay.row_bytes(3 * m) == math.ceil(3 * lay.group_bits / 8)


@pytest.mark.parametrize(("n", "m", "bitmask", "group_bits"), [
    (2, 4, False, 4), (1, 2, False, 1), (4, 8, True, 8), (1, 4, True, 4), (12, 16, False, 16),
    (8, 16, True, 16), (6, 8, False, 6), (250, 256, False, 48), (4, 4, False, 0),
])
def test_layout_of_common_patterns(n, m, bitmask, group_bits):
    lay = packed_layout(n, m)
    assert (lay.bitmask, lay.group_bits) == (bitmask, group_bits)


def test_two_four_nibbles_are_cutlass_codes():
    """2:4 stores a group per nibble as idx0 | idx1 << 2, CUTLASS's 4-bit code."""
    x = np.zeros((1, 16), np.float32)
    pairs = [(0, 1), (0, 3), (1, 2), (2, 3)]
    for g, (a, b) in enumerate(pairs):
        x[0, 4 * g + a], x[0, 4 * g + b] = 1, 2
    r = asp.compress(x, "2:4")
    codes = [a | b << 2 for a, b in pairs]
    assert r.packed_positions.tolist() == [[codes[0] | codes[1] << 4, codes[2] | codes[3] << 4]]


# -- sizes --------------------------------------------------------------------------------
@pytest.mark.parametrize(("dtype", "ratio"), [("float16", 1.78), ("float32", 1.88), ("bfloat16", 1.78)])
def test_two_four_compression_ratio(dtype, ratio):
    """2 bits a position: 2:4 is 1.78x smaller than dense in 16 bits, 1.88x in 32 bits."""
    x = random_nm(np.random.default_rng(0), 64, 16, 2, 4)
    t = torch.from_numpy(x).to(getattr(torch, dtype))
    r = asp.compress(t, "2:4")
    itemsize = t.element_size()
    assert r.nbytes == 64 * 32 * itemsize + 64 * 64 // 8
    assert r.dense_nbytes == 64 * 64 * itemsize
    assert round(r.compression_ratio, 2) == ratio
    assert "packed_positions: uint8(64, 8)" in repr(r)


@pytest.mark.parametrize(("n", "m", "row_bytes"), [(4, 8, 64), (12, 16, 64), (8, 16, 64), (6, 8, 48), (250, 256, 12)])
def test_exact_byte_counts(n, m, row_bytes):
    """A row of 512 columns: 4:8 and 8:16 masks and 12:16 positions take a bit a column,
    6:8 two positions of 3 bits a group, 250:256 six positions of 8 bits a group."""
    x = random_nm(np.random.default_rng(1), 3, 512 // m, n, m)
    r = asp.compress(x, "n:m", n=n, m=m)
    assert r.packed_positions.shape == (3, row_bytes)
    assert r.nbytes == x.nbytes * (m - n) // m + 3 * row_bytes


# -- round trips --------------------------------------------------------------------------
@given(
    pair=st.sampled_from(PAIRS),
    rows=st.integers(0, 3),
    groups=st.integers(0, 3),
    seed=st.integers(0, 2**16),
    backend=st.sampled_from(BACKENDS),
)
def test_law_round_trip_and_documented_layout(pair, rows, groups, seed, backend):
    """Every backend writes the documented stream (padding bits zero) and reads it back."""
    if backend.available():
        return
    n, m = pair
    x = random_nm(np.random.default_rng(seed), rows, groups, n, m)
    r = asp.compress(backend.asarray(x), "n:m", n=n, m=m)
    want = expected_positions(x, n, m)
    packed = to_numpy(r.packed_positions)
    assert packed.dtype == np.uint8
    np.testing.assert_array_equal(packed, expected_packed(want, n, m, x.shape[1]))
    np.testing.assert_array_equal(decode_by_hand(packed, n, m, x.shape[1]), want)
    positions = r.positions()
    assert type(positions) is type(r.values)
    np.testing.assert_array_equal(to_numpy(positions), want)
    np.testing.assert_array_equal(to_numpy(r.to_dense()), x)


@given(n=st.integers(0, 255), m=st.integers(1, 256), seed=st.integers(0, 2**16))
def test_law_any_n_and_m_host_equals_standard_only(n, m, seed):
    """Any n:m (m up to 256): the kernels and the standard-only codec write the same bytes."""
    n = n % (m + 1)
    x = random_nm(np.random.default_rng(seed), 2, 2, n, m)
    host = asp.compress(x, "n:m", n=n, m=m)
    ref = asp.compress(Backend.ARRAY_API_STRICT.asarray(x), "n:m", n=n, m=m)
    np.testing.assert_array_equal(host.packed_positions, to_numpy(ref.packed_positions))
    np.testing.assert_array_equal(host.to_dense(), x)
    np.testing.assert_array_equal(to_numpy(ref.to_dense()), x)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "int8", "complex64", "complex128", "bool", "float64"])
@pytest.mark.parametrize("pair", [(2, 4), (4, 8), (6, 8), (12, 16), (8, 16)], ids=str)
def test_round_trip_every_dtype(dtype, pair):
    """Values move bit for bit whatever the packing (complex128 runs the standard-only codec)."""
    n, m = pair
    x = random_nm(np.random.default_rng(3), 4, 4, n, m)
    if dtype == "bfloat16":
        t = torch.from_numpy(x).to(torch.bfloat16)
        r = asp.compress(t, "n:m", n=n, m=m)
        assert torch.equal(r.to_dense(), t)
        np.testing.assert_array_equal(r.positions().numpy(), expected_positions(x, n, m))
        return
    y = x.astype(dtype) if dtype != "complex64" else (x + 1j * np.roll(x, 1, axis=0) * (x != 0)).astype(dtype)
    for b in (Backend.NUMPY, Backend.TORCH):
        r = asp.compress(b.asarray(y), "n:m", n=n, m=m)
        back = to_numpy(r.to_dense())
        assert back.dtype == y.dtype
        np.testing.assert_array_equal(back, y)
        np.testing.assert_array_equal(to_numpy(r.positions()), expected_positions(y, n, m))


@pytest.mark.parametrize("shape", [(0, 16), (4, 0), (0, 0), (0,), (0, 4, 16), (4, 0, 16), (4, 16, 0), (2, 3, 16)], ids=str)
@pytest.mark.parametrize("pair", [(2, 4), (4, 8), (6, 8), (8, 16), (12, 16)], ids=str)
def test_empty_and_rank_3(shape, pair, backend):
    n, m = pair
    x = np.zeros(shape, np.float32)
    if x.size:
        x = random_nm(np.random.default_rng(0), shape[0], math.prod(shape[1:]) // m, n, m).reshape(shape)
    ref = asp.compress(x, "n:m", n=n, m=m)
    r = asp.compress(backend.asarray(x), "n:m", n=n, m=m)
    np.testing.assert_array_equal(to_numpy(r.packed_positions), ref.packed_positions)
    assert to_numpy(r.packed_positions).dtype == np.uint8
    back = to_numpy(r.to_dense())
    assert back.shape == shape
    np.testing.assert_array_equal(back, x)
    assert to_numpy(r.positions()).shape == tuple(ref.values.shape)


def test_decode_into_a_buffer():
    for n, m in [(2, 4), (6, 8), (8, 16), (12, 16)]:
        x = random_nm(np.random.default_rng(5), 8, 4, n, m)
        buf = np.full_like(x, np.nan)
        asp.compress(x, "n:m", n=n, m=m).to_dense(out=buf)
        np.testing.assert_array_equal(buf, x)


# -- corrupt streams ----------------------------------------------------------------------
def corrupt(n, m, row, group, field_bits):
    """A result of a 3 x (4 m) matrix whose group (row, group) holds ``field_bits``."""
    x = random_nm(np.random.default_rng(2), 3, 4, n, m)
    r = asp.compress(x, "n:m", n=n, m=m)
    lay = packed_layout(n, m)
    packed = r.packed_positions.copy()
    bits = np.unpackbits(packed, axis=1, bitorder="little")
    start = group * lay.group_bits
    bits[row, start : start + lay.group_bits] = field_bits
    packed = np.packbits(bits, axis=1, bitorder="little")
    return x, {"values": r.values, "packed_positions": packed}, {"n": n, "m": m}


def field(values, width):
    return [v >> t & 1 for v in values for t in range(width)]


CORRUPT = [
    (2, 4, field([2, 1], 2), "the positions [2, 1]", "2 ascending positions below 4"),  # out of order
    (2, 4, field([1, 1], 2), "the positions [1, 1]", "2 ascending positions below 4"),  # repeated
    (4, 6, field([0, 7], 3), "the positions [0, 7]", "2 ascending positions below 6"),  # beyond m
    (4, 8, [1, 0, 0, 0, 1, 1, 1, 1], "a mask of the positions [0, 4, 5, 6, 7]", "4 of the 8 mask bits set"),
    (6, 8, field([5, 3], 3), "the positions [5, 3]", "2 ascending positions below 8"),
    (12, 16, field([1, 2, 3, 3], 4), "the positions [1, 2, 3, 3]", "4 ascending positions below 16"),
    (8, 16, [1] * 7 + [0] * 9, "a mask of the positions [0, 1, 2, 3, 4, 5, 6]", "8 of the 16 mask bits set"),
    (28, 32, field([31, 8, 2, 3], 5), "the positions [31, 8, 2, 3]", "4 ascending positions below 32"),
    (250, 256, field([0, 1, 2, 3, 5, 4], 8), "the positions [0, 1, 2, 3, 5, 4]", "6 ascending positions below 256"),
]


@pytest.mark.parametrize(("n", "m", "bits", "held", "want"), CORRUPT, ids=[f"{c[0]}:{c[1]}" for c in CORRUPT])
def test_corrupt_stream_raises_alike_on_every_backend(n, m, bits, held, want):
    _, arrays, params = corrupt(n, m, 2, 1, bits)
    # a later group of an earlier row is bad too: the message names the first in row order
    _, earlier, _ = corrupt(n, m, 0, 3, bits)
    arrays["packed_positions"][0] = earlier["packed_positions"][0]
    message = re.escape(
        f"packed_positions is corrupt: group 3 of row 0 holds {held}; every {n}:{m} group needs {want}")
    for b in (Backend.NUMPY, Backend.TORCH, Backend.ARRAY_API_STRICT, Backend.JAX):
        if b.available():
            continue
        a = {k: b.asarray(v) for k, v in arrays.items()}
        r = SparseCompressionResult("n:m", (3, 4 * m), a["values"].dtype, a, params)
        with pytest.raises(ValueError, match=message):
            r.to_dense()
        with pytest.raises(ValueError, match=message):
            r.positions()


def test_wrong_shapes_and_dtype_refused():
    x = random_nm(np.random.default_rng(0), 2, 4, 2, 4)
    r = asp.compress(x, "2:4")
    bad = SparseCompressionResult("2:4", x.shape, x.dtype, {"values": r.values, "packed_positions": r.packed_positions[:, :1]}, r.params)
    with pytest.raises(ValueError, match=re.escape("packed_positions has shape (2, 1); 2:4 of a 2 x 16 matrix needs (2, 2)")):
        bad.to_dense()
    bad = SparseCompressionResult("2:4", x.shape, x.dtype, {"values": r.values, "packed_positions": r.packed_positions.astype(np.int16)}, r.params)
    with pytest.raises(TypeError, match="packed_positions has dtype int16; it must be uint8"):
        bad.positions()
    with pytest.raises(ValueError, match=r"positions\(\) is for N:M and 2:4 results; this one is csr"):
        asp.compress(x, "csr").positions()


# -- CUTLASS from the packed stream -------------------------------------------------------
@pytest.mark.parametrize("backend_", [Backend.NUMPY, Backend.TORCH, Backend.JAX])
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "int8"])
@pytest.mark.parametrize("rows", [0, 32])
def test_two_four_to_cutlass_reorders_the_nibbles(backend_, dtype, rows):
    """A 2:4 result's meta comes from its packed nibbles alone and equals to_cutlass(dense)."""
    if backend_.available() or (backend_ is Backend.NUMPY and dtype == "bfloat16"):
        pytest.skip("no such backend or dtype")
    x = random_nm(np.random.default_rng(4), rows, 32, 2, 4)
    if backend_ is Backend.TORCH:
        dense = torch.from_numpy(x).to(getattr(torch, dtype))
    elif backend_ is Backend.JAX:
        import jax.numpy as jnp

        dense = jnp.asarray(x, dtype=getattr(jnp, dtype))
    else:
        dense = x.astype(dtype)
    values, meta = asp.compress(dense, "2:4").to_cutlass()
    want_values, want_meta = asp.to_cutlass(dense)
    assert type(meta) is type(want_meta) and meta.dtype == want_meta.dtype
    np.testing.assert_array_equal(to_numpy(meta), to_numpy(want_meta))
    def raw(a):
        if isinstance(a, torch.Tensor):
            return a.reshape(-1).view(torch.uint8).numpy() if a.numel() else np.zeros(0, np.uint8)
        return np.asarray(a).reshape(-1).view(np.uint8)

    np.testing.assert_array_equal(raw(values), raw(want_values))


def test_two_four_to_cutlass_refuses_a_corrupt_stream():
    x = np.zeros((32, 32), np.float16)
    x[:, 1::4] = 1.0
    r = asp.compress(x, "2:4")
    packed = r.packed_positions.copy()
    packed[5, 3] = 0b0111_1101  # group 7 of row 5: idx0 = 3, idx1 = 1
    bad = SparseCompressionResult("2:4", x.shape, x.dtype, {"values": r.values, "packed_positions": packed}, r.params)
    message = re.escape("packed_positions is corrupt: group 7 of row 5 holds the positions [3, 1]")
    for b in (Backend.NUMPY, Backend.JAX):
        if b.available():
            continue
        a = {k: b.asarray(v) for k, v in bad.arrays.items()}
        with pytest.raises(ValueError, match=message):
            SparseCompressionResult("2:4", x.shape, a["values"].dtype, a, r.params).to_cutlass()
