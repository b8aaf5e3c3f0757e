"""2:4 CUTLASS layout: export and import against torch's CPU reference conversions.

The matrix is the benchmark matrix ``x`` made 2:4 sparse (the 2 largest |x|
of every group of 4 kept, by ``nm_mask``) and cast to float16: 4096 x 4096
(``--quick``: 512 x 512). Before any timing counts, our ``(values, meta)``
must equal torch's ``sparse_semi_structured_from_dense_cutlass`` byte for
byte and our decode must give the matrix back bit for bit.
"""

from __future__ import annotations

import numpy as np
import torch
from harness import race, versus
from torch.sparse._semi_structured_conversions import (
    sparse_semi_structured_from_dense_cutlass,
    sparse_semi_structured_to_dense_cutlass,
)

from arraysparse.formats.cutlass import from_cutlass, to_cutlass
from arraysparse.masks import nm_mask


def _bits(a):
    a = a.numpy() if isinstance(a, torch.Tensor) else a
    return a.view({1: np.uint8, 2: np.uint16, 4: np.uint32}[a.dtype.itemsize])


def _sparse_half(x):
    keep = np.asarray(nm_mask(x, 2, 4).mask)
    return np.where(keep, x, 0).astype(np.float16)


def case_cutlass_2_4(x):
    """float16 2:4 -> CUTLASS (values, meta) and back, vs torch's CPU encoder/decoder."""
    dense = _sparse_half(x)
    t = torch.from_numpy(dense)
    (ours_ms, (values, meta)), (peer_ms, (tv, tm)), (copy_ms, _) = race(
        lambda: to_cutlass(dense), lambda: sparse_semi_structured_from_dense_cutlass(t), lambda: np.copy(dense))
    if not (np.array_equal(_bits(values), _bits(tv)) and np.array_equal(_bits(meta), _bits(tm))):
        raise AssertionError("to_cutlass differs from torch's encoder")
    (dec_ms, back), (dec_peer_ms, back_t) = race(
        lambda: from_cutlass(values, meta), lambda: sparse_semi_structured_to_dense_cutlass(tv, tm))
    if not (np.array_equal(_bits(back), _bits(dense)) and np.array_equal(_bits(back), _bits(back_t))):
        raise AssertionError("from_cutlass does not restore the matrix")
    shape = "x".join(map(str, dense.shape))
    return [
        versus(f"2:4 CUTLASS export, float16 {shape}", ours_ms,
               "torch sparse_semi_structured_from_dense_cutlass", peer_ms, 20),
        versus(f"2:4 CUTLASS import, float16 {shape}", dec_ms,
               "torch sparse_semi_structured_to_dense_cutlass", dec_peer_ms),
        versus(f"2:4 CUTLASS export, float16 {shape}", ours_ms,
               "np.copy(dense) (memory reference)", copy_ms),
    ]


CASES = [case_cutlass_2_4]
