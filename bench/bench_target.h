// Device and dtype of the benchmark programs: `--device cpu|cuda[:N]`, `--dtype fp32|fp16|bf16`,
// and `--dtype int8` (CPU) in programs that set BenchTarget::int8_allowed.
#pragma once

#include <torch/cuda.h>
#include <torch/torch.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace mixserve::bench {

struct BenchTarget {
  torch::Device device = torch::kCPU;
  torch::Dtype dtype = torch::kFloat;
  // --dtype int8: fp32 tensors, the model's CPU products in int8 (Transformer::SetCpuPrecision).
  bool int8 = false;
  bool int8_allowed = false;  // set by the programs that apply it
  torch::TensorOptions Options() const { return torch::TensorOptions().device(device).dtype(dtype); }
  // On CUDA, waits for the queued kernels, so that a timed call includes them.
  void Sync() const {
    if (device.is_cuda()) torch::cuda::synchronize();
  }
};

// Reads `--device X` or `--dtype X` at argv[*i] (the value is the next argument) into `t`,
// moves *i to the value and returns true; false for any other argument. A bad value, or CUDA
// asked for where there is none, prints a message naming `program` and exits with status 2.
inline bool ParseTargetFlag(const char* program, int argc, char** argv, int* i, BenchTarget* t) {
  const bool device = std::strcmp(argv[*i], "--device") == 0;
  const bool dtype = std::strcmp(argv[*i], "--dtype") == 0;
  if ((!device && !dtype) || *i + 1 >= argc) return false;
  const std::string v = argv[++*i];
  if (device) {
    try {
      t->device = torch::Device(v);
    } catch (const std::exception&) {
      std::fprintf(stderr, "%s: --device must be cpu or cuda[:N], got %s\n", program, v.c_str());
      std::exit(2);
    }
    if (t->device.is_cuda() && !torch::cuda::is_available()) {
      std::fprintf(stderr, "%s: --device %s but CUDA is not available\n", program, v.c_str());
      std::exit(2);
    }
    return true;
  }
  t->int8 = false;
  if (v == "fp32") t->dtype = torch::kFloat;
  else if (v == "fp16") t->dtype = torch::kHalf;
  else if (v == "bf16") t->dtype = torch::kBFloat16;
  else if (v == "int8" && t->int8_allowed) {
    t->dtype = torch::kFloat;
    t->int8 = true;
  } else {
    std::fprintf(stderr, "%s: --dtype must be fp32, fp16%s or bf16, got %s\n", program,
                 t->int8_allowed ? ", int8" : "", v.c_str());
    std::exit(2);
  }
  return true;
}

}  // namespace mixserve::bench
