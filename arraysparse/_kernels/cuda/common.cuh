// What every arraysparse CUDA kernel shares: integer types, order keys, block-wide counting.
//
// No header is included: NVRTC (CuPy's compiler, and the test suite's) has no C++
// standard library, and the host emulation force-includes its shim before this file.
// Values travel as unsigned integers of their width (bfloat16 and float16 as 16-bit
// bits), exactly as the host kernels see them, so results match bit for bit.
#pragma once

namespace asp {

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef long long i64;

const u32 FULL = 0xffffffffu;

template <typename T>
__device__ __forceinline__ T mn(T a, T b) {
  return b < a ? b : a;
}

template <typename T>
__device__ __forceinline__ T mx(T a, T b) {
  return a < b ? b : a;
}

// -- bits as floating-point values (no standard library on either side) ------------------
#ifdef ARRAYSPARSE_EMULATE
inline float bits_to_float(u32 b) {
  float f;
  std::memcpy(&f, &b, sizeof f);
  return f;
}
inline double bits_to_double(u64 b) {
  double d;
  std::memcpy(&d, &b, sizeof d);
  return d;
}
#else
__device__ __forceinline__ float bits_to_float(u32 b) { return __int_as_float(int(b)); }
__device__ __forceinline__ double bits_to_double(u64 b) { return __longlong_as_double((long long)b); }
#endif

// float16 bits to float32 bits, exactly (subnormals normalised, inf and NaN kept)
__device__ __forceinline__ u32 half_to_f32_bits(u16 h) {
  const u32 sign = u32(h & 0x8000u) << 16;
  const u32 exp = (h >> 10) & 31u;
  u32 man = h & 1023u;
  if (exp == 31u) return sign | 0x7F800000u | (man << 13);
  if (exp != 0u) return sign | ((exp + 112u) << 23) | (man << 13);
  if (man == 0u) return sign;
  u32 shift = 0;
  while (!(man & 1024u)) {
    man <<= 1;
    ++shift;
  }
  return sign | ((113u - shift) << 23) | ((man & 1023u) << 13);
}

// float32 bits to float64, exactly, by integer operations only. CuPy compiles every kernel
// with -ftz=true, under which a float32 instruction (the cvt of double(f), a compare, an abs)
// flushes a subnormal to zero; no float32 instruction here means none can (a test reads the
// PTX). Subnormals become normal float64 values, inf and NaN keep their sign and payload.
__device__ __forceinline__ double f32_bits_to_double(u32 b) {
  const u64 sign = u64(b >> 31) << 63;
  const u32 exp = (b >> 23) & 0xFFu;
  const u64 man = b & 0x7FFFFFu;
  if (exp == 0xFFu) return bits_to_double(sign | (u64(0x7FF) << 52) | (man << 29));
  if (exp != 0u) return bits_to_double(sign | (u64(exp + 896u) << 52) | (man << 29));
  const double m = double(man) * 0x1p-149;  // subnormal or zero: man * 2^-149, exact in float64
  return sign ? -m : m;
}

// -- order keys (arraysparse/_kernels/cpu/keys.py) ------------------------------------------
// Unsigned order equals numeric order: floats flip by sign (-0.0 ranks with +0.0), signed
// integers flip their sign bit, magnitudes clear the sign (floats) or negate (integers, |MIN|
// fits). The mode is a run-time constant of a launch: the branch is uniform across a warp.
enum KeyMode { KEY_FLOAT = 0, KEY_SIGNED = 1, KEY_UNSIGNED = 2 };

template <typename U>
__device__ __forceinline__ U order_key(U b, int mode, int magnitude) {
  const U sign = U(U(1) << (sizeof(U) * 8 - 1));
  if (mode == KEY_FLOAT) {
    if (magnitude) return U(U(b & U(sign - U(1))) | sign);
    const U c = b == sign ? U(0) : b;
    return (c & sign) ? U(~c) : U(c | sign);
  }
  if (mode == KEY_SIGNED) {
    if (magnitude) {
      const U neg = (b & sign) ? U(~U(0)) : U(0);
      return U(U(b ^ neg) + U(neg & U(1)));
    }
    return U(b ^ sign);
  }
  return b;
}

// NaN as a bit pattern: exponent all ones, mantissa non-zero (``inf`` is the infinity's
// bits of the float of this width, or all ones for integers, which then never match)
template <typename U>
__device__ __forceinline__ bool is_nan_bits(U b, U inf) {
  const U sign = U(U(1) << (sizeof(U) * 8 - 1));
  return U(b & U(sign - U(1))) > inf;
}

// -- block-wide counting (blocks are whole warps, at most 1024 threads) ---------------------
// From one value per warp in ``per_warp`` (shared memory, written by one lane of each warp just
// before): the sum of the warps before this thread's, and of all of them in ``total``. Every
// thread of the block must call it (two barriers: after the writes, and before ``per_warp`` can
// be written again).
template <typename T>
__device__ __forceinline__ T warps_before(const T* per_warp, T& total) {
  __syncthreads();
  const u32 warp = threadIdx.x >> 5;
  const u32 warps = blockDim.x >> 5;
  T before = 0;
  T sum = 0;
  for (u32 w = 0; w < warps; ++w) {
    const T c = per_warp[w];
    before += w < warp ? c : T(0);
    sum += c;
  }
  __syncthreads();
  total = sum;
  return before;
}

// The exclusive rank of ``pred`` among the block's threads in thread order, and the block's
// count in ``total``. Every thread of the block must call it (it holds two barriers).
__device__ __forceinline__ u32 block_rank(bool pred, u32& total) {
  __shared__ u32 warp_counts[32];
  const u32 lane = threadIdx.x & 31u;
  const u32 warp = threadIdx.x >> 5;
  const u32 ballot = __ballot_sync(FULL, pred);
  if (lane == 0) warp_counts[warp] = u32(__popc(ballot));
  return warps_before(warp_counts, total) + u32(__popc(ballot & ((1u << lane) - 1u)));
}

template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
  for (int d = 16; d > 0; d >>= 1) v += __shfl_xor_sync(FULL, v, d);
  return v;
}

