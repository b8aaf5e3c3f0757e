"""SparseGPT and Wanda on one layer against straightforward NumPy transcriptions of the published code.

A 1024 x 1024 float32 layer with 2048 calibration tokens (``--quick``:
256 x 256, 512 tokens), correlated inputs. SparseGPT is timed from the
calibrated Hessian (the Hessian's one matrix product is the same for both);
Wanda from the calibration batch to the mask. Before any timing counts the
results are checked: in float64 our masks must equal the transcription's and
our weights be close; in float32 (what is timed) the masks must agree on
99.9% of the weights and the reconstruction errors within 1%.
Information rows: no target, the ratio is reported.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from harness import bench, is_quick, versus

from arraysparse.calibration import HessianAccumulator
from arraysparse.patterns import SparsityPattern
from arraysparse.strategies.sparsegpt import sparsegpt_prune
from arraysparse.strategies.wanda import WandaPruning


def reference_sparsegpt(w, h, sparsity=0.0, prunen=0, prunem=0, blocksize=128, percdamp=0.01, dtype=np.float32):
    """SparseGPT.fasterprune (IST-DASLab/sparsegpt) in NumPy, column by column.

    Same as the test suite's transcription: the block's pruned count is the
    layer's round(s * size) shared by block width, ties to the lower index.
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
    Hinv = np.linalg.cholesky(Linv.T @ Linv).T
    count = round(sparsity * rows * columns)
    mask = np.zeros(W.shape, dtype=bool)
    for i1 in range(0, columns, blocksize):
        i2 = min(i1 + blocksize, columns)
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
        for i in range(i2 - i1):
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


def reference_wanda(w, x, sparsity):
    """Wanda's prune_wanda, unstructured per row (locuslab/wanda), in NumPy (norms summed in float64)."""
    xt = x.reshape(-1, x.shape[-1]).T.astype(np.float64)
    scaler_row = np.linalg.norm(xt, ord=2, axis=1) ** 2
    metric = np.abs(w) * np.sqrt(scaler_row.reshape(1, -1)).astype(w.dtype)
    idx = np.argsort(metric, axis=-1, kind="stable")[:, : int(w.shape[1] * sparsity)]
    keep = np.ones(w.shape, dtype=bool)
    np.put_along_axis(keep, idx, False, axis=1)
    return np.where(keep, w, 0), keep


def _layer(x):
    rows, tokens = (256, 512) if is_quick(x) else (1024, 2048)
    rng = np.random.default_rng(0)
    mix = rng.standard_normal((rows, rows)).astype(np.float32) / np.sqrt(rows) + np.eye(rows, dtype=np.float32)
    inputs = (rng.standard_normal((tokens, rows), dtype=np.float32) @ mix) * np.exp(
        rng.uniform(-1, 1, rows)
    ).astype(np.float32)
    return rng.standard_normal((rows, rows), dtype=np.float32), inputs, rows, tokens


def _rel_error(w, w2, x):
    return float(np.linalg.norm(x @ (w - w2).T) / np.linalg.norm(x @ w.T))


def case_sparsegpt(x):
    """SparseGPT 50% and 2:4, ours vs the column-by-column NumPy transcription."""
    w, inputs, rows, tokens = _layer(x)
    acc32, acc64 = HessianAccumulator(), HessianAccumulator(dtype="float64")
    acc32.update(inputs)
    acc64.update(inputs)
    h32, h64 = acc32.hessian, acc64.hessian
    out = []
    for label, pattern, sparsity, nm in [
        ("50%", None, 0.5, (0, 0)),
        ("2:4", SparsityPattern.two_four(), None, (2, 4)),
    ]:
        # exactness first, in float64
        ref_w, ref_keep = reference_sparsegpt(w, h64, sparsity or 0.0, *nm, dtype=np.float64)
        got_w, mask = sparsegpt_prune(w, h64, sparsity, pattern=pattern, dtype="float64")
        if not np.array_equal(mask.mask, ref_keep):
            raise AssertionError(f"SparseGPT {label}: float64 mask differs from the transcription")
        if not np.allclose(got_w, ref_w, rtol=1e-6, atol=1e-8):
            raise AssertionError(f"SparseGPT {label}: float64 weights differ from the transcription")
        peer_ms, (ref_w, ref_keep) = bench(lambda s=sparsity, nm=nm: reference_sparsegpt(w, h32, s or 0.0, *nm))
        ours_ms, (got_w, mask) = bench(lambda s=sparsity, p=pattern: sparsegpt_prune(w, h32, s, pattern=p))
        agree = float(np.mean(mask.mask == ref_keep))
        e_ours, e_ref = _rel_error(w, got_w, inputs), _rel_error(w, ref_w, inputs)
        if agree < 0.999 or abs(e_ours - e_ref) > 0.01 * e_ref:
            raise AssertionError(f"SparseGPT {label} float32: masks agree on {agree:.4%}, errors {e_ours} vs {e_ref}")
        job = f"SparseGPT {label}, {rows}x{rows} float32, {tokens} tokens (rel. error {e_ours:.3f})"
        out.append(versus(job, ours_ms, "NumPy column-by-column transcription (float32)", peer_ms))
    return out


def case_wanda(x):
    """Wanda 50% per row: calibrate + prune, ours vs a NumPy transcription."""
    w, inputs, rows, tokens = _layer(x)

    def ours():
        wanda = WandaPruning()
        wanda.calibrate(inputs)
        return wanda.prune(w, 0.5)

    ours_ms, (pruned, mask) = bench(ours)
    peer_ms, (ref_pruned, ref_keep) = bench(lambda: reference_wanda(w, inputs, 0.5))
    if not np.array_equal(mask.mask, ref_keep) or not np.array_equal(pruned, ref_pruned):
        raise AssertionError("Wanda: mask differs from the transcription")
    job = f"Wanda 50% per row, {rows}x{rows} float32, {tokens} tokens (calibrate + prune)"
    return [versus(job, ours_ms, "NumPy transcription (sort per row)", peer_ms)]


CASES = [case_sparsegpt, case_wanda]
