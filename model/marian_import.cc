#include "model/marian_import.h"

#include <cmath>
#include <filesystem>
#include <map>
#include <stdexcept>
#include <tuple>

#include "config/hf_json.h"
#include "model/marian_layout.h"
#include "model/safetensors.h"
#include "model/torch_state_dict.h"

namespace mixserve::model {
namespace {

namespace fs = std::filesystem;

std::string In(const std::string& dir, const std::string& file) {
  return (fs::path(dir) / file).string();
}

NamedTensors ReadWeights(const std::string& dir, std::string* file) {
  if (fs::exists(In(dir, "model.safetensors"))) {
    *file = In(dir, "model.safetensors");
    return ReadSafetensors(*file);
  }
  if (fs::exists(In(dir, "model.safetensors.index.json")) ||
      fs::exists(In(dir, "pytorch_model.bin.index.json")))
    throw std::runtime_error(dir + " holds a checkpoint split into shards (*.index.json), "
                             "which import does not read");
  if (fs::exists(In(dir, "pytorch_model.bin"))) {
    *file = In(dir, "pytorch_model.bin");
    return ReadTorchStateDict(*file);
  }
  throw std::runtime_error(dir + " has neither model.safetensors nor pytorch_model.bin");
}

std::vector<NamedShape> Shapes(const NamedTensors& tensors) {
  std::vector<NamedShape> out;
  for (const auto& [name, t] : tensors) out.push_back({name, t.sizes().vec()});
  return out;
}

}  // namespace

torch::Tensor MarianSinusoids(int max_len, int d) {
  auto out = torch::empty({max_len, d}, torch::kFloat);
  auto a = out.accessor<float, 2>();
  const int half = (d + 1) / 2;  // sin columns (odd d: one more)
  for (int p = 0; p < max_len; ++p) {
    for (int j = 0; j < d; ++j) {
      // Column j of the angle table is p / 10000^(2 (j // 2) / d); sin takes the even
      // columns, cos the odd ones.
      auto angle = [&](int col) {
        return p / std::pow(10000.0, 2.0 * (col / 2) / static_cast<double>(d));
      };
      a[p][j] = static_cast<float>(j < half ? std::sin(angle(2 * j))
                                            : std::cos(angle(2 * (j - half) + 1)));
    }
  }
  return out;
}

MarianImport ImportMarian(const std::string& dir, int max_len) {
  if (!fs::is_directory(dir)) throw std::runtime_error(dir + " is not a directory");
  for (const char* f : {"config.json", "vocab.json", "source.spm", "target.spm"})
    if (!fs::exists(In(dir, f)))
      throw std::runtime_error(dir + " has no " + f + " (a MarianMT directory holds "
                               "config.json, vocab.json, source.spm, target.spm and the weights)");
  const HfJsonObject config = ReadHfJsonObject(In(dir, "config.json"));
  const std::string gen_path = In(dir, "generation_config.json");
  const HfJsonObject generation = fs::exists(gen_path) ? ReadHfJsonObject(gen_path) : config;
  const HfVocabularySummary vocab =
      ReadHfVocabularySummary(In(dir, "vocab.json"), {"<unk>", "<pad>", "</s>"});
  ModelSpec spec = MarianSpec(config, generation, vocab, max_len);
  for (const auto& [piece, id, field] :
       {std::tuple<const char*, int, const char*>{"<pad>", spec.ids.pad, "pad_token_id"},
        {"</s>", spec.ids.eos, "eos_token_id"}})
    if (vocab.ids.at(piece) >= 0 && vocab.ids.at(piece) != id)
      throw std::runtime_error(config.source() + ": " + field + " is " + std::to_string(id) +
                               " but vocab.json gives " + piece + " the id " +
                               std::to_string(vocab.ids.at(piece)));
  const std::string tok_path = In(dir, "tokenizer_config.json");
  if (fs::exists(tok_path)) {
    const HfJsonObject tok = ReadHfJsonObject(tok_path);
    if (tok.Bool("separate_vocabs", false))
      throw std::runtime_error(tok_path + ": separate_vocabs is true: mixserve imports models "
                               "of one vocabulary (vocab.json)");
    spec.source_language = tok.String("source_lang", "");
    spec.target_language = tok.String("target_lang", "");
  }

  MarianImport out;
  const NamedTensors tensors = ReadWeights(dir, &out.weights_file);
  std::map<std::string, torch::Tensor> by_name(tensors.begin(), tensors.end());
  out.model = Transformer(spec);
  std::map<std::string, torch::Tensor> targets;
  for (const auto& p : out.model->named_parameters(true)) targets.emplace(p.key(), p.value());
  for (const auto& b : out.model->named_buffers(true)) targets.emplace(b.key(), b.value());
  NamedTensors ordered;
  for (const auto& p : out.model->named_parameters(true)) ordered.emplace_back(p.key(), p.value());
  for (const auto& b : out.model->named_buffers(true)) ordered.emplace_back(b.key(), b.value());
  const MarianMapping mapping =
      MapMarianTensors(spec, Shapes(tensors), Shapes(ordered), out.weights_file);

  for (const auto& [copy, original] : mapping.duplicates) {
    const auto& a = by_name.at(copy);
    const auto& b = by_name.at(original);
    if (!torch::equal(a.to(torch::kFloat), b.to(torch::kFloat)))
      throw std::runtime_error(out.weights_file + ": tensor '" + copy + "' differs from '" +
                               original + "', which mixserve keeps once (shared embeddings "
                               "are also the output projection; one position table)");
    out.notes.push_back(copy + ": equal to " + original);
  }
  torch::NoGradGuard no_grad;
  for (const auto& s : mapping.tensors) {
    torch::Tensor& t = targets.at(s.target);
    torch::Tensor v;
    switch (s.fill) {
      case Fill::kCopy: v = by_name.at(s.source); break;
      case Fill::kFirstRows: v = by_name.at(s.source).narrow(0, 0, t.size(0)); break;
      case Fill::kRow: v = by_name.at(s.source)[0]; break;
      case Fill::kZeros:
        v = torch::zeros_like(t);
        out.notes.push_back(s.target + ": not in the file, zeros (as transformers)");
        break;
      case Fill::kSinusoids:
        v = MarianSinusoids(static_cast<int>(t.size(0)), static_cast<int>(t.size(1)));
        out.notes.push_back(s.target + ": not in the file, Marian's sinusoids computed");
        break;
    }
    t.copy_(v.to(t.scalar_type()));
  }
  return out;
}

}  // namespace mixserve::model
