#include "model/kernels/packed_gemm.h"

namespace mixserve::model::kernels {

#if defined(MIXSERVE_PACKED_GEMM)
namespace {
PackedGemmFn Detect(const char** isa) {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma")) {
    *isa = "avx512";
    return &PackedGemmAvx512;
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    *isa = "avx2";
    return &PackedGemmAvx2;
  }
  *isa = "none";
  return nullptr;
}
struct Chosen {
  const char* isa = "none";
  PackedGemmFn fn = Detect(&isa);
};
const Chosen& Choice() {
  static const Chosen c;
  return c;
}
}  // namespace

PackedGemmFn PackedGemmKernel() { return Choice().fn; }
const char* PackedGemmIsa() { return Choice().isa; }
#else
PackedGemmFn PackedGemmKernel() { return nullptr; }
const char* PackedGemmIsa() { return "none"; }
#endif

}  // namespace mixserve::model::kernels