template <typename T>
__device__ __forceinline__ T warp_max(T v) {
  for (int d = 16; d > 0; d >>= 1) v = mx(v, __shfl_xor_sync(FULL, v, d));
  return v;
}

// Sum (or with ``is_max`` maximum) of one value per thread over the block, valid in every
// thread. Every thread of the block must call it.
__device__ __forceinline__ double block_reduce(double v, bool is_max) {
  __shared__ double partial[32];
  const u32 lane = threadIdx.x & 31u;
  const u32 warp = threadIdx.x >> 5;
  v = is_max ? warp_max(v) : warp_sum(v);
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  double r = 0.0;
  const u32 warps = blockDim.x >> 5;
  for (u32 w = 0; w < warps; ++w) r = is_max ? mx(r, partial[w]) : r + partial[w];
  __syncthreads();
  return r;
}

// Inclusive prefix sum of one u64 per thread over the block (thread order), and the total.
__device__ __forceinline__ u64 block_inclusive_sum(u64 v, u64& total) {
  __shared__ u64 warp_totals[32];
  const u32 lane = threadIdx.x & 31u;
  const u32 warp = threadIdx.x >> 5;
  for (u32 d = 1; d < 32; d <<= 1) {
    const u64 up = __shfl_up_sync(FULL, v, d);
    if (lane >= d) v += up;
  }
  if (lane == 31) warp_totals[warp] = v;
  return warps_before(warp_totals, total) + v;
}

// The grid's threads as one flat range (grid-stride loops)
__device__ __forceinline__ i64 global_thread() { return i64(blockIdx.x) * i64(blockDim.x) + i64(threadIdx.x); }
__device__ __forceinline__ i64 grid_threads() { return i64(gridDim.x) * i64(blockDim.x); }

}  // namespace asp
