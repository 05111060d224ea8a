// Evaluation of a model directory through the serving engine (engine/engine.h): BLEU of
// greedy and beam output on test splits, decoding latency at batch 1, batched throughput.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace mixserve::offline {

struct EvalConfig {
  std::string model_dir;
  std::string data = "data/multi30k";
  std::string src, tgt;  // empty: the model's languages
  std::vector<std::string> splits = {"test_2016_flickr", "test_2017_flickr"};
  size_t limit = 0;      // sentences per split (0: all)
  int beam = 5;          // 0 or 1: no beam pass
  std::optional<float> length_penalty;  // unset: the model's (DecodingSpec::length_penalty)
  int batch_size = 64;
  int latency_sentences = 100;  // batch-1 latency over the first N sentences of the first split
  std::string device = "auto";
  std::string dtype = "fp32";
  int threads = 0;
  std::string hyps_dir;  // when set: <hyps_dir>/<split>.{greedy,beam}.<tgt>
};

struct SplitResult {
  size_t sentences = 0;
  double bleu_greedy = 0;
  double bleu_beam = -1;  // -1: not run
};

struct EvalResult {
  std::string model_dir;
  std::string name;  // readable: "<model>:<version>", "<run>/best", the folder name
  std::string device, dtype, src, tgt;
  int64_t parameters = 0;
  std::map<std::string, SplitResult> splits;
  double latency_ms_mean = 0, latency_ms_p50 = 0, latency_ms_p90 = 0;  // batch 1, greedy
  int latency_sentences = 0;
  double batched_ms_per_sentence = 0, sentences_per_s = 0, tokens_per_s = 0;  // greedy
  int batch_size = 0;
};

// Throws std::runtime_error naming the model directory or data file on failure. As JSON:
// EvalResultJson (offline/records.h).
EvalResult EvaluateModel(const EvalConfig& config);

}  // namespace mixserve::offline
