// N:M compression with packed positions (the layout of docs/formats.md; the CPU kernels
// are nm_pack / nm_scatter / nm_positions in arraysparse/_kernels/cpu/sparse.py).
//
// A row's groups write one little-endian bit stream, ``gb`` bits a group (``keep``
// positions of ``b`` bits, or the group's m-bit mask). ``L`` consecutive groups fill a
// whole number of bytes (L * gb = lcm(gb, 8)), so a thread takes one such *unit*: it owns
// the unit's bytes outright (no atomics, no zeroing pass), writes every one of them (the
// row's last, partial unit pads with zero bits) and reads or writes its groups' values.
//
// Encoding: a group keeps its non-zeros plus, where it has fewer than ``keep``, zero slots
// taken in the order n, n+1, ..., m-1, 0, ..., n-1, in ascending position order. A group
// with more non-zeros than ``keep`` is a violation: bad[0] gets the smallest
// (row * groups + group) << 9 | its non-zeros. Decoding validates every field (positions
// ascending and below m; a mask with ``keep`` bits set): bad[0] gets the first bad group.
#include "common.cuh"

namespace asp {

const int NM_WORDS = 8;  // m <= 256: a group's mask in eight 32-bit words

struct BitWriter {
  u8* out;
  i64 at;
  i64 end;
  u64 acc;
  int nacc;

  __device__ __forceinline__ void put(u32 field, int width) {  // width <= 32
    acc |= u64(field) << nacc;
    nacc += width;
    while (nacc >= 8) {
      out[at++] = u8(acc);
      acc >>= 8;
      nacc -= 8;
    }
  }

  __device__ __forceinline__ void finish() {  // the unit's last byte, zero-padded
    while (at < end) {
      out[at++] = u8(acc);
      acc >>= 8;
    }
  }
};

struct BitReader {
  const u8* in;
  i64 at;
  u64 acc;
  int nacc;

  __device__ __forceinline__ u32 get(int width) {  // width <= 32; reads a byte only when needed
    while (nacc < width) {
      acc |= u64(in[at++]) << nacc;
      nacc += 8;
    }
    const u32 field = width == 32 ? u32(acc) : u32(acc & ((1ull << width) - 1ull));
    acc >>= width;
    nacc -= width;
    return field;
  }
};

template <typename U>
__global__ void nm_pack(const U* __restrict__ x, i64 rows, i64 cols, U nz, int n, int m, int b, int bitmask,
                        int gb, int per_unit, i64 row_bytes, U* __restrict__ values, u8* __restrict__ packed,
                        u64* __restrict__ bad) {
  const i64 groups = cols / m;
  const int keep = m - n;
  const i64 units_per_row = (groups + per_unit - 1) / per_unit;
  const i64 unit_bytes = i64(gb) * per_unit / 8;
  for (i64 t = global_thread(); t < rows * units_per_row; t += grid_threads()) {
    const i64 r = t / units_per_row;
    const i64 k = t - r * units_per_row;
    const i64 g0 = k * per_unit;
    const i64 g1 = mn(groups, g0 + per_unit);
    BitWriter w{packed + r * row_bytes, k * unit_bytes, mn(row_bytes, (k + 1) * unit_bytes), 0ull, 0};
    for (i64 g = g0; g < g1; ++g) {
      const U* src = x + r * cols + g * m;
      u32 taken[NM_WORDS];
      for (int q = 0; q < NM_WORDS; ++q) taken[q] = 0;
      int nnz = 0;
      for (int i = 0; i < m; ++i) {
        const bool on = U(src[i] & nz) != U(0);
        taken[i >> 5] |= u32(on) << (i & 31);
        nnz += on;
      }
      if (nnz > keep) {
        atomicMin(bad, (u64(r * groups + g) << 9) | u64(nnz));
        continue;
      }
      int need = keep - nnz;
      for (int i = n; need > 0; i = i + 1 == m ? 0 : i + 1) {
        if (!((taken[i >> 5] >> (i & 31)) & 1u)) {
          taken[i >> 5] |= 1u << (i & 31);
          --need;
        }
      }
      U* dst = values + (r * groups + g) * keep;
      int s = 0;
      for (int q = 0; q * 32 < m; ++q) {
        u32 word = taken[q];
        while (word) {
          const int i = q * 32 + __ffs(int(word)) - 1;
          word &= word - 1u;
          dst[s++] = src[i];
          if (!bitmask) w.put(u32(i), b);
        }
      }
      if (bitmask) {
        for (int q = 0; q * 32 < m; ++q) w.put(taken[q], mn(32, m - 32 * q));
      }
    }
    w.finish();
  }
}

// One unit's groups back: with ``dense`` the (rows, cols) bits (every item written), else
// each kept value's position (uint8, rows x groups * keep).
template <typename U>
__global__ void nm_unpack(const U* __restrict__ values, const u8* __restrict__ packed, i64 rows, i64 cols, int m,
                          int keep, int b, int bitmask, int gb, int per_unit, i64 row_bytes, int dense,
                          U* __restrict__ out, u8* __restrict__ positions, u64* __restrict__ bad) {
  const i64 groups = cols / m;
  const i64 units_per_row = (groups + per_unit - 1) / per_unit;
  const i64 unit_bytes = i64(gb) * per_unit / 8;
  for (i64 t = global_thread(); t < rows * units_per_row; t += grid_threads()) {
    const i64 r = t / units_per_row;
    const i64 k = t - r * units_per_row;
    const i64 g0 = k * per_unit;
    const i64 g1 = mn(groups, g0 + per_unit);
    BitReader rd{packed + r * row_bytes, k * unit_bytes, 0ull, 0};
    for (i64 g = g0; g < g1; ++g) {
      u8 pos[256];
      bool ok = true;
      int count = 0;
      if (bitmask) {
        for (int q = 0; q * 32 < m; ++q) {
          u32 word = rd.get(mn(32, m - 32 * q));
          while (word) {
            const int i = q * 32 + __ffs(int(word)) - 1;
            word &= word - 1u;
            if (count < keep) pos[count] = u8(i);
            ++count;
          }
        }
        ok = count == keep;
      } else {
        int prev = -1;
        for (int s = 0; s < keep; ++s) {
          const int p = int(rd.get(b));
          ok = ok && p > prev && p < m;
          prev = p;
          pos[s] = u8(p);
        }
      }
      if (!ok) {
        atomicMin(bad, u64(r * groups + g));
        continue;
      }
      const i64 first = (r * groups + g) * keep;
      if (dense) {
        U* dst = out + r * cols + g * m;
        int c = 0;
        for (int i = 0; i < m; ++i) {
          const bool kept = c < keep && int(pos[c]) == i;
          dst[i] = kept ? values[first + c] : U(0);
          c += kept;
        }
      } else {
        for (int s = 0; s < keep; ++s) positions[first + s] = pos[s];
      }
    }
  }
}

}  // namespace asp
