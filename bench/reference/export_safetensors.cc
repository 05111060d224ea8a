// export_safetensors: every named parameter and buffer of a model version directory, as fp32,
// in one .safetensors file, so that tools outside mixserve (bench/reference/ct2_compare.py)
// can read the same weights without LibTorch.
//
//   export_safetensors <model version dir> <out.safetensors>
//
// Names are the module paths that docs/model.md lists under "Architecture"
// (decoder.0.cross.mixer.q.weight, positions); the model's spec stays in model.pbtxt.
#include <torch/torch.h>

#include <cstdio>
#include <exception>
#include <string>

#include "model/checkpoint.h"
#include "model/safetensors.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s <model version dir> <out.safetensors>\n", argv[0]);
    return 2;
  }
  try {
    mixserve::model::Transformer model = mixserve::model::LoadCheckpoint(argv[1]);
    mixserve::model::NamedTensors tensors;
    // A shared embedding appears once (named_parameters does not repeat a tensor).
    for (const auto& item : model->named_parameters())
      tensors.emplace_back(item.key(), item.value().detach().to(torch::kFloat));
    for (const auto& item : model->named_buffers())
      tensors.emplace_back(item.key(), item.value().detach().to(torch::kFloat));
    mixserve::model::WriteSafetensors(argv[2], tensors,
                                      {{"format", "pt"}, {"source", argv[1]}});
    std::printf("%s: %zu tensors\n", argv[2], tensors.size());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "export_safetensors: %s: %s\n", argv[1], e.what());
    return 1;
  }
  return 0;
}
