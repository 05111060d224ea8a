// eval: BLEU, latency and throughput of model directories through the serving engine, so the
// numbers describe what the server would do with the same model.
#include <algorithm>
#include <chrono>
#include <filesystem>

#include "engine/engine.h"
#include "offline/commands.h"
#include "offline/common.h"
#include "offline/evaluate.h"
#include "offline/progress.h"
#include "offline/records.h"
#include "text/bleu.h"

namespace mixserve::offline {

namespace {

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(q * (v.size() - 1) + 0.5));
  return v[i];
}

struct Decoded {
  std::vector<std::string> text;
  int64_t tokens = 0;
  double seconds = 0;
};

// Output ids become text through the target tokenizer.
Decoded DecodeAll(Engine& engine, const Tokenizer& tok, const std::vector<std::vector<int>>& srcs,
                  int batch_size, const DecodeOptions& opt) {
  Decoded d;
  d.text.resize(srcs.size());
  const auto t0 = std::chrono::steady_clock::now();
  for (size_t start = 0; start < srcs.size(); start += batch_size) {
    const size_t end = std::min(srcs.size(), start + static_cast<size_t>(batch_size));
    std::vector<std::vector<int>> batch(srcs.begin() + start, srcs.begin() + end);
    auto hyps = engine.Translate(batch, opt);
    for (size_t i = start; i < end; ++i) {
      const auto& h = hyps[i - start];
      if (h.empty()) continue;
      d.tokens += static_cast<int64_t>(h[0].tokens.size());
      d.text[i] = tok.Decode(h[0].tokens);
    }
  }
  d.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return d;
}

// A readable name for a model folder: "<model>:<version>" for a repository version folder
// (<repo>/<model>/<digits>), "<run>/<checkpoint>" for a training run's best/ or last/, else
// the folder's own name.
std::string ModelName(const std::string& dir) {
  const std::filesystem::path p = std::filesystem::path(dir).lexically_normal();
  std::filesystem::path leaf = p.filename();
  std::filesystem::path parent = p.parent_path();
  if (leaf.empty()) {  // trailing slash
    leaf = parent.filename();
    parent = parent.parent_path();
  }
  const std::string name = leaf.string(), up = parent.filename().string();
  const bool version = !name.empty() && name.find_first_not_of("0123456789") == std::string::npos;
  if (version && !up.empty()) return up + ":" + name;
  if ((name == "best" || name == "last") && !up.empty()) return up + "/" + name;
  return name;
}

}  // namespace

EvalResult EvaluateModel(const EvalConfig& c) {
  RequireModelDir(c.model_dir, "model");
  if (c.batch_size < 1) throw UsageError("--batch_size must be >= 1");
  EngineOptions eo;
  eo.device = c.device;
  eo.dtype = c.dtype;
  eo.threads = c.threads;
  std::unique_ptr<Engine> engine = Engine::Load(c.model_dir, eo);
  const ModelInfo& info = engine->info();
  const ModelTokenizers tok = LoadTokenizers(c.model_dir, info.spec);
  CheckVocab(tok, info.spec, "model '" + c.model_dir + "'");
  EvalResult r;
  r.model_dir = c.model_dir;
  r.name = ModelName(c.model_dir);
  r.device = info.device;
  r.dtype = info.dtype;
  r.parameters = info.parameters;
  r.src = c.src.empty() ? info.spec.source_language : c.src;
  r.tgt = c.tgt.empty() ? info.spec.target_language : c.tgt;
  if (r.src.empty() || r.tgt.empty()) throw UsageError("pass --src and --tgt (the model names no languages)");
  r.batch_size = c.batch_size;
  if (c.splits.empty()) throw UsageError("--splits is empty");

  const int max_src = info.spec.max_len - 2;
  DecodeOptions greedy;
  greedy.beam_size = 1;
  DecodeOptions beam = greedy;
  beam.beam_size = std::max(1, c.beam);
  beam.length_penalty = c.length_penalty.value_or(info.spec.decoding.length_penalty);
  double batched_seconds = 0;
  int64_t batched_sentences = 0, batched_tokens = 0;
  for (size_t si = 0; si < c.splits.size(); ++si) {
    const std::string& split = c.splits[si];
    auto text = ReadParallel(DataFile(c.data, split, r.src), DataFile(c.data, split, r.tgt), c.limit);
    std::vector<std::vector<int>> srcs(text.src.size());
    for (size_t i = 0; i < srcs.size(); ++i) {
      srcs[i] = tok.source->Encode(text.src[i]);
      if (static_cast<int>(srcs[i].size()) > max_src) srcs[i].resize(max_src);
    }
    if (si == 0 && c.latency_sentences > 0) {
      // Batch-1 latency, greedy, after one warm-up sentence.
      engine->Translate({srcs[0]}, greedy);
      std::vector<double> ms;
      const size_t n = std::min(srcs.size(), static_cast<size_t>(c.latency_sentences));
      for (size_t i = 0; i < n; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        engine->Translate({srcs[i]}, greedy);
        ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
      }
      double sum = 0;
      for (double v : ms) sum += v;
      r.latency_sentences = static_cast<int>(n);
      r.latency_ms_mean = sum / n;
      r.latency_ms_p50 = Percentile(ms, 0.5);
      r.latency_ms_p90 = Percentile(ms, 0.9);
    }
    SplitResult sr;
    sr.sentences = srcs.size();
    Decoded g = DecodeAll(*engine, *tok.target, srcs, c.batch_size, greedy);
    sr.bleu_greedy = CorpusBleu(g.text, text.tgt).score;
    batched_seconds += g.seconds;
    batched_sentences += static_cast<int64_t>(srcs.size());
    batched_tokens += g.tokens;
    Decoded b;
    if (c.beam > 1) {
      b = DecodeAll(*engine, *tok.target, srcs, c.batch_size, beam);
      sr.bleu_beam = CorpusBleu(b.text, text.tgt).score;
    }
    if (!c.hyps_dir.empty()) {
      WriteLines(c.hyps_dir + "/" + split + ".greedy." + r.tgt, g.text);
      if (c.beam > 1) WriteLines(c.hyps_dir + "/" + split + ".beam" + std::to_string(c.beam) + "." + r.tgt, b.text);
    }
    Print("eval %s %s: %zu sentences, BLEU greedy %.2f%s\n", c.model_dir.c_str(), split.c_str(),
          srcs.size(), sr.bleu_greedy,
          c.beam > 1 ? (", beam " + std::to_string(c.beam) + " " + std::to_string(sr.bleu_beam).substr(0, 5)).c_str() : "");
    r.splits[split] = sr;
  }
  if (batched_seconds > 0) {
    r.batched_ms_per_sentence = 1000.0 * batched_seconds / batched_sentences;
    r.sentences_per_s = batched_sentences / batched_seconds;
    r.tokens_per_s = batched_tokens / batched_seconds;
  }
  Print("eval %s: %lld parameters, batch-1 latency %.2f ms/sentence (p90 %.2f), batch %d: "
        "%.1f sentences/s, %.0f tokens/s\n",
        c.model_dir.c_str(), static_cast<long long>(r.parameters), r.latency_ms_mean,
        r.latency_ms_p90, c.batch_size, r.sentences_per_s, r.tokens_per_s);
  return r;
}

