// Lp norms of slices and of blocks, accumulated in float64 (arraysparse/_kernels/cpu/norms.py).
//
// ``ord`` 1 and 2 avoid pow, inf takes the maximum; any other positive p uses pow. The sums
// run in another order than the CPU's (a block reduction), so results agree with the CPU
// kernels to rounding, not bit for bit; the maximum (inf) is exact.
//
// Values arrive as their bits; the template argument D names the dtype:
// 0 float16, 1 bfloat16, 2 float32, 3 float64, 4..7 int8..int64, 8..11 uint8..uint64.
#include "common.cuh"

namespace asp {

template <int D>
struct Value;
template <> struct Value<0> { typedef u16 U; static __device__ __forceinline__ double get(U b) { return f32_bits_to_double(half_to_f32_bits(b)); } };
template <> struct Value<1> { typedef u16 U; static __device__ __forceinline__ double get(U b) { return f32_bits_to_double(u32(b) << 16); } };
template <> struct Value<2> { typedef u32 U; static __device__ __forceinline__ double get(U b) { return f32_bits_to_double(b); } };
template <> struct Value<3> { typedef u64 U; static __device__ __forceinline__ double get(U b) { return bits_to_double(b); } };
template <> struct Value<4> { typedef u8 U; static __device__ __forceinline__ double get(U b) { return double((signed char)b); } };
template <> struct Value<5> { typedef u16 U; static __device__ __forceinline__ double get(U b) { return double(short(b)); } };
template <> struct Value<6> { typedef u32 U; static __device__ __forceinline__ double get(U b) { return double(int(b)); } };
template <> struct Value<7> { typedef u64 U; static __device__ __forceinline__ double get(U b) { return double((long long)b); } };
template <> struct Value<8> { typedef u8 U; static __device__ __forceinline__ double get(U b) { return double(b); } };
template <> struct Value<9> { typedef u16 U; static __device__ __forceinline__ double get(U b) { return double(b); } };
template <> struct Value<10> { typedef u32 U; static __device__ __forceinline__ double get(U b) { return double(b); } };
template <> struct Value<11> { typedef u64 U; static __device__ __forceinline__ double get(U b) { return double(b); } };

__device__ __forceinline__ double norm_term(double v, double p) {
  const double a = v < 0.0 ? -v : v;
  if (p == 1.0) return a;
  if (p == 2.0) return a * a;
  return pow(a, p);
}

__device__ __forceinline__ double norm_root(double s, double p, int is_max) {
  if (is_max || p == 1.0) return s;
  if (p == 2.0) return sqrt(s);
  return pow(s, 1.0 / p);
}

// out[a] = the norm of x[:, a, :] of the (outer, count, inner) view; a block per slice
template <int D>
__global__ void slice_norms(const typename Value<D>::U* __restrict__ x, i64 outer, i64 count, i64 inner, double p,
                            int is_max, double* __restrict__ out) {
  const i64 per = outer * inner;
  for (i64 a = blockIdx.x; a < count; a += gridDim.x) {  // uniform over the block
    double acc = 0.0;
    for (i64 e = threadIdx.x; e < per; e += blockDim.x) {
      const i64 o = e / inner;
      const double t = norm_term(Value<D>::get(x[(o * count + a) * inner + (e - o * inner)]), p);
      acc = is_max ? mx(acc, t) : acc + t;
    }
    const double s = block_reduce(acc, is_max != 0);
    if (threadIdx.x == 0) out[a] = norm_root(s, p, is_max);
  }
}

// out[q, i, j] = the norm of x[q, i, :, j, :] of the (lead, n1, b1, n2, b2) view; a thread per tile
template <int D>
__global__ void block_norms(const typename Value<D>::U* __restrict__ x, i64 lead, i64 n1, i64 b1, i64 n2, i64 b2,
                            double p, int is_max, double* __restrict__ out) {
  const i64 cols = n2 * b2;
  for (i64 t = global_thread(); t < lead * n1 * n2; t += grid_threads()) {
    const i64 qi = t / n2;  // q * n1 + i
    const i64 j = t - qi * n2;
    const i64 first = qi * b1 * cols + j * b2;
    double acc = 0.0;
    for (i64 r = 0; r < b1; ++r) {
      for (i64 c = 0; c < b2; ++c) {
        const double v = norm_term(Value<D>::get(x[first + r * cols + c]), p);
        acc = is_max ? mx(acc, v) : acc + v;
      }
    }
    out[t] = norm_root(acc, p, is_max);
  }
}

}  // namespace asp
