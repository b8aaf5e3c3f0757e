// CUTLASS's 2:4 layout (torch's *_cutlass conversions), byte for byte as
// arraysparse/_kernels/cpu/cutlass.py.
//
// One thread per meta word: it reads the word's groups (4 codes a 16-bit word, 8 an int8's
// 32-bit word), keeps their values, packs their 4-bit codes idx0 | idx1 << 2 little-endian,
// and stores the word where CUTLASS's interleaved order puts it (torch's
// _calculate_meta_reordering_scatter_offsets, as meta_targets in reference_formats.py).
// Kinds: 0 = 16-bit values (float16, bfloat16) in groups of 4; 1 = int8, groups of 4;
// 2 = float32 in pairs (1:2, as the hardware reads it).
#include "common.cuh"

namespace asp {

template <int KIND>
struct Cut;

template <>
struct Cut<0> {
  typedef u16 Lane;
  typedef u16 Meta;
  static const int LANES = 4, CPW = 4, BAND = 32, IW = 4;
  static const u32 NZ = 0x7FFFu;  // floats: the sign bit does not make a value non-zero
};

template <>
struct Cut<1> {
  typedef u8 Lane;
  typedef u32 Meta;
  static const int LANES = 4, CPW = 8, BAND = 16, IW = 2;
  static const u32 NZ = 0xFFu;
};

template <>
struct Cut<2> {
  typedef u32 Lane;
  typedef u16 Meta;
  static const int LANES = 2, CPW = 4, BAND = 32, IW = 4;
  static const u32 NZ = 0x7FFFFFFFu;
};

// Where meta word (i, j) of a (rows, ncols) meta matrix is stored (flat)
template <int KIND>
__device__ __forceinline__ i64 meta_target(i64 i, i64 j, i64 rows) {
  const int band = Cut<KIND>::BAND;
  const int iw = Cut<KIND>::IW;
  i64 r = i / band * band + (i % 8) * iw + (i % band) / 8;
  i64 c = j;
  if ((r & 1) == 0 && (c & 1) == 1) {
    ++r;
    --c;
  } else if ((r & 1) == 1 && (c & 1) == 0) {
    --r;
    ++c;
  }
  return (c >> 1) * rows * 2 + r * 2 + (c & 1);
}

// values (rows, cols / 2), meta in CUTLASS order; bad[0] gets the first group with too many
// non-zeros as (row * groups + group) << 3 | its non-zeros
template <int KIND>
__global__ void cutlass_encode(const typename Cut<KIND>::Lane* __restrict__ dense, i64 rows, i64 cols,
                               typename Cut<KIND>::Lane* __restrict__ values, typename Cut<KIND>::Meta* __restrict__ meta,
                               u64* __restrict__ bad) {
  typedef Cut<KIND> K;
  typedef typename K::Lane Lane;
  const i64 groups = cols / K::LANES;
  const i64 ncols = groups / K::CPW;
  for (i64 t = global_thread(); t < rows * ncols; t += grid_threads()) {
    const i64 i = t / ncols;
    const i64 j = t - i * ncols;
    u32 word = 0;
    for (int q = 0; q < K::CPW; ++q) {
      const i64 g = j * K::CPW + q;
      const Lane* v = dense + i * cols + g * K::LANES;
      Lane* out = values + i * (cols / 2) + g * (K::LANES / 2);
      u32 code;
      if constexpr (K::LANES == 4) {
        const u32 f0 = (v[0] & K::NZ) != 0u, f1 = (v[1] & K::NZ) != 0u;
        const u32 f2 = (v[2] & K::NZ) != 0u, f3 = (v[3] & K::NZ) != 0u;
        const u32 n0 = 1u - f0, n1 = 1u - f1;
        const u32 i0 = (n0 & f1) | ((n0 & n1) << 1);  // torch's Espresso formulas; f2 is not read
        const u32 i1 = (f0 & f1) | (n0 & n1) | f3 | (((n0 & f1) | n1) << 1);
        if (f0 + f1 + f2 + f3 > 2u) atomicMin(bad, (u64(i * groups + g) << 3) | u64(f0 + f1 + f2 + f3));
        out[0] = v[i0];
        out[1] = v[i1];
        code = i0 | (i1 << 2);
      } else {
        const u32 f0 = (v[0] & K::NZ) != 0u, f1 = (v[1] & K::NZ) != 0u;
        if (f0 & f1) atomicMin(bad, (u64(i * groups + g) << 3) | 2ull);
        out[0] = f0 ? v[0] : v[1];
        code = f0 ? 4u : 14u;
      }
      word |= code << (4 * q);
    }
    meta[meta_target<KIND>(i, j, rows)] = typename K::Meta(word);
  }
}

// The dense (rows, cols) lanes of values and meta; bad[0] gets the first code no encoder
// writes as (row * groups + group) << 4 | code
template <int KIND>
__global__ void cutlass_decode(const typename Cut<KIND>::Lane* __restrict__ values,
                               const typename Cut<KIND>::Meta* __restrict__ meta, i64 rows, i64 cols,
                               typename Cut<KIND>::Lane* __restrict__ dense, u64* __restrict__ bad) {
  typedef Cut<KIND> K;
  typedef typename K::Lane Lane;
  const i64 groups = cols / K::LANES;
  const i64 ncols = groups / K::CPW;
  for (i64 t = global_thread(); t < rows * ncols; t += grid_threads()) {
    const i64 i = t / ncols;
    const i64 j = t - i * ncols;
    const u32 word = u32(meta[meta_target<KIND>(i, j, rows)]);
    for (int q = 0; q < K::CPW; ++q) {
      const i64 g = j * K::CPW + q;
      const u32 code = (word >> (4 * q)) & 15u;
      const Lane* v = values + i * (cols / 2) + g * (K::LANES / 2);
      Lane* out = dense + i * cols + g * K::LANES;
      if constexpr (K::LANES == 4) {
        const u32 i0 = code & 3u, i1 = code >> 2;
        if (i0 >= i1) atomicMin(bad, (u64(i * groups + g) << 4) | u64(code));
        for (u32 k = 0; k < 4; ++k) out[k] = k == i0 ? v[0] : (k == i1 ? v[1] : Lane(0));
      } else {
        const bool second = code == 14u;
        if (code != 4u && !second) atomicMin(bad, (u64(i * groups + g) << 4) | u64(code));
        out[0] = second ? Lane(0) : v[0];
        out[1] = second ? v[0] : Lane(0);
      }
    }
  }
}

// meta in CUTLASS order from 4-bit codes (rows, groups), and back
template <int KIND>
__global__ void cutlass_pack_codes(const u8* __restrict__ codes, i64 rows, i64 groups,
                                   typename Cut<KIND>::Meta* __restrict__ meta) {
  typedef Cut<KIND> K;
  const i64 ncols = groups / K::CPW;
  for (i64 t = global_thread(); t < rows * ncols; t += grid_threads()) {
    const i64 i = t / ncols;
    const i64 j = t - i * ncols;
    u32 word = 0;
    for (int q = 0; q < K::CPW; ++q) word |= u32(codes[i * groups + j * K::CPW + q]) << (4 * q);
    meta[meta_target<KIND>(i, j, rows)] = typename K::Meta(word);
  }
}

template <int KIND>
__global__ void cutlass_unpack_codes(const typename Cut<KIND>::Meta* __restrict__ meta, i64 rows, i64 groups,
                                     u8* __restrict__ codes) {
  typedef Cut<KIND> K;
  const i64 ncols = groups / K::CPW;
  for (i64 t = global_thread(); t < rows * ncols; t += grid_threads()) {
    const i64 i = t / ncols;
    const i64 j = t - i * ncols;
    const u32 word = u32(meta[meta_target<KIND>(i, j, rows)]);
    for (int q = 0; q < K::CPW; ++q) codes[i * groups + j * K::CPW + q] = u8((word >> (4 * q)) & 15u);
  }
}

}  // namespace asp