int RunEval(const Args& args) {
  FlagSet f("eval",
            "Translates test splits with each model through the serving engine and reports BLEU\n"
            "(sacreBLEU defaults, detokenised output vs the raw reference) for greedy and beam\n"
            "search, batch-1 latency and batched throughput. One JSON line per model in --out.",
            Concat({{{"model", "", "model folder(s), comma-separated", true},
                     {"out", "", "results file, one JSON object per line (default: stdout only)"},
                     {"data", "data/multi30k", "folder of <split>.<lang>[.gz] files"},
                     {"src", "", "source language (default: the model's)"},
                     {"tgt", "", "target language (default: the model's)"},
                     {"splits", "test_2016_flickr,test_2017_flickr", "test splits"},
                     {"limit", "0", "first N sentences of each split (0: all)"},
                     {"beam", "5", "beam size of the beam pass (1: greedy only)"},
                     {"length_penalty", "1.0", "length penalty alpha of beam search; not given: the model's decoding.length_penalty (1.0 unless the model sets one)"},
                     {"batch_size", "64", "sentences per batch for BLEU and throughput"},
                     {"latency_sentences", "100", "sentences timed one by one (0: skip)"},
                     {"dtype", "fp32", "fp32, fp16, bf16 (half types on CUDA only), int8 (CPU only)"},
                     {"hyps_dir", "", "also write the translations here"}},
                    DeviceFlags()}));
  if (!f.Parse(args)) {
    Print("%s", f.Usage().c_str());
    return 0;
  }
  std::string lines;
  for (const auto& dir : f.GetList("model")) {
    EvalConfig c;
    c.model_dir = dir;
    c.data = f.Get("data");
    c.src = f.Get("src");
    c.tgt = f.Get("tgt");
    c.splits = f.GetList("splits");
    c.limit = static_cast<size_t>(f.GetInt64("limit"));
    c.beam = f.GetInt("beam");
    if (f.Given("length_penalty"))
      c.length_penalty = static_cast<float>(f.GetDouble("length_penalty"));
    c.batch_size = f.GetInt("batch_size");
    c.latency_sentences = f.GetInt("latency_sentences");
    c.device = f.Get("device");
    c.dtype = f.Get("dtype");
    c.threads = f.GetInt("threads");
    c.hyps_dir = f.Get("hyps_dir").empty() ? "" : f.Get("hyps_dir") + "/" +
                 std::filesystem::path(dir).lexically_normal().filename().string();
    const std::string line = EvalResultJson(EvaluateModel(c));
    Print("%s\n", line.c_str());
    lines += line + "\n";
  }
  if (!f.Get("out").empty()) WriteFile(f.Get("out"), lines);
  return 0;
}

}  // namespace mixserve::offline
