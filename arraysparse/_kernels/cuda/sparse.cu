// Compress and decompress of CSR, COO, CSC, BSR and the bitmask format, on the bits of the
// values (arraysparse/_kernels/cpu/sparse.py gives the same arrays).
//
// "Non-zero" is one AND with ``nz`` (floats clear their sign bits, so -0.0 is a zero);
// values move bit for bit. Compression is count -> scan -> fill, as on the CPU:
//
// * row-major formats (CSR, COO, the bitmask's values, BSR's block list) are a stream
//   compaction of the flat array: chunk_count counts each chunk of ``chunk`` items, a
//   scan between the launches gives every chunk its first output slot, and compact
//   writes each chunk's non-zeros in order (a block-wide rank per tile of the chunk).
//   CSR's indptr falls out of the same pass: indptr[r] is the slot of flat index
//   r * cols, so no per-row count is needed;
// * CSC counts every (column, segment of rows) in column-major order, so the scan of
//   those counts is already CSC's order; a thread then fills its column's segment.
#include "common.cuh"

namespace asp {

enum CompactOutputs { OUT_INDICES = 1, OUT_ROWS = 2, OUT_INDPTR = 4, OUT_DATA = 8 };

// counts[b] = non-zeros among items [b * chunk, (b + 1) * chunk)
template <typename U>
__global__ void chunk_count(const U* __restrict__ x, i64 n, U nz, i64 chunk, u64* __restrict__ counts) {
  const i64 start = i64(blockIdx.x) * chunk;
  const i64 stop = mn(n, start + chunk);
  u64 c = 0;
  for (i64 i = start + threadIdx.x; i < stop; i += blockDim.x) c += u64(U(x[i] & nz) != U(0));
  u64 total;
  block_inclusive_sum(c, total);
  if (threadIdx.x == 0) counts[blockIdx.x] = total;
}

// The non-zeros of the flat (rows, cols) array in row-major order: slot p gets the column
// (indices), the row (rows) and the bits (data) of the p-th non-zero, as ``outputs`` asks;
// indptr[r] the slot of the row's first item. ``counts`` / ``ends``: chunk_count and its
// inclusive scan. I is the index type.
template <typename U, typename I>
__global__ void compact(const U* __restrict__ x, i64 rows, i64 cols, U nz, i64 chunk, const u64* __restrict__ counts,
                        const u64* __restrict__ ends, int outputs, I* __restrict__ indices, I* __restrict__ row_ids,
                        I* __restrict__ indptr, U* __restrict__ data) {
  const i64 n = rows * cols;
  const i64 start = i64(blockIdx.x) * chunk;
  const i64 stop = mn(n, start + chunk);
  u64 pos = ends[blockIdx.x] - counts[blockIdx.x];
  // this thread's item as (row, column), advanced by blockDim.x a tile: one division a chunk
  i64 r = (start + threadIdx.x) / cols;
  i64 c = start + threadIdx.x - r * cols;
  for (i64 i0 = start; i0 < stop; i0 += blockDim.x) {
    const i64 i = i0 + threadIdx.x;
    U v = 0;
    bool keep = false;
    if (i < stop) {
      v = x[i];
      keep = U(v & nz) != U(0);
    }
    u32 total;
    const u32 rank = block_rank(keep, total);
    if (i < stop) {
      const u64 p = pos + rank;
      if (keep) {
        if (outputs & OUT_INDICES) indices[p] = I(c);
        if (outputs & OUT_ROWS) row_ids[p] = I(r);
        if (outputs & OUT_DATA) data[p] = v;
      }
      if ((outputs & OUT_INDPTR) && c == 0) indptr[r] = I(p);
    }
    pos += total;
    c += blockDim.x;
    while (c >= cols) {
      c -= cols;
      ++r;
    }
  }
}

// -- CSC ----------------------------------------------------------------------------------
// counts[j * nseg + s] = non-zeros of column j among rows [s * seg, (s + 1) * seg); grid
// (column blocks, nseg)
template <typename U>
__global__ void csc_count(const U* __restrict__ x, i64 rows, i64 cols, U nz, i64 seg, u64* __restrict__ counts) {
  const i64 j = i64(blockIdx.x) * blockDim.x + threadIdx.x;
  const i64 s = blockIdx.y;
  if (j < cols) {
    const i64 r1 = mn(rows, (s + 1) * seg);
    u64 c = 0;
    for (i64 r = s * seg; r < r1; ++r) c += u64(U(x[r * cols + j] & nz) != U(0));
    counts[j * i64(gridDim.y) + s] = c;
  }
}

template <typename U, typename I>
__global__ void csc_fill(const U* __restrict__ x, i64 rows, i64 cols, U nz, i64 seg, const u64* __restrict__ counts,
                         const u64* __restrict__ ends, I* __restrict__ indptr, I* __restrict__ indices,
                         U* __restrict__ data) {
  const i64 j = i64(blockIdx.x) * blockDim.x + threadIdx.x;
  const i64 s = blockIdx.y;
  if (j < cols) {
    const i64 slot = j * i64(gridDim.y) + s;
    u64 p = ends[slot] - counts[slot];
    if (s == 0) indptr[j] = I(p);
    const i64 r1 = mn(rows, (s + 1) * seg);
    for (i64 r = s * seg; r < r1; ++r) {
      const U v = x[r * cols + j];
      if (U(v & nz) != U(0)) {
        indices[p] = I(r);
        data[p] = v;
        ++p;
      }
    }
  }
}

// -- BSR ----------------------------------------------------------------------------------
// flags[i * nbc + j] = 1 where block (i, j) of shape (br, bc) holds a non-zero
template <typename U>
__global__ void block_flags(const U* __restrict__ x, i64 cols, i64 nbr, i64 nbc, int br, int bc, U nz,
                            u8* __restrict__ flags) {
  for (i64 t = global_thread(); t < nbr * nbc; t += grid_threads()) {
    const i64 i = t / nbc;
    const i64 j = t - i * nbc;
    U any = 0;
    for (int a = 0; a < br; ++a) {
      const U* row = x + (i * br + a) * cols + j * bc;
      for (int b = 0; b < bc; ++b) any |= U(row[b] & nz);
    }
    flags[t] = u8(any != U(0));
  }
}

// data[k] = block (block_rows[k], block_cols[k]): one thread per row of a block
template <typename U, typename I>
__global__ void bsr_gather(const U* __restrict__ x, i64 cols, int br, int bc, i64 nblocks,
                           const I* __restrict__ block_rows, const I* __restrict__ block_cols, U* __restrict__ data) {
  for (i64 e = global_thread(); e < nblocks * br; e += grid_threads()) {
    const i64 k = e / br;
    const i64 a = e - k * br;
    const U* src = x + (i64(block_rows[k]) * br + a) * cols + i64(block_cols[k]) * bc;
    U* dst = data + e * bc;
    for (int b = 0; b < bc; ++b) dst[b] = src[b];
  }
}

// -- decoders (out is zeroed first, except where every item is written) -----------------------
// one warp a row, its lanes over the row's entries
template <typename U, typename I>
__global__ void csr_scatter(const I* __restrict__ indptr, const I* __restrict__ indices, const U* __restrict__ data,
                            i64 rows, i64 cols, U* __restrict__ out) {
  const i64 warps = grid_threads() >> 5;
  const u32 lane = threadIdx.x & 31u;
  for (i64 r = global_thread() >> 5; r < rows; r += warps) {
    for (i64 p = i64(indptr[r]) + lane; p < i64(indptr[r + 1]); p += 32) out[r * cols + i64(indices[p])] = data[p];
  }
}

// one warp a column
template <typename U, typename I>
__global__ void csc_scatter(const I* __restrict__ indptr, const I* __restrict__ indices, const U* __restrict__ data,
                            i64 rows, i64 cols, U* __restrict__ out) {
  const i64 warps = grid_threads() >> 5;
  const u32 lane = threadIdx.x & 31u;
  for (i64 j = global_thread() >> 5; j < cols; j += warps) {
    for (i64 p = i64(indptr[j]) + lane; p < i64(indptr[j + 1]); p += 32) out[i64(indices[p]) * cols + j] = data[p];
  }
}

template <typename U, typename I>
__global__ void coo_scatter(const I* __restrict__ row_ids, const I* __restrict__ col_ids, const U* __restrict__ data,
                            i64 nnz, i64 cols, U* __restrict__ out) {
  for (i64 p = global_thread(); p < nnz; p += grid_threads()) out[i64(row_ids[p]) * cols + i64(col_ids[p])] = data[p];
}

// every item of data to its place; a block's row from indptr by a binary search
template <typename U, typename I>
__global__ void bsr_scatter(const I* __restrict__ indptr, const I* __restrict__ indices, const U* __restrict__ data,
                            i64 nbr, i64 cols, int br, int bc, i64 nblocks, U* __restrict__ out) {
  const i64 per = i64(br) * bc;
  for (i64 e = global_thread(); e < nblocks * per; e += grid_threads()) {
    const i64 k = e / per;
    i64 lo = 0;
    i64 hi = nbr;  // the last block row i with indptr[i] <= k
    while (hi - lo > 1) {
      const i64 mid = (lo + hi) >> 1;
      if (i64(indptr[mid]) <= k) {
        lo = mid;
      } else {
        hi = mid;
      }
    }
    const i64 rem = e - k * per;
    const i64 a = rem / bc;
    const i64 b = rem - a * bc;
    out[(lo * br + a) * cols + i64(indices[k]) * bc + b] = data[e];
  }
}

// -- bitmask ------------------------------------------------------------------------------
// bits[r, q] = bit t set where item (r, 8q + t) is non-zero (NumPy's packbits, little)
template <typename U>
__global__ void bitmask_pack(const U* __restrict__ x, i64 rows, i64 cols, i64 row_bytes, U nz, u8* __restrict__ bits) {
  for (i64 t = global_thread(); t < rows * row_bytes; t += grid_threads()) {
    const i64 r = t / row_bytes;
    const i64 c0 = (t - r * row_bytes) * 8;
    u32 byte = 0;
    for (int q = 0; q < 8; ++q) {
      if (c0 + q < cols) byte |= u32(U(x[r * cols + c0 + q] & nz) != U(0)) << q;
    }
    bits[t] = u8(byte);
  }
}

__device__ __forceinline__ bool mask_bit(const u8* bits, i64 i, i64 cols, i64 row_bytes) {
  const i64 r = i / cols;
  const i64 c = i - r * cols;
  return (bits[r * row_bytes + (c >> 3)] >> (c & 7)) & 1;
}

// counts[b] = set bits among items [b * chunk, (b + 1) * chunk) of the (rows, cols) mask
__global__ void bitmask_count(const u8* __restrict__ bits, i64 rows, i64 cols, i64 row_bytes, i64 chunk,
                              u64* __restrict__ counts) {
  const i64 start = i64(blockIdx.x) * chunk;
  const i64 stop = mn(rows * cols, start + chunk);
  u64 c = 0;
  for (i64 i = start + threadIdx.x; i < stop; i += blockDim.x) c += u64(mask_bit(bits, i, cols, row_bytes));
  u64 total;
  block_inclusive_sum(c, total);
  if (threadIdx.x == 0) counts[blockIdx.x] = total;
}

// out[i] = the next value where bit i is set, else 0: every item written
template <typename U>
__global__ void bitmask_scatter(const u8* __restrict__ bits, i64 rows, i64 cols, i64 row_bytes, i64 chunk,
                                const u64* __restrict__ counts, const u64* __restrict__ ends,
                                const U* __restrict__ values, U* __restrict__ out) {
  const i64 n = rows * cols;
  const i64 start = i64(blockIdx.x) * chunk;
  const i64 stop = mn(n, start + chunk);
  u64 pos = ends[blockIdx.x] - counts[blockIdx.x];
  for (i64 i0 = start; i0 < stop; i0 += blockDim.x) {
    const i64 i = i0 + threadIdx.x;
    const bool set = i < stop && mask_bit(bits, i, cols, row_bytes);
    u32 total;
    const u32 rank = block_rank(set, total);
    if (i < stop) out[i] = set ? values[pos + rank] : U(0);
    pos += total;
  }
}

}  // namespace asp
