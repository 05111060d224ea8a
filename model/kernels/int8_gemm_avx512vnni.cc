// The int8 product and the quantization of its inputs for AVX-512 VNNI (compiled with
// -mavx512f -mavx512bw -mavx512vnni; model/CMakeLists.txt): 4 rows x 4 panels of 16 int32
// sums in 16 of the 32 vector registers; a row or two x 8 panels. The epilogue performs the
// portable kernel's float operations in the same order, so both give the same results.
// Intrinsics only (always inlined): nothing the linker could share with code compiled for
// other CPUs. Conversions, minima and maxima in their zero-masked forms (all lanes): GCC 12
// warns that the unmasked ones read an uninitialized value (their undefined pass-through).
#include <immintrin.h>

#include "model/kernels/int8_gemm.h"

namespace mixserve::model::kernels {
namespace {

constexpr __mmask16 kAll = 0xFFFF;

__attribute__((always_inline)) inline __mmask16 Mask(int64_t width) {
  return width >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << width) - 1);
}

// Rows [r0, r0 + R) times panels [p0, p0 + P).
template <int R, int P>
inline void Tile(const Int8GemmArgs& a, int64_t r0, int64_t p0) {
  const int8_t* panel[P];
  for (int p = 0; p < P; ++p) panel[p] = a.panels + (p0 + p) * a.quads * kInt8Panel * kInt8Quad;
  const uint8_t* x[R];
  for (int r = 0; r < R; ++r) x[r] = a.x + (r0 + r) * a.ldx;
  __m512i acc[R][P];
  for (int r = 0; r < R; ++r)
    for (int p = 0; p < P; ++p) acc[r][p] = _mm512_setzero_si512();
  for (int64_t kq = 0; kq < a.quads; ++kq) {
    __m512i w[P];
    for (int p = 0; p < P; ++p) w[p] = _mm512_loadu_si512(panel[p] + kq * kInt8Panel * kInt8Quad);
    for (int r = 0; r < R; ++r) {
      int32_t four;
      __builtin_memcpy(&four, x[r] + kq * kInt8Quad, sizeof four);
      const __m512i xb = _mm512_set1_epi32(four);
      for (int p = 0; p < P; ++p) acc[r][p] = _mm512_dpbusd_epi32(acc[r][p], xb, w[p]);
    }
  }
  for (int p = 0; p < P; ++p) {
    const int64_t col = (p0 + p) * kInt8Panel;
    const __mmask16 m = Mask(a.out - col);
    const __m512i shift = _mm512_loadu_si512(a.shift + col);
    const __m512 ws = _mm512_loadu_ps(a.w_scale + col);
    const __m512 b = a.bias ? _mm512_maskz_loadu_ps(m, a.bias + col) : _mm512_setzero_ps();
    for (int r = 0; r < R; ++r) {
      const __m512 s = _mm512_mul_ps(_mm512_set1_ps(a.x_scale[r0 + r]), ws);
      const __m512i sums = _mm512_sub_epi32(acc[r][p], shift);
      __m512 v = _mm512_mul_ps(_mm512_maskz_cvtepi32_ps(kAll, sums), s);
      if (a.bias) v = _mm512_add_ps(v, b);
      float* y = a.y + (r0 + r) * a.ldy + col;
      if (a.accumulate) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, y));
      if (a.relu) v = _mm512_maskz_max_ps(kAll, v, _mm512_setzero_ps());
      _mm512_mask_storeu_ps(y, m, v);
    }
  }
}

// The rows left over after whole tiles: `left` (fewer than N + 1) rows from r.
template <int N, int P>
inline void Tail(const Int8GemmArgs& a, int64_t r, int64_t left, int64_t p0) {
  if constexpr (N > 0) {
    if (left == N) return Tile<N, P>(a, r, p0);
    Tail<N - 1, P>(a, r, left, p0);
  }
}

template <int R, int P>
inline void Rows(const Int8GemmArgs& a, int64_t r0, int64_t r1, int64_t p0) {
  int64_t r = r0;
  for (; r + R <= r1; r += R) Tile<R, P>(a, r, p0);
  Tail<R - 1, P>(a, r, r1 - r, p0);
}

}  // namespace

void Int8GemmAvx512Vnni(const Int8GemmArgs& a, int64_t row_begin, int64_t row_end,
                        int64_t panel_begin, int64_t panel_end) {
  int64_t p = panel_begin;
  if (row_end - row_begin < 3) {
    for (; p + 8 <= panel_end; p += 8) Rows<2, 8>(a, row_begin, row_end, p);
  } else {
    for (; p + 4 <= panel_end; p += 4) Rows<4, 4>(a, row_begin, row_end, p);
  }
  for (; p + 2 <= panel_end; p += 2) Rows<4, 2>(a, row_begin, row_end, p);
  if (p < panel_end) Rows<4, 1>(a, row_begin, row_end, p);
}

void QuantizeRowsAvx512(const float* x, int64_t ldx, int64_t rows, int64_t in, uint8_t* q,
                        int64_t ldq, float* scale) {
  const __m512 lo = _mm512_set1_ps(-127.0f), hi = _mm512_set1_ps(127.0f);
  const __m512i shift = _mm512_set1_epi32(kInt8Shift);
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * ldx;
    uint8_t* qr = q + r * ldq;
    __m512 mv = _mm512_setzero_ps();
    for (int64_t k = 0; k < in; k += 16)
      mv = _mm512_maskz_max_ps(kAll, mv,
                               _mm512_abs_ps(_mm512_maskz_loadu_ps(Mask(in - k), xr + k)));
    float lanes[16];
    _mm512_storeu_ps(lanes, mv);
    float m = 0;
    for (float l : lanes) m = l > m ? l : m;
    const float inv = m > 0 ? 127.0f / m : 0.0f;
    scale[r] = m / 127.0f;
    const __m512 iv = _mm512_set1_ps(inv);
    for (int64_t k = 0; k < in; k += 16) {
      const __mmask16 mk = Mask(in - k);
      __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(mk, xr + k), iv);
      v = _mm512_maskz_min_ps(kAll, _mm512_maskz_max_ps(kAll, v, lo), hi);
      const __m512i i = _mm512_add_epi32(_mm512_maskz_cvtps_epi32(kAll, v), shift);
      _mm512_mask_cvtepi32_storeu_epi8(qr + k, mk, i);
    }
    for (int64_t k = in; k < ldq; ++k) qr[k] = static_cast<uint8_t>(kInt8Shift);
  }
}

}  // namespace mixserve::model::kernels
