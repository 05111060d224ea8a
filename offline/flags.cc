#include "offline/flags.h"

#include <absl/flags/flag.h>

#include <cerrno>
#include <cstdlib>
#include <sstream>
#include <stdexcept>

// Every flag of every command, with its type; each command's FlagDef gives its default and
// help (the declared default is the most common one).
// Data and device (common.cc), precision (precision.cc).
ABSL_FLAG(std::string, data, "data/multi30k", "folder of <split>.<lang>[.gz] files");
ABSL_FLAG(std::string, src, "", "source language");
ABSL_FLAG(std::string, tgt, "", "target language");
ABSL_FLAG(int64_t, limit, 0, "first N lines or sentences (0: all)");
ABSL_FLAG(std::string, device, "auto", "auto, cpu, cuda, cuda:N");
ABSL_FLAG(int32_t, threads, 0, "CPU intra-op threads (0: LibTorch default)");
ABSL_FLAG(std::string, precision, "auto", "fp32, bf16, fp16 or auto");
// spm.
ABSL_FLAG(std::string, split, "train", "split whose text is used");
ABSL_FLAG(int32_t, vocab_size, 8000, "vocabulary size");
ABSL_FLAG(std::string, model_type, "unigram", "unigram or bpe");
ABSL_FLAG(double, character_coverage, 1.0, "SentencePiece character coverage");
// Training loops (train, finetune, distill).
ABSL_FLAG(std::string, out, "", "output folder or file");
ABSL_FLAG(std::string, valid_split, "val", "validation split");
ABSL_FLAG(int64_t, valid_limit, 0, "validation sentences (0: all)");
ABSL_FLAG(int32_t, max_tokens, 1500, "padded tokens per batch");
ABSL_FLAG(int32_t, epochs, 1, "passes over the training data");
ABSL_FLAG(int64_t, max_steps, 0, "stop after this many updates (0: run all epochs)");
ABSL_FLAG(double, lr, 1e-3, "peak learning rate");
ABSL_FLAG(int64_t, warmup, 100, "linear warmup steps");
ABSL_FLAG(double, clip_norm, 1.0, "gradient clipping by global norm (0: off)");
ABSL_FLAG(double, label_smoothing, 0.1, "label smoothing epsilon");
ABSL_FLAG(int64_t, valid_every, 0, "validate every N steps (0: after every epoch)");
ABSL_FLAG(int64_t, log_every, 50, "progress line every N steps");
ABSL_FLAG(int32_t, bleu_batch, 64, "sentences per decoding batch for validation BLEU");
ABSL_FLAG(int64_t, seed, 1, "random seed");
ABSL_FLAG(bool, resume, false, "continue where an earlier run stopped");
ABSL_FLAG(std::string, log, "", "metrics as JSON lines");
// train: the model.
ABSL_FLAG(std::string, spm, "", "SentencePiece model");
ABSL_FLAG(int32_t, d_model, 128, "model width");
ABSL_FLAG(int32_t, ffn_dim, 512, "feed-forward width");
ABSL_FLAG(int32_t, heads, 8, "attention heads");
ABSL_FLAG(int32_t, encoder_layers, 6, "encoder layers");
ABSL_FLAG(int32_t, decoder_layers, 6, "decoder layers");
ABSL_FLAG(int32_t, max_len, 50, "tokens per sentence incl. BOS/EOS");
ABSL_FLAG(double, dropout, 0.1, "dropout");
ABSL_FLAG(std::string, encoder_mixer, "mha", "mixer of every encoder self site");
ABSL_FLAG(std::string, decoder_self_mixer, "mha", "mixer of every decoder self site");
ABSL_FLAG(std::string, decoder_cross_mixer, "mha", "mixer of every decoder cross site");
ABSL_FLAG(std::string, mixer_size, "", "size of non-mha mixers: xs, s, m, l");
ABSL_FLAG(int32_t, mixer_hidden, 0, "explicit hidden width of non-mha mixers");
ABSL_FLAG(int32_t, mixer_window, 0, "window of aft_local / aft_conv");
// distill, finetune.
ABSL_FLAG(std::string, teacher, "", "teacher model folder");
ABSL_FLAG(std::string, mixer, "", "student mixer type");
ABSL_FLAG(std::string, size, "", "student size: xs, s, m, l");
ABSL_FLAG(int32_t, hidden, 0, "explicit hidden width");
ABSL_FLAG(int32_t, window, 0, "window of aft_local / aft_conv");
ABSL_FLAG(int32_t, mixer_heads, 0, "heads of the student (0: the model's)");
ABSL_FLAG(std::string, sites, "all", "attention sites, comma-separated");
ABSL_FLAG(std::string, layers, "all", "layer indices, comma-separated, or all");
ABSL_FLAG(bool, bleu, true, "measure BLEU");
ABSL_FLAG(std::string, student, "", "model folder to fine-tune");
ABSL_FLAG(double, kd_alpha, 0.5, "weight of the KD term");
ABSL_FLAG(double, temperature, 1.0, "softmax temperature of the KD term");
// eval, export.
ABSL_FLAG(std::string, model, "", "model folder(s), comma-separated");
ABSL_FLAG(std::string, splits, "test_2016_flickr,test_2017_flickr", "test splits");
ABSL_FLAG(int32_t, beam, 5, "beam size (1: greedy)");
ABSL_FLAG(double, length_penalty, 1.0, "GNMT length penalty alpha for beam search");
ABSL_FLAG(int32_t, batch_size, 64, "sentences per batch");
ABSL_FLAG(int32_t, latency_sentences, 100, "sentences timed one by one (0: skip)");
ABSL_FLAG(std::string, dtype, "fp32", "fp32, fp16, bf16 (CUDA), int8 (CPU)");
ABSL_FLAG(std::string, hyps_dir, "", "also write the translations here");
ABSL_FLAG(std::string, repo, "", "model repository root");
ABSL_FLAG(std::string, name, "", "model name");
ABSL_FLAG(int32_t, export_version, 0, "export/import --version: version number (0: next free)");
ABSL_FLAG(bool, fp16, false, "store weights as fp16");
ABSL_FLAG(std::string, test_split, "test_2016_flickr", "split for the BLEU in metadata.json");
ABSL_FLAG(int64_t, test_limit, 0, "first N test sentences (0: all)");
// import.
ABSL_FLAG(std::string, hf_dir, "", "Hugging Face MarianMT model directory");
ABSL_FLAG(std::string, repository, "", "model repository root");
// sweep.
ABSL_FLAG(std::string, teachers, "", "teacher model folders, comma-separated");
ABSL_FLAG(std::string, mixers, "alr", "mixer types, comma-separated");
ABSL_FLAG(std::string, sizes, "s", "sizes, comma-separated");
ABSL_FLAG(bool, include_teacher, true, "add the teacher itself as a row");
ABSL_FLAG(bool, skip_invalid, true, "skip invalid cells");
ABSL_FLAG(std::string, shard, "0/1", "run shard i of n");
ABSL_FLAG(std::string, merge, "", "merge the tables of these folders");
ABSL_FLAG(std::string, latency_csv, "", "latency table to merge");
ABSL_FLAG(std::string, skip, "", "tables whose cells are skipped");

