// The packed-panel product for AVX2 (compiled with -mavx2 -mfma; model/CMakeLists.txt): a
// panel row is two 8-float registers, so 3 rows x 2 panels take 12 of the 16; a row or two
// x 4 panels.
#include "model/kernels/packed_gemm.h"

#define MIXSERVE_GEMM_NAME PackedGemmAvx2
#define MIXSERVE_GEMM_ROWS 3
#define MIXSERVE_GEMM_WIDE 4
#include "model/kernels/packed_gemm_kernel.inc"
