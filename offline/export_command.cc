// export: a versioned model directory <repo>/<name>/<version>/ that the server loads as is:
// model.pbtxt, weights (fp32 or fp16), spm.model and metadata.json (lineage, test BLEU,
// parameter count, creation time). Written under a temporary name and renamed into place, so
// a server watching the repository never sees a half-written version.
#include <filesystem>

#include "config/model_metadata.h"
#include "model/checkpoint.h"
#include "offline/commands.h"
#include "offline/common.h"
#include "offline/evaluate.h"
#include "offline/progress.h"
#include "offline/repository.h"

namespace mixserve::offline {

namespace fs = std::filesystem;

int RunExport(const Args& args) {
  FlagSet f("export",
            "Writes <repo>/<name>/<version>/ (model.pbtxt, weights, spm.model, metadata.json)\n"
            "from a model folder of train/distill/finetune; metadata.json carries the parent\n"
            "teacher, training data, BLEU on the test split, parameter count, creation time.",
            Concat({{{"model", "", "model folder to export (e.g. runs/en-de/best)", true},
                     {"repo", "", "model repository root", true},
                     {"name", "", "model name, e.g. en-de-base or en-de-alr-enc-s", true},
                     {"version", "0", "version number (0: next free)"},
                     {"fp16", "false", "store weights as fp16 (converted back to fp32 on load)"},
                     {"bleu", "true", "measure greedy BLEU of the exported model on --test_split"},
                     {"data", "data/multi30k", "folder of <split>.<lang>[.gz] files"},
                     {"test_split", "test_2016_flickr", "split for the BLEU in metadata.json"},
                     {"test_limit", "0", "first N test sentences (0: all)"}},
                    DeviceFlags()}));
  if (!f.Parse(args)) {
    Print("%s", f.Usage().c_str());
    return 0;
  }
  const std::string from = f.Get("model"), name = f.Get("name");
  RequireModelDir(from, "model");
  const NewVersion v = PrepareNewVersion(f.Get("repo"), name, f.GetInt("version"));
  const std::string& tmp = v.tmp;

  model::Transformer model = model::LoadCheckpoint(from);
  const ModelSpec& spec = model->spec();
  CheckVocab(LoadTokenizers(from, spec), spec, "model '" + from + "'");

  model::SaveOptions so;
  so.fp16 = f.GetBool("fp16");
  FlatRecord meta;
  if (fs::exists(from + "/metadata.json"))
    meta = ReadModelMetadata(from + "/metadata.json");  // bad JSON: an error naming the file
  else
    Print("export: no metadata.json in %s; lineage fields left empty\n", from.c_str());
  for (const char* k : {"kind", "parent_teacher", "training_data", "training_limit",
                        "validation_data", "distilled_mixer", "distilled_sites", "distilled_layers",
                        "finetuned_from", "kd_teacher"})
    if (meta.strings.count(k)) so.metadata[k] = meta.strings.at(k);
  for (const char* k : {"val_bleu", "teacher_val_bleu", "block_mse_before", "block_mse_after"})
    if (meta.numbers.count(k)) so.numeric_metadata[k] = meta.numbers.at(k);
  if (!so.metadata.count("parent_teacher")) so.metadata["parent_teacher"] = "";
  so.metadata["name"] = name;
  so.metadata["version"] = std::to_string(v.version);
  so.metadata["exported_from"] = fs::absolute(from).lexically_normal().string();
  so.metadata["source_language"] = spec.source_language;
  so.metadata["target_language"] = spec.target_language;
  so.metadata["created_by"] = "mixserve-offline export";
  model::SaveCheckpoint(model, tmp, so);
  CopyTokenizerFiles(from, spec, tmp);

  if (f.GetBool("bleu")) {
    // BLEU of exactly what was written (fp16 weights included), through the engine.
    EvalConfig ec;
    ec.model_dir = tmp;
    ec.data = f.Get("data");
    ec.splits = {f.Get("test_split")};
    ec.limit = static_cast<size_t>(f.GetInt64("test_limit"));
    ec.beam = 1;
    ec.latency_sentences = 0;
    ec.device = f.Get("device");
    ec.threads = f.GetInt("threads");
    const EvalResult r = EvaluateModel(ec);
    const auto& sr = r.splits.at(f.Get("test_split"));
    so.metadata["test_set"] = f.Get("test_split");
    so.numeric_metadata["test_sentences"] = static_cast<double>(sr.sentences);
    so.numeric_metadata["bleu_test"] = sr.bleu_greedy;
    model::WriteMetadata(model, tmp, so);
  }
  fs::rename(tmp, v.dir);
  Print("exported %s -> %s (%lld parameters%s)\n", from.c_str(), v.dir.c_str(),
        static_cast<long long>(model->ParameterCount()), so.fp16 ? ", fp16 weights" : "");
  return 0;
}

}  // namespace mixserve::offline
