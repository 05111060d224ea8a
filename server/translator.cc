#include "server/translator.h"

#include <algorithm>
#include <mutex>
#include <random>

#include "server/log.h"
#include "text/bleu.h"

namespace mixserve {

const char* StatusCodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return "OK";
    case grpc::StatusCode::CANCELLED: return "CANCELLED";
    case grpc::StatusCode::UNKNOWN: return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND: return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS: return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED: return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE: return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED: return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL: return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS: return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED: return "UNAUTHENTICATED";
    default: return "UNKNOWN";
  }
}

namespace {

double Ms(SteadyClock::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

double Uniform() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

grpc::Status ToStatus(const SentenceOutcome& o) {
  switch (o.code) {
    case SentenceOutcome::Code::kOk: return grpc::Status::OK;
    case SentenceOutcome::Code::kCancelled:
      return {grpc::StatusCode::CANCELLED, o.message};
    case SentenceOutcome::Code::kDeadlineExceeded:
      return {grpc::StatusCode::DEADLINE_EXCEEDED, o.message};
    case SentenceOutcome::Code::kUnavailable:
      return {grpc::StatusCode::UNAVAILABLE, o.message};
    default: return {grpc::StatusCode::INTERNAL, o.message};
  }
}

// A request's sentences, tokenized for one variant.
struct Dispatch {
  std::shared_ptr<Variant> variant;
  std::vector<std::vector<int>> ids;
  DecodeOptions options;
};

grpc::Status Prepare(const TranslateCall& call, const std::shared_ptr<Variant>& v,
                     Dispatch* d) {
  d->variant = v;
  const auto& o = call.options;
  int beam = o.beam_size() > 0 ? o.beam_size() : v->serving.default_beam_size();
  int n_best = std::max(1, o.n_best());
  if (n_best > beam)
    return {grpc::StatusCode::INVALID_ARGUMENT,
            "options.n_best " + std::to_string(n_best) + " is above the beam size " +
                std::to_string(beam) + " of variant " + v->id.ToString()};
  d->options.beam_size = beam;
  d->options.n_best = n_best;
  d->options.max_output_tokens = o.max_output_tokens() > 0
                                     ? std::min(o.max_output_tokens(), v->max_output_tokens)
                                     : v->max_output_tokens;
  d->options.length_penalty = o.length_penalty() > 0 ? o.length_penalty() : 1.0f;
  for (size_t i = 0; i < call.texts.size(); ++i) {
    std::string what = call.texts.size() == 1 && call.method != "TranslateBatch"
                           ? std::string("text")
                           : "texts[" + std::to_string(i) + "]";
    std::vector<int> ids = v->tokenizer->Encode(call.texts[i]);
    if (ids.empty())
      return {grpc::StatusCode::INVALID_ARGUMENT, what + " yields no tokens"};
    if (static_cast<int>(ids.size()) > v->max_input_tokens)
      return {grpc::StatusCode::INVALID_ARGUMENT,
              what + " is " + std::to_string(ids.size()) +
                  " tokens after tokenization; variant " + v->id.ToString() +
                  " accepts at most " + std::to_string(v->max_input_tokens) + " (max_len " +
                  std::to_string(v->spec.max_len) + " with BOS/EOS)"};
    d->ids.push_back(std::move(ids));
  }
  return grpc::Status::OK;
}

}  // namespace

// Pairs each sentence's primary and shadow outputs; whichever arrives second records the
// shadow's BLEU statistics against the primary output.
struct ShadowJoin {
  std::mutex mu;
  std::vector<std::string> primary, shadow;
  std::vector<int> have;  // bit 1: primary, bit 2: shadow, 4: one of them failed
  ShadowMetrics* metrics = nullptr;
  explicit ShadowJoin(size_t n) : primary(n), shadow(n), have(n, 0) {}
  void Set(size_t i, bool is_shadow, bool ok, const std::string& text) {
    std::string p, s;
    {
      std::lock_guard<std::mutex> lock(mu);
      if (!ok) have[i] |= 4;
      (is_shadow ? shadow[i] : primary[i]) = text;
      have[i] |= is_shadow ? 2 : 1;
      if (have[i] != 3) return;
      have[i] = 8;  // recorded
      p = primary[i];
      s = shadow[i];
    }
    try {
      metrics->Add(SentenceStats(s, {p}));
    } catch (const std::exception&) {
      // An empty primary output has no n-grams to agree with: nothing to record.
    }
  }
};

Translator::Translator(const v1::ServerConfig& config, ModelRepository* repository,
                       Router* router, Metrics* metrics)
    : config_(config), repository_(repository), router_(router), metrics_(metrics) {}

std::string Translator::NewRequestId() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char* hex = "0123456789abcdef";
  uint64_t x = rng();
  std::string id(16, '0');
  for (int i = 0; i < 16; ++i) id[i] = hex[(x >> (4 * i)) & 15];
  return id;
}

