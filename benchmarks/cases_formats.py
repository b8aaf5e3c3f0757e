"""Sparse format benchmarks: dense -> CSR / BSR and CSR -> dense against scipy and torch.

Inputs are the benchmark matrix with a fraction of its elements zeroed at
random (seeded). Our arrays are checked against scipy's before any time is
reported.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from harness import race, versus

import arraysparse as asp


def _with_zeros(x, fraction):
    y = x.copy()
    y[np.random.default_rng(1).random(x.shape) < fraction] = 0
    return y


def _check_csr(result, reference, label):
    reference.sort_indices()
    for name, want in (("indptr", reference.indptr), ("indices", reference.indices), ("data", reference.data)):
        if not np.array_equal(result.arrays[name], want):
            raise AssertionError(f"{label}: {name} differs from scipy's")


def case_dense_to_csr(x):
    rows = []
    for zeros in (0.5, 0.9):
        y = _with_zeros(x, zeros)
        t = torch.from_numpy(y)
        (ours, result), (scipy_ms, ref), (torch_ms, _), (copy_ms, _) = race(
            lambda y=y: asp.compress(y, "csr"), lambda y=y: sp.csr_array(y),
            lambda t=t: t.to_sparse_csr(), lambda y=y: np.copy(y))
        _check_csr(result, ref, f"csr {zeros:.0%}")
        job = f"dense -> CSR, {zeros:.0%} zeros"
        rows += [
            versus(job, ours, "scipy.sparse.csr_array(dense)", scipy_ms, 8),
            versus(job, ours, "torch Tensor.to_sparse_csr()", torch_ms, 4),
            versus(job, ours, "np.copy(dense) (memory floor)", copy_ms, 1 / 3,
                   ">= 0.333x (ours <= 3x copy)"),
        ]
    return rows


def case_dense_to_bsr(x):
    y = _with_zeros(x, 0.5)
    t = torch.from_numpy(y)
    (ours, result), (scipy_ms, ref), (torch_ms, _) = race(
        lambda: asp.compress(y, "bsr", block=(4, 4)), lambda: sp.bsr_array(y, blocksize=(4, 4)),
        lambda: t.to_sparse_bsr((4, 4)))
    ref.sort_indices()
    if not (np.array_equal(result.indptr, ref.indptr) and np.array_equal(result.data, ref.data)):
        raise AssertionError("bsr 4x4: differs from scipy's")
    job = "dense -> BSR 4x4, 50% zeros"
    return [
        versus(job, ours, "scipy.sparse.bsr_array(dense, blocksize=(4, 4))", scipy_ms, 10),
        versus(job, ours, "torch Tensor.to_sparse_bsr((4, 4))", torch_ms, 4),
    ]


def case_csr_to_dense(x):
    y = _with_zeros(x, 0.5)
    result = asp.compress(y, "csr")
    ref = sp.csr_array(y)
    ours_buf, scipy_buf = np.empty_like(y), np.empty_like(y)
    (ours, dense), (scipy_ms, _), (ours_out, _), (scipy_out, _), (touch_ms, _) = race(
        result.to_dense, ref.toarray,
        lambda: result.to_dense(out=ours_buf), lambda: ref.toarray(out=scipy_buf),
        lambda: np.zeros(y.shape, y.dtype)[:, ::1024].fill(1))
    if not (np.array_equal(dense, y) and np.array_equal(ours_buf, y) and np.array_equal(scipy_buf, y)):
        raise AssertionError("csr -> dense: wrong matrix")
    return [
        versus("CSR -> dense, 50% zeros", ours, "scipy csr_array.toarray()", scipy_ms, 2),
        versus("CSR -> dense, 50% zeros", ours, "np.zeros + 1 write per 4 KiB page (page faults alone)",
               touch_ms),
        versus("CSR -> dense into a reused buffer (to_dense(out=))", ours_out,
               "scipy toarray(out=) (same buffer reuse)", scipy_out),
    ]


def case_dense_to_nm(x):
    y = asp.nm_mask(x, 2, 4, magnitude=True).apply(x)
    packed = asp.compress(y, "2:4")
    (ours, result), (decode_ms, dense), (copy_ms, _) = race(
        lambda: asp.compress(y, "2:4"), packed.to_dense, lambda: np.copy(y))
    if not (np.array_equal(result.to_dense(), y) and np.array_equal(dense, y)):
        raise AssertionError("2:4 compress: wrong round trip")
    return [versus("dense -> 2:4 compressed (values + 2-bit positions)", ours, "np.copy(dense) (memory floor)",
                   copy_ms),
            versus("2:4 compressed -> dense", decode_ms, "np.copy(dense) (memory floor)", copy_ms)]


CASES = [case_dense_to_csr, case_dense_to_bsr, case_csr_to_dense, case_dense_to_nm]
