#pragma once
// Matrix products on the CPU with int8 weights and int8 activations (model/cpu_linear.h is the
// LibTorch-facing side): y = (x_q W_q^T) * s_x * s_w + b, where each weight row (output
// column) has its own scale s_w = max|w| / 127 and each input row is quantized when the
// product runs, with its own scale s_x = max|x| / 127.
//
// The products accumulate in int32 with AVX-512 VNNI (vpdpbusd: unsigned bytes times signed
// bytes, four at a time). Its first operand is unsigned, so inputs are stored shifted by 128
// (u = q + 128) and the shift is taken back in the epilogue: sum u w = sum q w + 128 sum w,
// the second term precomputed per output column. Every CPU has the portable kernel, which
// computes the same integers (and the same floats from them) without vector instructions.
//
// Layout: weights in panels of 16 output columns and quads of 4 inputs,
// panels[p][k / 4][j][k % 4] = W_q[16 p + j][k], zero-padded to whole panels and quads; a
// quantized input row is `quads * 4` bytes, its padding bytes multiplied by zero weights.
//
// Plain C++ without LibTorch or standard-library templates: the VNNI kernel is compiled with
// its own instruction-set flags (int8_gemm_avx512vnni.cc) and chosen at run time.
#include <cstdint>

namespace mixserve::model::kernels {

inline constexpr int64_t kInt8Panel = 16;  // output columns per panel
inline constexpr int64_t kInt8Quad = 4;    // inputs per 32-bit lane
inline constexpr int32_t kInt8Shift = 128;

struct Int8GemmArgs {
  const uint8_t* x = nullptr;       // rows x (quads * 4) shifted bytes, row stride ldx bytes
  int64_t ldx = 0;
  const float* x_scale = nullptr;   // [rows]
  int64_t quads = 0;                // inputs / 4, rounded up
  const int8_t* panels = nullptr;   // all panels of the weight
  const int32_t* shift = nullptr;   // [panels * 16]: 128 * sum_k W_q[j][k]
  const float* w_scale = nullptr;   // [panels * 16]
  int64_t out = 0;                  // output columns of the weight
  const float* bias = nullptr;      // [out] or null
  float* y = nullptr;               // rows x out, row stride ldy
  int64_t ldy = 0;
  bool accumulate = false;          // y += ... instead of y = ...
  bool relu = false;                // max(0, .) on the result
};

// Computes rows [row_begin, row_end) and panels [panel_begin, panel_end) of the product.
using Int8GemmFn = void (*)(const Int8GemmArgs&, int64_t row_begin, int64_t row_end,
                            int64_t panel_begin, int64_t panel_end);

// Quantizes `rows` rows of `in` floats (row stride ldx) into shifted bytes (row stride ldq,
// at least quads * 4; the padding bytes are written as the shift, i.e. zero) and their scales.
void QuantizeRows(const float* x, int64_t ldx, int64_t rows, int64_t in, uint8_t* q,
                  int64_t ldq, float* scale);

// The VNNI kernel where the CPU has AVX-512 VNNI, else the portable one (never null).
Int8GemmFn Int8GemmKernel();
// "avx512vnni" or "portable".
const char* Int8GemmIsa();

void Int8GemmPortable(const Int8GemmArgs&, int64_t, int64_t, int64_t, int64_t);
// Defined only where compiled (x86-64).
void Int8GemmAvx512Vnni(const Int8GemmArgs&, int64_t, int64_t, int64_t, int64_t);

}  // namespace mixserve::model::kernels
