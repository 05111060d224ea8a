#include "model/kernels/int8_gemm.h"

namespace mixserve::model::kernels {

#if defined(MIXSERVE_INT8_VNNI)
void QuantizeRowsAvx512(const float*, int64_t, int64_t, int64_t, uint8_t*, int64_t, float*);
#endif

namespace {

void QuantizeRowsPortable(const float* x, int64_t ldx, int64_t rows, int64_t in, uint8_t* q,
                          int64_t ldq, float* scale) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * ldx;
    uint8_t* qr = q + r * ldq;
    float m = 0;
    for (int64_t k = 0; k < in; ++k) {
      const float a = xr[k] < 0 ? -xr[k] : xr[k];
      m = a > m ? a : m;
    }
    const float inv = m > 0 ? 127.0f / m : 0.0f;
    scale[r] = m / 127.0f;
    for (int64_t k = 0; k < in; ++k) {
      float v = xr[k] * inv;
      v = v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v;
      // Round half to even, as the vector kernel's conversion does.
      qr[k] = static_cast<uint8_t>(static_cast<int32_t>(__builtin_nearbyintf(v)) + kInt8Shift);
    }
    for (int64_t k = in; k < ldq; ++k) qr[k] = static_cast<uint8_t>(kInt8Shift);
  }
}

struct Chosen {
  const char* isa = "portable";
  Int8GemmFn gemm = &Int8GemmPortable;
  bool vnni = false;
  Chosen() {
#if defined(MIXSERVE_INT8_VNNI)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vnni")) {
      isa = "avx512vnni";
      gemm = &Int8GemmAvx512Vnni;
      vnni = true;
    }
#endif
  }
};
const Chosen& Choice() {
  static const Chosen c;
  return c;
}

}  // namespace

void QuantizeRows(const float* x, int64_t ldx, int64_t rows, int64_t in, uint8_t* q,
                  int64_t ldq, float* scale) {
#if defined(MIXSERVE_INT8_VNNI)
  if (Choice().vnni) return QuantizeRowsAvx512(x, ldx, rows, in, q, ldq, scale);
#endif
  QuantizeRowsPortable(x, ldx, rows, in, q, ldq, scale);
}

Int8GemmFn Int8GemmKernel() { return Choice().gemm; }
const char* Int8GemmIsa() { return Choice().isa; }

void Int8GemmPortable(const Int8GemmArgs& a, int64_t row_begin, int64_t row_end,
                      int64_t panel_begin, int64_t panel_end) {
  for (int64_t r = row_begin; r < row_end; ++r) {
    const uint8_t* x = a.x + r * a.ldx;
    for (int64_t p = panel_begin; p < panel_end; ++p) {
      const int8_t* panel = a.panels + p * a.quads * kInt8Panel * kInt8Quad;
      int32_t acc[kInt8Panel] = {};
      for (int64_t kq = 0; kq < a.quads; ++kq) {
        const uint8_t* xq = x + kq * kInt8Quad;
        const int8_t* w = panel + kq * kInt8Panel * kInt8Quad;
        for (int64_t j = 0; j < kInt8Panel; ++j)
          for (int64_t i = 0; i < kInt8Quad; ++i)
            acc[j] += static_cast<int32_t>(xq[i]) * static_cast<int32_t>(w[j * kInt8Quad + i]);
      }
      const int64_t col = p * kInt8Panel;
      const int64_t width = a.out - col < kInt8Panel ? a.out - col : kInt8Panel;
      for (int64_t j = 0; j < width; ++j) {
        const float s = a.x_scale[r] * a.w_scale[col + j];
        float v = static_cast<float>(acc[j] - a.shift[col + j]) * s;
        if (a.bias) v = v + a.bias[col + j];
        float* y = a.y + r * a.ldy + col + j;
        if (a.accumulate) v = v + *y;
        if (a.relu) v = v > 0 ? v : 0.0f;
        *y = v;
      }
    }
  }
}

}  // namespace mixserve::model::kernels
