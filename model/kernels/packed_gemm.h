#pragma once
// Matrix products on the CPU in fp32 against weights packed beforehand into column panels,
// for inference (model/cpu_linear.h is the LibTorch-facing side). A panel holds 16 output
// columns for every input: panels[p][k][j] = W[16 p + j][k] for W [out, in], the last panel
// zero-padded. The kernels keep a tile of rows times two panels in vector registers across
// the whole input dimension, so nothing is packed per call (OpenBLAS packs the weight on every
// product, which at the few rows of a decoding step costs as much as the arithmetic).
//
// Plain C++ without LibTorch or standard-library templates: the kernels are compiled once per
// instruction set (packed_gemm_avx512.cc, packed_gemm_avx2.cc) and picked at run time.
#include <cstdint>

namespace mixserve::model::kernels {

inline constexpr int64_t kPanel = 16;  // output columns per panel

struct PackedGemmArgs {
  const float* x = nullptr;  // rows x in, row stride ldx (the rows: the kernel's arguments)
  int64_t ldx = 0;
  int64_t in = 0;
  const float* panels = nullptr;  // all panels of the weight
  int64_t out = 0;                // output columns of the weight
  const float* bias = nullptr;    // [out] or null
  float* y = nullptr;             // rows x out, row stride ldy
  int64_t ldy = 0;
  bool accumulate = false;  // y += x W^T (+ bias) instead of y = x W^T (+ bias)
  bool relu = false;        // max(0, .) on the result
};

// Computes rows [row_begin, row_end) and panels [panel_begin, panel_end) of the product.
using PackedGemmFn = void (*)(const PackedGemmArgs&, int64_t row_begin, int64_t row_end,
                              int64_t panel_begin, int64_t panel_end);

// The kernel for this CPU (AVX-512 or AVX2 with FMA), or null where there is none (other
// CPUs, other architectures): callers then multiply with BLAS.
PackedGemmFn PackedGemmKernel();
// "avx512", "avx2" or "none".
const char* PackedGemmIsa();

// Per instruction set; defined only where compiled (x86-64).
void PackedGemmAvx512(const PackedGemmArgs&, int64_t, int64_t, int64_t, int64_t);
void PackedGemmAvx2(const PackedGemmArgs&, int64_t, int64_t, int64_t, int64_t);

}  // namespace mixserve::model::kernels