namespace mixserve::offline {

std::string AbslFlagName(const std::string& name) {
  return name == "version" ? "export_version" : name;
}

FlagSet::FlagSet(std::string command, std::string summary, std::vector<FlagDef> defs)
    : command_(std::move(command)), summary_(std::move(summary)), defs_(std::move(defs)) {}

bool FlagSet::Parse(const std::vector<std::string>& args) {
  std::vector<flags::FlagRef> refs;
  std::map<std::string, std::string> defaults;
  for (const auto& d : defs_) {
    refs.push_back({d.name, AbslFlagName(d.name)});
    defaults[d.name] = d.default_value;
  }
  const flags::ParsedArgs parsed =
      flags::ParseArgs(args, refs, defaults, "mixserve-offline " + command_, false);
  if (parsed.help) return false;
  given_ = parsed.given;
  values_.clear();
  for (const auto& d : defs_) values_[d.name] = flags::CurrentValue(AbslFlagName(d.name));
  for (const auto& d : defs_) {
    if (d.required && (!given_.count(d.name) || values_[d.name].empty()))
      throw UsageError("Missing the required flag '" + d.name + "' (" + d.help + ")");
  }
  return true;
}

std::string FlagSet::Usage() const {
  std::vector<flags::FlagHelp> listing;
  for (const auto& d : defs_) {
    flags::FlagHelp h = flags::Describe(AbslFlagName(d.name), d.name);
    h.default_value = d.default_value;
    h.help = d.help;
    h.required = d.required;
    listing.push_back(h);
  }
  return "usage: mixserve-offline " + command_ + " [flags]\n" + summary_ + "\n\nFlags:\n" +
         flags::FormatFlags(listing);
}

const FlagDef& FlagSet::Def(const std::string& name) const {
  for (const auto& d : defs_)
    if (d.name == name) return d;
  throw std::logic_error("flag --" + name + " is not declared for " + command_);
}

bool FlagSet::Given(const std::string& name) const {
  Def(name);
  return given_.count(name) > 0;
}

std::string FlagSet::Get(const std::string& name) const {
  const auto& d = Def(name);
  auto it = values_.find(name);
  return it == values_.end() ? d.default_value : it->second;
}

int64_t FlagSet::GetInt64(const std::string& name) const {
  const std::string v = Get(name);
  errno = 0;
  char* end = nullptr;
  const long long x = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || errno != 0)
    throw UsageError("flag --" + name + ": '" + v + "' is not an integer");
  return x;
}

int FlagSet::GetInt(const std::string& name) const {
  const int64_t x = GetInt64(name);
  if (x < INT32_MIN || x > INT32_MAX) throw UsageError("flag --" + name + ": value out of range");
  return static_cast<int>(x);
}

double FlagSet::GetDouble(const std::string& name) const {
  const std::string v = Get(name);
  char* end = nullptr;
  const double x = std::strtod(v.c_str(), &end);
  if (v.empty() || *end != '\0') throw UsageError("flag --" + name + ": '" + v + "' is not a number");
  return x;
}

bool FlagSet::GetBool(const std::string& name) const {
  const std::string v = Get(name);
  if (v == "true" || v == "1" || v == "yes") return true;
  if (v == "false" || v == "0" || v == "no" || v.empty()) return false;
  throw UsageError("flag --" + name + ": '" + v + "' is not a boolean (true/false)");
}

std::vector<std::string> FlagSet::GetList(const std::string& name) const {
  return SplitList(Get(name));
}

std::map<std::string, std::string> FlagSet::Values() const {
  std::map<std::string, std::string> out;
  for (const auto& d : defs_) out[d.name] = Get(d.name);
  return out;
}

std::vector<std::string> SplitList(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream is(s);
  while (std::getline(is, cur, sep)) {
    // trim
    const auto b = cur.find_first_not_of(" \t");
    const auto e = cur.find_last_not_of(" \t");
    if (b != std::string::npos) out.push_back(cur.substr(b, e - b + 1));
  }
  return out;
}

}  // namespace mixserve::offline
