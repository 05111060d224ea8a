// The packed-panel product for AVX-512 (compiled with -mavx512f -mfma; model/CMakeLists.txt):
// 6 rows x 2 panels of 16 in 12 of the 32 vector registers; a row or two x 8 panels.
#include "model/kernels/packed_gemm.h"

#define MIXSERVE_GEMM_NAME PackedGemmAvx512
#define MIXSERVE_GEMM_ROWS 6
#define MIXSERVE_GEMM_WIDE 8
#include "model/kernels/packed_gemm_kernel.inc"
