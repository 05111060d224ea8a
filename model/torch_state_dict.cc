#include "model/torch_state_dict.h"

#include <torch/serialize.h>
#include <torch/version.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <stdexcept>

namespace mixserve::model {

NamedTensors ReadTorchStateDict(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  const std::vector<char> bytes((std::istreambuf_iterator<char>(in)),
                                std::istreambuf_iterator<char>());
  const std::string convert =
      "; convert it to model.safetensors where PyTorch runs: python3 -c \"import torch; "
      "from safetensors.torch import save_file; save_file({k: v.contiguous() for k, v in "
      "torch.load('pytorch_model.bin').items()}, 'model.safetensors')\" (or download the "
      "model's model.safetensors)";
  // torch.save writes a zip archive since PyTorch 1.6 ("PK" first); older files are a
  // sequence of pickles that only Python reads.
  if (bytes.size() < 2 || bytes[0] != 'P' || bytes[1] != 'K')
    throw std::runtime_error(path + " is not a zip archive of torch.save (written before "
                             "PyTorch 1.6, or not a PyTorch file)" + convert);
  torch::IValue value;
  try {
    value = torch::pickle_load(bytes);
  } catch (const std::exception& e) {
    std::string what = e.what();
    what = what.substr(0, what.find('\n'));  // LibTorch appends a stack trace
    throw std::runtime_error(
        path + ": LibTorch " + std::string(TORCH_VERSION) + " cannot read it (" + what +
        "); LibTorch's unpickler reads plain dicts of tensors, but turns "
        "collections.OrderedDict, the type of every model.state_dict(), into None" + convert);
  }
  if (!value.isGenericDict())
    throw std::runtime_error(path + " holds a " + value.tagKind() +
                             ", not a dict of tensors" + convert);
  NamedTensors out;
  for (const auto& e : value.toGenericDict()) {
    if (!e.key().isString() || !e.value().isTensor())
      throw std::runtime_error(path + ": entry '" +
                               (e.key().isString() ? e.key().toStringRef() : "?") +
                               "' is not a tensor under a name");
    out.emplace_back(e.key().toStringRef(), e.value().toTensor());
  }
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  return out;
}

}  // namespace mixserve::model
