#include "offline/records.h"

#include <limits>
#include <utility>
#include <stdexcept>

#include "config/json_io.h"
#include "mixserve/v1/records.pb.h"

namespace mixserve::offline {

namespace {

int32_t Int32(int64_t v, const char* what) {
  if (v < std::numeric_limits<int32_t>::min() || v > std::numeric_limits<int32_t>::max())
    throw std::invalid_argument(std::string(what) + " " + std::to_string(v) +
                                " does not fit the 32-bit field of its record");
  return static_cast<int32_t>(v);
}

}  // namespace

void WriteTrainState(const std::string& path, const TrainState& s) {
  v1::TrainState m;
  m.set_step(Int32(s.step, "step"));
  m.set_epoch(s.epoch);
  m.set_batch(Int32(s.batch, "batch"));
  m.set_best_bleu(s.best_bleu);
  m.set_best_step(Int32(s.best_step, "best_step"));
  WriteTextFile(path, MessageToJson(m, true));
}

TrainState ReadTrainState(const std::string& path) {
  v1::TrainState m;
  JsonToMessage(ReadTextFile(path), path, &m);
  TrainState s;
  s.step = m.step();
  s.epoch = m.epoch();
  s.batch = m.batch();
  s.best_bleu = m.best_bleu();
  s.best_step = m.best_step();
  return s;
}

std::string MetricsEventJson(const std::string& event, double time, const FlatRecord& fields,
                             const std::map<std::string, std::string>& flags) {
  v1::MetricsEvent m;
  if (fields.strings.count("event") || fields.numbers.count("time"))
    throw std::invalid_argument("metrics event '" + event + "': 'time' and 'event' are set by the log");
  FillMessage(fields, "metrics event '" + event + "'", &m);
  m.set_time(time);
  m.set_event(event);
  m.mutable_flags()->insert(flags.begin(), flags.end());
  return MessageToJson(m, false, /*skip_defaults=*/true);  // no "flags": {} on every line
}

std::vector<MetricsRecord> ReadMetricsLog(const std::string& path) {
  std::vector<MetricsRecord> out;
  for (const auto& m : ParseJsonLines<v1::MetricsEvent>(ReadTextFile(path), path)) {
    MetricsRecord r;
    r.event = m.event();
    r.time = m.time();
    r.fields = FlattenMessage(m);
    r.fields.strings.erase("event");
    r.fields.numbers.erase("time");
    r.flags.insert(m.flags().begin(), m.flags().end());
    out.push_back(std::move(r));
  }
  return out;
}

std::string EvalResultJson(const EvalResult& r, const SweepCell* cell) {
  v1::EvalResult m;
  m.set_model(r.model_dir);
  m.set_name(r.name);
  m.set_src(r.src);
  m.set_tgt(r.tgt);
  m.set_parameters(static_cast<double>(r.parameters));
  m.set_device(r.device);
  m.set_dtype(r.dtype);
  for (const auto& [name, s] : r.splits) {
    v1::EvalResult::Split& out = (*m.mutable_splits())[name];
    out.set_sentences(Int32(static_cast<int64_t>(s.sentences), "sentences"));
    out.set_bleu_greedy(s.bleu_greedy);
    if (s.bleu_beam >= 0) out.set_bleu_beam(s.bleu_beam);
  }
  auto* l = m.mutable_latency_batch1();
  l->set_sentences(r.latency_sentences);
  l->set_ms_mean(r.latency_ms_mean);
  l->set_ms_p50(r.latency_ms_p50);
  l->set_ms_p90(r.latency_ms_p90);
  auto* b = m.mutable_batched();
  b->set_batch_size(r.batch_size);
  b->set_ms_per_sentence(r.batched_ms_per_sentence);
  b->set_sentences_per_s(r.sentences_per_s);
  b->set_tokens_per_s(r.tokens_per_s);
  if (cell) {
    m.set_direction(cell->direction);
    m.set_method(cell->method);
    m.set_size(cell->size);
    m.set_sites(cell->sites);
  }
  return MessageToJson(m, false);
}

std::vector<EvalResult> ParseEvalResults(const std::string& text, const std::string& source) {
  std::vector<EvalResult> out;
  for (const auto& m : ParseJsonLines<v1::EvalResult>(text, source)) {
    EvalResult r;
    r.model_dir = m.model();
    r.name = m.name();
    r.src = m.src();
    r.tgt = m.tgt();
    r.parameters = static_cast<int64_t>(m.parameters());
    r.device = m.device();
    r.dtype = m.dtype();
    for (const auto& [name, s] : m.splits()) {
      SplitResult& split = r.splits[name];
      split.sentences = static_cast<size_t>(s.sentences());
      split.bleu_greedy = s.bleu_greedy();
      split.bleu_beam = s.has_bleu_beam() ? s.bleu_beam() : -1;
    }
    r.latency_sentences = m.latency_batch1().sentences();
    r.latency_ms_mean = m.latency_batch1().ms_mean();
    r.latency_ms_p50 = m.latency_batch1().ms_p50();
    r.latency_ms_p90 = m.latency_batch1().ms_p90();
    r.batch_size = m.batched().batch_size();
    r.batched_ms_per_sentence = m.batched().ms_per_sentence();
    r.sentences_per_s = m.batched().sentences_per_s();
    r.tokens_per_s = m.batched().tokens_per_s();
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace mixserve::offline