SteadyClock::time_point Translator::SteadyDeadline(std::chrono::system_clock::time_point d) {
  if (d == std::chrono::system_clock::time_point::max()) return SteadyClock::time_point::max();
  auto left = d - std::chrono::system_clock::now();
  // Far-future deadlines (years) are as good as none and would overflow the conversion.
  if (left > std::chrono::hours(24 * 365)) return SteadyClock::time_point::max();
  return SteadyClock::now() + std::chrono::duration_cast<SteadyClock::duration>(left);
}

void Translator::Finish(const TranslateCall& call, SteadyClock::time_point start,
                        TranslateResult&& r, const std::function<void(TranslateResult&&)>& done) {
  r.total_ms = Ms(SteadyClock::now() - start);
  std::string model = r.variant.name;
  metrics_->CountRequest(call.method, model, r.variant.version, call.source_language,
                         call.target_language, StatusCodeName(r.status.error_code()),
                         r.total_ms / 1000.0);
  if (!r.status.ok()) {
    LOG_WARNING("request id=" << LogQuote(call.request_id) << " method=" << call.method
                              << " variant=" << (model.empty() ? "-" : r.variant.ToString())
                              << " code=" << StatusCodeName(r.status.error_code())
                              << " error=" << LogQuote(r.status.error_message())
                              << " ms=" << r.total_ms);
  } else {
    LOG_DEBUG("request id=" << LogQuote(call.request_id) << " method=" << call.method
                            << " variant=" << r.variant.ToString() << " code=OK sentences="
                            << call.texts.size() << " queue_ms=" << r.queue_ms
                            << " compute_ms=" << r.compute_ms << " ms=" << r.total_ms);
  }
  --in_flight_;
  done(std::move(r));
}

void Translator::CheckAnswerSize(TranslateResult* r) const {
  const int64_t limit = config_.limits().max_message_bytes();
  if (limit <= 0) return;
  // The batch answer: each translation as a length-delimited field, plus the request id,
  // variant and timings (well under 256 bytes).
  size_t size = 256;
  for (const auto& t : r->translations) size += t.ByteSizeLong() + 6;
  if (size <= static_cast<size_t>(limit)) return;
  r->translations.clear();
  // gRPC would refuse to send it with a bare "Sent message larger than max".
  r->status = grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                           "response of about " + std::to_string(size) +
                               " bytes is above the limit of " + std::to_string(limit) +
                               " (limits.max_message_bytes); send fewer texts per call");
}

void Translator::Reject(const TranslateCall& call, const grpc::Status& status) {
  ++in_flight_;
  TranslateResult r;
  r.status = status;
  Finish(call, SteadyClock::now(), std::move(r), [](TranslateResult&&) {});
}

void Translator::Run(TranslateCall call, std::function<void(TranslateResult&&)> done) {
  auto start = SteadyClock::now();
  if (call.request_id.empty()) call.request_id = NewRequestId();
  ++in_flight_;
  auto fail = [&](grpc::Status s, const VariantId& id = {}) {
    TranslateResult r;
    r.status = std::move(s);
    r.variant = id;
    Finish(call, start, std::move(r), done);
  };
  if (draining_) return fail({grpc::StatusCode::UNAVAILABLE, "server is shutting down"});

  // A variant unloaded between routing and queueing is routed around (a few attempts).
  for (int attempt = 0;; ++attempt) {
    std::vector<LoadedVariant> loaded = repository_->Loaded();
    RouteDecision route = router_->Route(call.source_language, call.target_language,
                                         call.variant, call.routing_key, loaded, Uniform(),
                                         Uniform());
    if (!route.status.ok()) {
      // A named variant that failed (to load, or while decoding) is UNAVAILABLE, not unknown.
      if (route.status.error_code() == grpc::StatusCode::NOT_FOUND && !call.variant.name().empty()) {
        std::string why = repository_->UnavailableReason(call.variant.name(), call.variant.version());
        if (!why.empty()) return fail({grpc::StatusCode::UNAVAILABLE, why});
      }
      return fail(route.status);
    }
    std::shared_ptr<Variant> v = repository_->Get(route.primary);
    if (!v) {
      if (attempt < 3) continue;
      return fail({grpc::StatusCode::UNAVAILABLE,
                   "variant " + route.primary.ToString() + " was just unloaded; retry"});
    }
    Scheduler::Admit a = Submit(call, start, route, v, done, attempt >= 3);
    if (a == Scheduler::Admit::kStopped && attempt < 3) continue;
    return;
  }
}

