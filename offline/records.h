// The offline pipeline's JSON files as protobuf messages (proto/mixserve/v1/records.proto),
// behind plain C++ interfaces that Torch translation units may include:
//   last/train_state.json   TrainState
//   metrics.jsonl           MetricsEvent lines
//   eval / sweep results    EvalResult lines
// Readers throw std::runtime_error naming the file (and line) of bad input.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "config/flat_record.h"
#include "offline/evaluate.h"

namespace mixserve::offline {

// Where a training run goes on after --resume.
struct TrainState {
  int64_t step = 0;
  int epoch = 0;
  int64_t batch = 0;  // next batch of `epoch`
  double best_bleu = -1;
  int64_t best_step = 0;
};
void WriteTrainState(const std::string& path, const TrainState& state);
TrainState ReadTrainState(const std::string& path);

// One metrics.jsonl line: `fields` by MetricsEvent field name (std::invalid_argument for a
// name the message lacks); `flags` for the config event.
std::string MetricsEventJson(const std::string& event, double time, const FlatRecord& fields,
                             const std::map<std::string, std::string>& flags = {});
struct MetricsRecord {
  std::string event;
  double time = 0;
  FlatRecord fields;  // the fields set, other than time and event
  std::map<std::string, std::string> flags;
};
std::vector<MetricsRecord> ReadMetricsLog(const std::string& path);

// The cell of an ablation grid that a sweep row measured.
struct SweepCell {
  std::string direction, method, size, sites;
};
// One eval results line (no newline); `cell` for sweep rows.
std::string EvalResultJson(const EvalResult& result, const SweepCell* cell = nullptr);
// Every line of an eval/sweep results text (EvalResult messages); errors name source:line.
std::vector<EvalResult> ParseEvalResults(const std::string& text, const std::string& source);

}  // namespace mixserve::offline
