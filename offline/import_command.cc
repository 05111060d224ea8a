// import: a Hugging Face MarianMT directory (config.json, generation_config.json,
// model.safetensors or pytorch_model.bin, source.spm, target.spm, vocab.json,
// tokenizer_config.json) as a versioned model directory <repository>/<name>/<version>/ that
// the server loads: model.pbtxt, weights, metadata.json, source.spm, target.spm, vocab.json.
// Local files only; written under a temporary name and renamed into place, as export does.
#include <filesystem>

#include "base/remove_tree.h"
#include "model/checkpoint.h"
#include "model/marian_import.h"
#include "offline/commands.h"
#include "offline/common.h"
#include "offline/progress.h"
#include "offline/repository.h"

namespace mixserve::offline {

namespace fs = std::filesystem;

int RunImport(const Args& args) {
  FlagSet f("import",
            "Writes <repository>/<name>/<version>/ (model.pbtxt, weights, metadata.json,\n"
            "source.spm, target.spm, vocab.json) from a local Hugging Face MarianMT directory\n"
            "(e.g. `huggingface-cli download Helsinki-NLP/opus-mt-en-de --local-dir DIR`).",
            {{"hf_dir", "", "Hugging Face MarianMT model directory", true},
             {"repository", "", "model repository root", true},
             {"name", "", "model name, e.g. opus-mt-en-de", true},
             {"version", "0", "version number (0: next free)"},
             {"max_len", "0",
              "longest sequence in tokens (0: the model's max_position_embeddings)"}});
  if (!f.Parse(args)) {
    Print("%s", f.Usage().c_str());
    return 0;
  }
  const std::string from = f.Get("hf_dir"), name = f.Get("name");
  const NewVersion v = PrepareNewVersion(f.Get("repository"), name, f.GetInt("version"));
  const int max_len = f.GetInt("max_len");
  if (max_len < 0) throw UsageError("--max_len must be >= 0");
  if (!fs::is_directory(from)) throw UsageError("--hf_dir " + from + " is not a directory");

  model::MarianImport imported;
  try {
    imported = model::ImportMarian(from, max_len);
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());  // --max_len beyond the model's positions
  }
  model::Transformer& model = imported.model;
  const ModelSpec& spec = model->spec();

  const std::string& tmp = v.tmp;
  model::SaveOptions so;
  so.metadata["kind"] = "imported";
  so.metadata["name"] = name;
  so.metadata["version"] = std::to_string(v.version);
  so.metadata["imported_from"] = fs::absolute(from).lexically_normal().string();
  so.metadata["origin"] = "Hugging Face MarianMT (" + imported.weights_file + ")";
  so.metadata["source_language"] = spec.source_language;
  so.metadata["target_language"] = spec.target_language;
  so.metadata["created_by"] = "mixserve-offline import";
  try {
    model::SaveCheckpoint(model, tmp, so);
    CopyTokenizerFiles(from, spec, tmp);
    fs::rename(tmp, v.dir);
  } catch (...) {
    mixserve::RemoveTree(tmp);
    throw;
  }

  Print("import: %s: %zu encoder + %zu decoder layers, d_model %d, heads %d, ffn %d, "
        "vocabulary %d, max_len %d, activation %s\n",
        imported.weights_file.c_str(), spec.encoder.size(), spec.decoder.size(), spec.d_model,
        spec.heads, spec.ffn_dim, spec.vocab_size, spec.max_len, spec.activation.c_str());
  for (const auto& note : imported.notes) Print("import: %s\n", note.c_str());
  Print("imported %s -> %s (%lld parameters)\n", from.c_str(), v.dir.c_str(),
        static_cast<long long>(model->ParameterCount()));
  return 0;
}

}  // namespace mixserve::offline
