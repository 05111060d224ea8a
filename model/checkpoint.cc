#include "model/checkpoint.h"

#include <chrono>
#include <ctime>
#include <filesystem>
#include <set>

#include "config/model_metadata.h"
#include "config/model_spec_io.h"

namespace mixserve::model {
namespace {

namespace fs = std::filesystem;

std::string Shape(const torch::Tensor& t) {
  std::string s = "[";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
  return s + "]";
}

// Every tensor that makes up the model: parameters, then buffers, by module path.
std::vector<std::pair<std::string, torch::Tensor>> NamedTensors(torch::nn::Module& m) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& p : m.named_parameters(true)) out.emplace_back(p.key(), p.value());
  for (const auto& b : m.named_buffers(true)) out.emplace_back(b.key(), b.value());
  return out;
}

std::string UtcNow() {
  const std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

void SaveWeights(Transformer& model, const std::string& path, bool fp16) {
  torch::serialize::OutputArchive archive;
  for (const auto& [name, t] : NamedTensors(*model)) {
    auto v = t.detach().to(torch::kCPU);
    if (v.is_floating_point()) v = v.to(fp16 ? torch::kHalf : torch::kFloat);
    archive.write(name, v.contiguous());
  }
  try {
    archive.save_to(path);
  } catch (const std::exception& e) {
    throw CheckpointError("cannot write weights " + path + ": " + e.what());
  }
}

void LoadWeights(Transformer& model, const std::string& path,
                 const std::set<std::string>& recomputed) {
  if (!fs::exists(path)) throw CheckpointError("weights file " + path + " does not exist");
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(path);
  } catch (const std::exception& e) {
    throw CheckpointError("cannot read weights " + path + ": " + e.what());
  }
  auto expected = NamedTensors(*model);
  std::set<std::string> names;
  for (const auto& [name, t] : expected) names.insert(name);
  for (const auto& key : archive.keys())
    if (!names.count(key))
      throw CheckpointError("weights " + path + " hold tensor '" + key +
                            "' that the model config has no place for (config and weights "
                            "do not match)");
  torch::NoGradGuard no_grad;
  for (auto& [name, t] : expected) {
    torch::Tensor v;
    if (!archive.try_read(name, v))
      throw CheckpointError("weights " + path + " lack tensor '" + name + "' of shape " +
                            Shape(t) + " that the model config needs");
    if (v.sizes() != t.sizes() && recomputed.count(name)) continue;
    if (v.sizes() != t.sizes())
      throw CheckpointError("tensor '" + name + "' has shape " + Shape(v) + " in weights " +
                            path + " but " + Shape(t) + " in the model config");
    t.copy_(v.to(t.device(), t.scalar_type()));
  }
}

void WriteMetadata(Transformer& model, const std::string& dir, const SaveOptions& options) {
  FlatRecord record{options.metadata, options.numeric_metadata};
  record.numbers["parameters"] = static_cast<double>(model->ParameterCount());
  record.strings["created"] = UtcNow();
  record.strings["weights_dtype"] = options.fp16 ? "fp16" : "fp32";
  // config/model_metadata.h: protobuf's JSON mapping, in a Torch-free library.
  const std::string path = (fs::path(dir) / "metadata.json").string();
  try {
    WriteModelMetadata(path, record);
  } catch (const std::exception& e) {
    throw CheckpointError(e.what());  // names the file and the problem
  }
}

void SaveCheckpoint(Transformer& model, const std::string& dir, const SaveOptions& options) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw CheckpointError("cannot create " + dir + ": " + ec.message());
  std::string err;
  if (!WriteModelSpec((fs::path(dir) / "model.pbtxt").string(), model->spec(), &err))
    throw CheckpointError(err);
  SaveWeights(model, (fs::path(dir) / model->spec().weights_file).string(), options.fp16);
  WriteMetadata(model, dir, options);
}

ModelSpec ReadCheckpointSpec(const std::string& dir) {
  const std::string path = (fs::path(dir) / "model.pbtxt").string();
  if (!fs::exists(path)) throw CheckpointError(path + " does not exist");
  ModelSpec spec;
  std::string err;
  if (!ReadModelSpec(path, &spec, &err)) throw CheckpointError(err);
  return spec;
}

Transformer LoadCheckpoint(const std::string& dir, int max_len) {
  ModelSpec spec = ReadCheckpointSpec(dir);
  const bool resized = max_len > 0 && max_len != spec.max_len;
  if (resized) spec.max_len = max_len;
  Transformer model{nullptr};
  try {
    model = Transformer(spec);
  } catch (const std::invalid_argument& e) {
    throw CheckpointError(dir + "/model.pbtxt: " + e.what());
  }
  const std::string weights = (fs::path(dir) / spec.weights_file).string();
  if (!resized) {
    LoadWeights(model, weights);
    return model;
  }
  try {
    // The sinusoidal position table is the one tensor that may change with the length.
    LoadWeights(model, weights, {"positions"});
  } catch (const CheckpointError& e) {
    throw CheckpointError("cannot build " + dir + " for max_len " + std::to_string(max_len) +
                          " (its weights depend on the length): " + e.what());
  }
  return model;
}

}  // namespace mixserve::model
