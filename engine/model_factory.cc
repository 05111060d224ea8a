#include "engine/model_factory.h"

#include <torch/torch.h>

#include <filesystem>

#include "engine/engine.h"
#include "model/checkpoint.h"

namespace mixserve {

void CreateRandomModel(const ModelSpec& spec, const std::string& tokenizer_model_path,
                       const std::string& out_dir, uint64_t seed) {
  namespace fs = std::filesystem;
  try {
    torch::manual_seed(seed);
    model::Transformer m(spec);
    model::SaveOptions o;
    o.metadata["origin"] = "random initialisation";
    o.numeric_metadata["seed"] = static_cast<double>(seed);
    model::SaveCheckpoint(m, out_dir, o);
    if (!tokenizer_model_path.empty()) {
      fs::copy_file(tokenizer_model_path, fs::path(out_dir) / spec.tokenizer_file,
                    fs::copy_options::overwrite_existing);
    }
  } catch (const c10::Error& e) {
    throw EngineError("creating a random model in " + out_dir + ": " +
                      e.what_without_backtrace());
  } catch (const std::exception& e) {
    throw EngineError("creating a random model in " + out_dir + ": " + e.what());
  }
}

}  // namespace mixserve
