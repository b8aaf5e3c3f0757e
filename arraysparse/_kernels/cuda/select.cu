// NaN counts and the exact top-k keep mask: a radix select over the order keys, by counting
// (arraysparse/_kernels/cpu/select.py gives the same mask; its tie rule: of the keys equal
// to the threshold, the lowest flat indices are pruned first).
#include "common.cuh"

namespace asp {

// count[0] += the NaN values among x (bits; ``inf`` as in is_nan_bits)
template <typename U>
__global__ void nan_count(const U* __restrict__ x, i64 n, U inf, u64* count) {
  u64 c = 0;
  for (i64 i = global_thread(); i < n; i += grid_threads()) c += u64(is_nan_bits(x[i], inf));
  c = warp_sum(c);
  if ((threadIdx.x & 31u) == 0 && c) atomicAdd(count, c);
}

}  // namespace asp

namespace asp {

// -- the radix select ---------------------------------------------------------------------
// ``state`` (4 x u64, device memory) carries the select between launches without a trip to
// the host: [0] the threshold's bits found so far (its prefix), [1] the mask of those bits,
// [2] how many keys with that prefix are still to prune, [3] unused. One level histograms
// one digit (``bits`` <= 11 wide, at ``shift``) of the keys with the prefix; radix_pick
// then extends the prefix by the digit whose bucket holds the key of rank state[2].

// hist[d] += keys with the prefix whose digit is d; with ``count_nans`` also nan_count[0]
// += the NaN values (the first level reads every value anyway).
template <typename U>
__global__ void radix_histogram(const U* __restrict__ x, i64 n, int mode, int magnitude, U inf,
                                const u64* __restrict__ state, int shift, int bits, int count_nans,
                                u64* __restrict__ hist, u64* __restrict__ nan_count) {
  __shared__ u32 local[2048];
  const u32 nbins = 1u << bits;
  for (u32 b = threadIdx.x; b < nbins; b += blockDim.x) local[b] = 0;
  __syncthreads();
  const U prefix = U(state[0]);
  const U pmask = U(state[1]);
  u64 nan = 0;
  for (i64 i = global_thread(); i < n; i += grid_threads()) {
    const U b = x[i];
    nan += u64(count_nans && is_nan_bits(b, inf));
    const U k = order_key(b, mode, magnitude);
    if (U(k & pmask) == prefix) atomicAdd(&local[u32(k >> shift) & (nbins - 1u)], 1u);
  }
  __syncthreads();
  for (u32 b = threadIdx.x; b < nbins; b += blockDim.x) {
    if (local[b]) atomicAdd(&hist[b], u64(local[b]));
  }
  nan = warp_sum(nan);
  if ((threadIdx.x & 31u) == 0 && nan) atomicAdd(nan_count, nan);
}

// One block of 256 threads, eight buckets a thread: find the bucket where the running count
// reaches state[2], extend the prefix by it, and clear the histogram for the next level.
__global__ void radix_pick(u64* hist, int bits, u64* state, int shift) {
  const u32 nbins = 1u << bits;
  const u32 b0 = 8u * threadIdx.x;
  u64 h[8];
  u64 own = 0;
  for (u32 j = 0; j < 8; ++j) {
    h[j] = b0 + j < nbins ? hist[b0 + j] : 0ull;
    own += h[j];
  }
  const u64 need = state[2];
  u64 total;
  const u64 incl = block_inclusive_sum(own, total);  // its barriers: every thread has read state
  u64 below = incl - own;
  if (below < need && need <= incl) {
    u32 j = 0;
    while (below + h[j] < need) below += h[j++];
    state[0] |= u64(b0 + j) << shift;
    state[1] |= u64(nbins - 1u) << shift;
    state[2] = need - below;
  }
  for (u32 j = 0; j < 8; ++j) {
    if (b0 + j < nbins) hist[b0 + j] = 0;
  }
}

// counts[b] = keys equal to the threshold state[0] in chunk b (``chunk`` consecutive items)
template <typename U>
__global__ void count_equal(const U* __restrict__ x, i64 n, int mode, int magnitude, const u64* __restrict__ state,
                            i64 chunk, u64* __restrict__ counts) {
  const U t = U(state[0]);
  const i64 start = i64(blockIdx.x) * chunk;
  const i64 stop = mn(n, start + chunk);
  u64 c = 0;
  for (i64 i = start + threadIdx.x; i < stop; i += blockDim.x) c += u64(order_key(x[i], mode, magnitude) == t);
  u64 total;
  block_inclusive_sum(c, total);
  if (threadIdx.x == 0) counts[blockIdx.x] = total;
}

// out = key > T; of the keys equal to T the first state[2] (in index order) are pruned, the
// others kept. ``counts`` / ``ends``: each chunk's count of keys equal to T and its running
// total (count_equal, then a scan), so every chunk knows its quota on its own.
template <typename U>
__global__ void keep_threshold(const U* __restrict__ x, i64 n, int mode, int magnitude,
                               const u64* __restrict__ state, i64 chunk, const u64* __restrict__ counts,
                               const u64* __restrict__ ends, u8* __restrict__ out) {
  const U t = U(state[0]);
  const u64 need = state[2];
  const i64 start = i64(blockIdx.x) * chunk;
  const i64 stop = mn(n, start + chunk);
  const u64 equal = counts[blockIdx.x];
  const u64 before = ends[blockIdx.x] - equal;
  const u64 quota = need > before ? mn(need - before, equal) : 0ull;
  if (quota == equal) {  // every equal key of the chunk pruned (or none there)
    for (i64 i = start + threadIdx.x; i < stop; i += blockDim.x) out[i] = u8(order_key(x[i], mode, magnitude) > t);
  } else if (quota == 0) {  // every equal key kept
    for (i64 i = start + threadIdx.x; i < stop; i += blockDim.x) out[i] = u8(order_key(x[i], mode, magnitude) >= t);
  } else {  // the chunk holding the cut: rank its equal keys in index order
    u64 seen = 0;
    for (i64 i0 = start; i0 < stop; i0 += blockDim.x) {
      const i64 i = i0 + threadIdx.x;
      U k = 0;
      bool eq = false;
      if (i < stop) {
        k = order_key(x[i], mode, magnitude);
        eq = k == t;
      }
      u32 total;
      const u32 rank = block_rank(eq, total);
      if (i < stop) out[i] = u8(k > t || (eq && seen + rank >= quota));
      seen += total;
    }
  }
}

// less_equal[0] += keys below state[0], less_equal[1] += keys equal to it (the global select)
template <typename U>
__global__ void count_below(const U* __restrict__ x, i64 n, int mode, int magnitude, const u64* __restrict__ state,
                            u64* __restrict__ less_equal) {
  const U t = U(state[0]);
  u64 lt = 0;
  u64 eq = 0;
  for (i64 i = global_thread(); i < n; i += grid_threads()) {
    const U k = order_key(x[i], mode, magnitude);
    lt += u64(k < t);
    eq += u64(k == t);
  }
  lt = warp_sum(lt);
  eq = warp_sum(eq);
  if ((threadIdx.x & 31u) == 0) {
    if (lt) atomicAdd(&less_equal[0], lt);
    if (eq) atomicAdd(&less_equal[1], eq);
  }
}

}  // namespace asp
