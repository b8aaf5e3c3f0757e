// N:M keep masks: in every group of m consecutive elements along an axis prune the n
// smallest keys (ties: the lower position first), as arraysparse/_kernels/cpu/nm.py.
//
// The array is viewed as (outer, length, inner) with the groups along the middle axis;
// a group is unit u = (o, g, i), i fastest, so neighbouring threads read neighbouring
// memory when inner > 1. Element j of a group sits at base + j * inner.
//
// * m <= 32 (nm_keep_small, one thread a group): the keys live in registers (MAXM, a
//   template constant >= m, unrolls every loop) and each element's rank is counted
//   against the others: rank_j = #{t : k_t < k_j or (k_t == k_j and t < j)}.
// * any m (nm_keep_large, one block a group): a radix select over 8-bit digits in shared
//   memory finds the group's n-th smallest key T and how many of the keys equal to T are
//   pruned; a block-wide scan in position order then prunes the first of them.
//
// Both raise a flag when a key is a NaN's; the caller counts them then.
#include "common.cuh"

namespace asp {

__device__ __forceinline__ i64 group_base(i64 u, i64 groups, i64 length, i64 inner, int m) {
  if (inner == 1) return u * m;  // groups along the last axis (m divides it): no division
  const i64 span = groups * inner;
  const i64 o = u / span;
  const i64 rem = u - o * span;
  const i64 g = rem / inner;
  const i64 i = rem - g * inner;
  return (o * length + g * i64(m)) * inner + i;
}

__device__ __forceinline__ void raise_flag(bool flag, u32* flags) {
  if (__any_sync(FULL, flag) && (threadIdx.x & 31u) == 0) atomicOr(flags, 1u);
}

template <typename U, int MAXM>
__global__ void nm_keep_small(const U* __restrict__ x, u8* __restrict__ out, i64 units, i64 groups, i64 length,
                              i64 inner, int n, int m, int mode, int magnitude, U inf, u32* nan_flag) {
  bool nan = false;
  for (i64 u = global_thread(); u < units; u += grid_threads()) {
    const i64 base = group_base(u, groups, length, inner, m);
    U key[MAXM];
#pragma unroll
    for (int j = 0; j < MAXM; ++j) {
      key[j] = 0;
      if (j < m) {
        const U b = x[base + j * inner];
        nan |= is_nan_bits(b, inf);
        key[j] = order_key(b, mode, magnitude);
      }
    }
#pragma unroll
    for (int j = 0; j < MAXM; ++j) {
      if (j < m) {
        int rank = 0;
#pragma unroll
        for (int t = 0; t < MAXM; ++t) {
          rank += int(t < m) & (int(key[t] < key[j]) | (int(key[t] == key[j]) & int(t < j)));
        }
        out[base + j * inner] = u8(rank >= n);
      }
    }
  }
  raise_flag(nan, nan_flag);
}

// Warp 0 finds the first of 256 buckets whose running count reaches ``need``: the bucket
// and the count before it, in the one lane that returns true. Lane l holds buckets 8l .. 8l + 7.
__device__ __forceinline__ bool pick_bucket(const u32* hist, u32 need, u32& bucket, u32& below) {
  const u32 lane = threadIdx.x & 31u;
  u32 own = 0;
  for (u32 b = 0; b < 8; ++b) own += hist[8 * lane + b];
  u32 incl = own;
  for (u32 d = 1; d < 32; d <<= 1) {
    const u32 up = __shfl_up_sync(FULL, incl, d);
    if (lane >= d) incl += up;
  }
  const u32 reach = __ballot_sync(FULL, incl >= need);
  const u32 first = u32(__ffs(int(reach))) - 1u;  // need <= the group's count: some lane reaches it
  const u32 start = __shfl_sync(FULL, incl - own, first);
  bucket = 0;
  below = 0;
  if (lane == first) {
    u32 acc = start;
    u32 b = 0;
    while (acc + hist[8 * lane + b] < need) acc += hist[8 * lane + b++];
    bucket = 8 * lane + b;
    below = acc;
  }
  return lane == first;
}

template <typename U>
__global__ void nm_keep_large(const U* __restrict__ x, u8* __restrict__ out, i64 units, i64 groups, i64 length,
                              i64 inner, int n, int m, int mode, int magnitude, U inf, u32* nan_flag) {
  __shared__ u32 hist[256];
  __shared__ U s_prefix;
  __shared__ U s_pmask;
  __shared__ u32 s_need;
  const int top = int(sizeof(U)) * 8 - 8;
  bool nan = false;
  for (i64 u = blockIdx.x; u < units; u += gridDim.x) {  // uniform over the block
    const i64 base = group_base(u, groups, length, inner, m);
    if (threadIdx.x == 0) {
      s_prefix = 0;
      s_pmask = 0;
      s_need = u32(n);  // the n-th smallest key, rank n - 1
    }
    for (int shift = top; shift >= 0; shift -= 8) {
      for (u32 b = threadIdx.x; b < 256; b += blockDim.x) hist[b] = 0;
      __syncthreads();
      const U prefix = s_prefix;
      const U pmask = s_pmask;
      for (int j = threadIdx.x; j < m; j += blockDim.x) {
        const U b = x[base + i64(j) * inner];
        if (shift == top) nan |= is_nan_bits(b, inf);
        const U k = order_key(b, mode, magnitude);
        if (U(k & pmask) == prefix) atomicAdd(&hist[u32(k >> shift) & 255u], 1u);
      }
      __syncthreads();
      if (threadIdx.x < 32) {
        const u32 need = s_need;
        __syncwarp();  // every lane has read s_need before the finder rewrites it
        u32 bucket, below;
        if (pick_bucket(hist, need, bucket, below)) {
          s_need = need - below;
          s_prefix = U(prefix | U(U(bucket) << shift));
          s_pmask = U(pmask | U(U(255) << shift));
        }
      }
      __syncthreads();
    }
    const U t = s_prefix;
    const u32 need = s_need;
    u32 seen = 0;
    for (int j0 = 0; j0 < m; j0 += blockDim.x) {
      const int j = j0 + int(threadIdx.x);
      U k = 0;
      bool eq = false;
      if (j < m) {
        k = order_key(x[base + i64(j) * inner], mode, magnitude);
        eq = k == t;
      }
      u32 total;
      const u32 rank = block_rank(eq, total);
      if (j < m) out[base + i64(j) * inner] = u8((k > t) || (eq && seen + rank >= need));
      seen += total;
    }
    __syncthreads();  // s_* are the next group's
  }
  raise_flag(nan, nan_flag);
}

}  // namespace asp