Scheduler::Admit Translator::Submit(TranslateCall call, SteadyClock::time_point start,
                                    const RouteDecision& route, std::shared_ptr<Variant> v,
                                    std::function<void(TranslateResult&&)>& done,
                                    bool last_attempt) {
  auto fail = [&](grpc::Status s, const VariantId& id = {}) {
    TranslateResult r;
    r.status = std::move(s);
    r.variant = id;
    Finish(call, start, std::move(r), done);
    return Scheduler::Admit::kAccepted;
  };
  if (call.source_language.empty()) call.source_language = v->spec.source_language;
  if (call.target_language.empty()) call.target_language = v->spec.target_language;
  Dispatch d;
  grpc::Status s = Prepare(call, v, &d);
  if (!s.ok()) return fail(s, v->id);
  auto submit_time = SteadyClock::now();
  if (submit_time >= call.deadline)
    return fail({grpc::StatusCode::DEADLINE_EXCEEDED, "deadline expired before queueing"}, v->id);

  size_t n = call.texts.size();
  std::shared_ptr<ShadowJoin> join;
  if (route.shadow) {
    join = std::make_shared<ShadowJoin>(n);
    join->metrics =
        metrics_->ForShadow(v->id.name, v->id.version, route.shadow_id.name,
                            route.shadow_id.version);
  }
  struct State {
    std::mutex mu;
    size_t remaining;
    TranslateResult result;
    bool failed = false;
  };
  auto state = std::make_shared<State>();
  state->remaining = n;
  state->result.variant = v->id;
  state->result.translations.resize(n);
  auto shared_call = std::make_shared<TranslateCall>(call);
  auto shared_done = std::make_shared<std::function<void(TranslateResult&&)>>(done);

  std::vector<SentenceJob> jobs(n);
  for (size_t i = 0; i < n; ++i) {
    SentenceJob& job = jobs[i];
    job.src = d.ids[i];
    job.options = d.options;
    job.deadline = call.deadline;
    job.cancelled = call.cancelled;
    std::string reference = i < call.references.size() ? call.references[i] : "";
    int input_tokens = static_cast<int>(d.ids[i].size());
    std::shared_ptr<const Tokenizer> detok = v->target_tokenizer;
    VariantMetrics* m = v->metrics;
    VariantId id = v->id;
    job.done = [this, state, shared_call, shared_done, start, i, reference, input_tokens, detok,
                m, id, join](SentenceOutcome&& o) {
      v1::TranslateResponse resp;
      grpc::Status st = ToStatus(o);
      std::string text;
      if (st.ok()) {
        if (o.hyps.empty()) {
          st = {grpc::StatusCode::INTERNAL, "engine returned no hypothesis"};
        } else {
          try {
            text = detok->Decode(o.hyps[0].tokens);
          } catch (const std::exception& e) {
            st = {grpc::StatusCode::INTERNAL, std::string("detokenization failed: ") + e.what()};
          }
        }
        if (st.ok()) {
          resp.set_request_id(shared_call->request_id);
          resp.set_translation(text);
          resp.mutable_variant()->set_name(id.name);
          resp.mutable_variant()->set_version(id.version);
          resp.set_input_tokens(input_tokens);
          resp.set_output_tokens(static_cast<int>(o.hyps[0].tokens.size()));
          resp.set_score(o.hyps[0].score);
          resp.mutable_timings()->set_queue_ms(o.queue_seconds * 1000);
          resp.mutable_timings()->set_compute_ms(o.compute_seconds * 1000);
          if (shared_call->options.n_best() > 1)
            for (const auto& h : o.hyps) {
              auto* nb = resp.add_n_best();
              try {
                nb->set_text(detok->Decode(h.tokens));
              } catch (const std::exception&) {
                nb->set_text("");  // the best hypothesis decoded; an odd alternative is left empty
              }
              nb->set_score(h.score);
            }
          m->input_tokens->Increment(input_tokens);
          m->output_tokens->Increment(static_cast<double>(o.hyps[0].tokens.size()));
          m->sentences->Increment();
          if (!reference.empty()) {
            try {
              m->AddBleu(SentenceStats(text, {reference}));
            } catch (const std::exception& e) {
              LOG_DEBUG("request id=" << LogQuote(shared_call->request_id)
                                      << " reference skipped for BLEU: " << e.what());
            }
          }
        }
      }
      m->queue_seconds->Observe(o.queue_seconds);
      if (st.ok()) m->compute_seconds->Observe(o.compute_seconds);
      if (join) join->Set(i, false, st.ok(), text);
      bool last;
      {
        std::lock_guard<std::mutex> lock(state->mu);
        if (!st.ok() && !state->failed) {
          state->failed = true;
          state->result.status = st;
        }
        state->result.queue_ms = std::max(state->result.queue_ms, o.queue_seconds * 1000);
        state->result.compute_ms = std::max(state->result.compute_ms, o.compute_seconds * 1000);
        state->result.translations[i] = std::move(resp);
        last = --state->remaining == 0;
      }
      if (!last) return;
      TranslateResult r = std::move(state->result);
      if (!r.status.ok()) r.translations.clear();
      for (auto& t : r.translations) t.mutable_timings()->set_total_ms(Ms(SteadyClock::now() - start));
      if (r.status.ok() && shared_call->method == "TranslateBatch") CheckAnswerSize(&r);
      Finish(*shared_call, start, std::move(r), *shared_done);
    };
  }
  Scheduler::Admit a = v->scheduler->Submit(std::move(jobs));
  if (a == Scheduler::Admit::kStopped && !last_attempt) return a;  // caller re-routes
  if (a != Scheduler::Admit::kAccepted) {
    TranslateResult r;
    r.variant = v->id;
    r.status = a == Scheduler::Admit::kQueueFull
                   ? grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                  "queue of variant " + v->id.ToString() + " is full (" +
                                      std::to_string(v->serving.batching().max_queue_size()) +
                                      " sentences)")
                   : grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                  "variant " + v->id.ToString() + " is unloading; retry");
    Finish(call, start, std::move(r), *shared_done);
    return Scheduler::Admit::kAccepted;
  }
  if (join) {
    auto primary_out = std::make_shared<std::vector<std::string>>();
    RunShadow(call, v->id, route.shadow_id, primary_out, join);
  }
  return Scheduler::Admit::kAccepted;
}

void Translator::RunShadow(const TranslateCall& call, const VariantId& primary,
                           const VariantId& shadow_id,
                           std::shared_ptr<std::vector<std::string>> /*primary_out*/,
                           std::shared_ptr<ShadowJoin> join) {
  auto start = SteadyClock::now();
  std::shared_ptr<Variant> v = repository_->Get(shadow_id);
  auto skip = [&](const grpc::Status& s) {
    metrics_->CountRequest("shadow", shadow_id.name, shadow_id.version, call.source_language,
                           call.target_language, StatusCodeName(s.error_code()), 0);
    for (size_t i = 0; i < call.texts.size(); ++i) join->Set(i, true, false, "");
  };
  if (!v) return skip({grpc::StatusCode::UNAVAILABLE, "shadow unloaded"});
  Dispatch d;
  grpc::Status s = Prepare(call, v, &d);
  if (!s.ok()) return skip(s);
  size_t n = call.texts.size();
  struct State {
    std::mutex mu;
    size_t remaining;
    grpc::Status status;
  };
  auto state = std::make_shared<State>();
  state->remaining = n;
  std::vector<SentenceJob> jobs(n);
  auto shared_call = std::make_shared<TranslateCall>(call);
  for (size_t i = 0; i < n; ++i) {
    jobs[i].src = d.ids[i];
    jobs[i].options = d.options;
    std::shared_ptr<const Tokenizer> detok = v->target_tokenizer;
    VariantMetrics* m = v->metrics;
    int input_tokens = static_cast<int>(d.ids[i].size());
    jobs[i].done = [this, state, shared_call, start, i, detok, m, input_tokens, join,
                    shadow_id](SentenceOutcome&& o) {
      grpc::Status st = ToStatus(o);
      std::string text;
      if (st.ok() && !o.hyps.empty()) {
        try {
          text = detok->Decode(o.hyps[0].tokens);
        } catch (const std::exception& e) {
          st = {grpc::StatusCode::INTERNAL, std::string("detokenization failed: ") + e.what()};
        }
      }
      if (st.ok() && !o.hyps.empty()) {
        m->input_tokens->Increment(input_tokens);
        m->output_tokens->Increment(static_cast<double>(o.hyps[0].tokens.size()));
        m->sentences->Increment();
        m->compute_seconds->Observe(o.compute_seconds);
      }
      m->queue_seconds->Observe(o.queue_seconds);
      join->Set(i, true, st.ok(), text);
      bool last;
      {
        std::lock_guard<std::mutex> lock(state->mu);
        if (!st.ok() && state->status.ok()) state->status = st;
        last = --state->remaining == 0;
      }
      if (last)
        metrics_->CountRequest("shadow", shadow_id.name, shadow_id.version,
                               shared_call->source_language, shared_call->target_language,
                               StatusCodeName(state->status.error_code()),
                               std::chrono::duration<double>(SteadyClock::now() - start).count());
    };
  }
  Scheduler::Admit a = v->scheduler->Submit(std::move(jobs));
  if (a != Scheduler::Admit::kAccepted)
    skip({a == Scheduler::Admit::kQueueFull ? grpc::StatusCode::RESOURCE_EXHAUSTED
                                            : grpc::StatusCode::UNAVAILABLE,
          "shadow not queued"});
  (void)primary;
}

}  // namespace mixserve
