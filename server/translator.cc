#include "server/translator.h"

#include <algorithm>
#include <mutex>
#include <random>

#include "server/log.h"
#include "server/sentence_plan.h"
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

// The label of a call's texts in error messages (sentence_plan.h).
std::string LabelOf(const TranslateCall& call) {
  if (call.method == "TranslateDocument") return "sentences";
  if (call.texts.size() == 1 && call.method != "TranslateBatch") return "text";
  return "texts";
}

// Feeds a call's sentence jobs to its variant's queue: all at once, or, with wait_for_room,
// in groups of at most the queue's size as room appears (Scheduler::WhenRoom).
//
// It holds the scheduler, not the variant: a waiting feeder is always woken before its
// scheduler is destroyed (Stop wakes every waiter and the completion thread runs them before
// the scheduler goes), and holding the variant could make the completion thread drop the last
// reference to its own scheduler.
class Feeder : public std::enable_shared_from_this<Feeder> {
 public:
  Feeder(const Variant& v, std::vector<SentenceJob> jobs, const TranslateCall& call)
      : scheduler_(v.scheduler.get()), id_(v.id), jobs_(std::move(jobs)),
        wait_(call.wait_for_room), deadline_(call.deadline), cancelled_(call.cancelled),
        queued_(call.queued) {}

  // Queues what fits; returns the outcome of the first Submit (the caller re-routes on
  // kStopped when nothing was queued, and answers RESOURCE_EXHAUSTED on kQueueFull when the
  // call does not wait). Later groups follow from the scheduler's completion thread.
  Scheduler::Admit Start() {
    if (jobs_.empty()) return Scheduler::Admit::kAccepted;
    if (!wait_) {
      Scheduler::Admit a = scheduler_->Submit(std::move(jobs_));
      if (a == Scheduler::Admit::kAccepted && queued_) queued_->Fire();
      return a;
    }
    return Go(true);
  }

 private:
  Scheduler::Admit Go(bool first) {
    const size_t group = static_cast<size_t>(std::max(1, scheduler_->max_queue_size()));
    while (next_ < jobs_.size()) {
      const size_t n = std::min(group, jobs_.size() - next_);
      // Copies: a refused Submit destroys what it was given.
      std::vector<SentenceJob> part(jobs_.begin() + static_cast<long>(next_),
                                    jobs_.begin() + static_cast<long>(next_ + n));
      Scheduler::Admit a = scheduler_->Submit(std::move(part));
      if (a == Scheduler::Admit::kAccepted) {
        for (size_t i = next_; i < next_ + n; ++i) jobs_[i].done = nullptr;
        next_ += n;
        first = false;
        continue;
      }
      if (a == Scheduler::Admit::kStopped) {
        if (first) return a;  // nothing queued: the caller routes the call elsewhere
        FailRest(SentenceOutcome::Code::kUnavailable,
                 "variant " + id_.ToString() + " is unloading; retry");
        return Scheduler::Admit::kAccepted;
      }
      if (cancelled_ && cancelled_->load()) {
        FailRest(SentenceOutcome::Code::kCancelled, "cancelled while waiting for room");
      } else if (SteadyClock::now() >= deadline_) {
        FailRest(SentenceOutcome::Code::kDeadlineExceeded,
                 "deadline expired while waiting for room in the queue of variant " +
                     id_.ToString());
      } else {
        auto self = shared_from_this();
        scheduler_->WhenRoom(n, deadline_, cancelled_, [self] { self->Go(false); });
      }
      return Scheduler::Admit::kAccepted;
    }
    if (queued_) queued_->Fire();
    jobs_.clear();
    return Scheduler::Admit::kAccepted;
  }

  void FailRest(SentenceOutcome::Code code, const std::string& message) {
    for (size_t i = next_; i < jobs_.size(); ++i) {
      SentenceOutcome o;
      o.code = code;
      o.message = message;
      if (jobs_[i].done) jobs_[i].done(std::move(o));
    }
    next_ = jobs_.size();
    jobs_.clear();
    if (queued_) queued_->Fire();
  }

  Scheduler* scheduler_;
  VariantId id_;
  std::vector<SentenceJob> jobs_;
  size_t next_ = 0;
  bool wait_;
  SteadyClock::time_point deadline_;
  std::shared_ptr<std::atomic<bool>> cancelled_;
  std::shared_ptr<QueuedSignal> queued_;
};

// One piece's result (a whole sentence is one piece).
struct PieceResult {
  std::string text;
  int tokens = 0;
  float score = 0;
  std::vector<Hypothesis> hyps;  // the n-best list, whole sentences only
};

std::string Joined(const std::vector<PieceResult>& pieces) {
  std::string out;
  for (const auto& p : pieces) {
    if (p.text.empty()) continue;
    if (!out.empty()) out += ' ';
    out += p.text;
  }
  return out;
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

std::string Translator::SourceLanguage(const TranslateCall& call) const {
  if (!call.source_language.empty() || call.variant.name().empty()) return call.source_language;
  for (const auto& l : repository_->Loaded())
    if (l.id.name == call.variant.name() &&
        (call.variant.version() == 0 || l.id.version == call.variant.version()))
      return l.source_language;
  return "";
}

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
  if (call.queued) call.queued->Fire();
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
  auto plan = std::make_shared<CallPlan>();
  grpc::Status s = PlanCall(call.texts, call.options, *v, LabelOf(call),
                            call.method == "TranslateDocument", plan.get());
  if (!s.ok()) return fail(s, v->id);
  auto submit_time = SteadyClock::now();
  if (submit_time >= call.deadline)
    return fail({grpc::StatusCode::DEADLINE_EXCEEDED, "deadline expired before queueing"}, v->id);

  const size_t n = call.texts.size();
  std::shared_ptr<ShadowJoin> join;
  if (route.shadow) {
    join = std::make_shared<ShadowJoin>(n);
    join->metrics =
        metrics_->ForShadow(v->id.name, v->id.version, route.shadow_id.name,
                            route.shadow_id.version);
  }
  struct State {
    std::mutex mu;
    size_t remaining;  // sentences not complete
    TranslateResult result;
    bool failed = false;
    std::vector<std::vector<PieceResult>> pieces;  // per sentence, per piece
    std::vector<size_t> pieces_left;
    std::vector<double> queue_s, compute_s;
  };
  auto state = std::make_shared<State>();
  state->remaining = n;
  state->result.variant = v->id;
  state->result.translations.resize(n);
  state->pieces.resize(n);
  state->pieces_left.resize(n);
  state->queue_s.assign(n, 0.0);
  state->compute_s.assign(n, 0.0);
  for (size_t i = 0; i < n; ++i) {
    state->pieces[i].resize(plan->sentences[i].pieces.size());
    state->pieces_left[i] = plan->sentences[i].pieces.size();
  }
  auto shared_call = std::make_shared<TranslateCall>(call);
  auto shared_done = std::make_shared<std::function<void(TranslateResult&&)>>(done);
  std::shared_ptr<const Tokenizer> detok = v->target_tokenizer;
  VariantMetrics* m = v->metrics;
  const VariantId id = v->id;

  // A sentence whose pieces are all back: its answer, metrics, shadow pairing; the last
  // sentence finishes the call.
  auto complete = [this, state, shared_call, shared_done, plan, start, m, id, join,
                   detok](size_t i) {
    const SentencePlan& sp = plan->sentences[i];
    v1::TranslateResponse resp;
    std::string text;
    bool ok;
    {
      std::lock_guard<std::mutex> lock(state->mu);
      ok = !state->failed;
    }
    // Queue and compute time once a sentence (its longest piece), whole or in pieces.
    if (!sp.pieces.empty()) {
      m->queue_seconds->Observe(state->queue_s[i]);
      if (ok) m->compute_seconds->Observe(state->compute_s[i]);
    }
    if (ok) {
      auto& pieces = state->pieces[i];  // no piece of sentence i is written any more
      int out_tokens = 0;
      float score = 0;
      for (const auto& p : pieces) {
        out_tokens += p.tokens;
        score += p.score;
      }
      if (!pieces.empty()) score /= static_cast<float>(pieces.size());
      text = sp.pieces.empty() ? shared_call->texts[i] : Joined(pieces);
      resp.set_request_id(shared_call->request_id);
      resp.set_translation(text);
      resp.mutable_variant()->set_name(id.name);
      resp.mutable_variant()->set_version(id.version);
      resp.set_input_tokens(sp.input_tokens);
      resp.set_output_tokens(out_tokens);
      resp.set_score(score);
      if (pieces.size() > 1) resp.set_pieces(static_cast<int>(pieces.size()));
      resp.mutable_timings()->set_queue_ms(state->queue_s[i] * 1000);
      resp.mutable_timings()->set_compute_ms(state->compute_s[i] * 1000);
      if (shared_call->options.n_best() > 1) {
        if (pieces.size() == 1) {
          for (const auto& h : pieces[0].hyps) {
            auto* nb = resp.add_n_best();
            try {
              nb->set_text(detok->Decode(h.tokens));
            } catch (const std::exception&) {
              nb->set_text("");  // the best hypothesis decoded; an odd alternative is left empty
            }
            nb->set_score(h.score);
          }
        } else {
          auto* nb = resp.add_n_best();  // pieces: their best, together
          nb->set_text(text);
          nb->set_score(score);
        }
      }
      m->input_tokens->Increment(sp.input_tokens);
      m->sentences->Increment();
      const std::string reference =
          i < shared_call->references.size() ? shared_call->references[i] : "";
      if (!reference.empty()) {
        try {
          m->AddBleu(SentenceStats(text, {reference}));
        } catch (const std::exception& e) {
          LOG_DEBUG("request id=" << LogQuote(shared_call->request_id)
                                  << " reference skipped for BLEU: " << e.what());
        }
      }
    }
    if (join) join->Set(i, false, ok, text);
    bool last;
    {
      std::lock_guard<std::mutex> lock(state->mu);
      state->result.queue_ms = std::max(state->result.queue_ms, state->queue_s[i] * 1000);
      state->result.compute_ms = std::max(state->result.compute_ms, state->compute_s[i] * 1000);
      state->result.translations[i] = std::move(resp);
      last = --state->remaining == 0;
    }
    if (!last) return;
    TranslateResult r = std::move(state->result);
    if (!r.status.ok()) r.translations.clear();
    for (auto& t : r.translations)
      t.mutable_timings()->set_total_ms(Ms(SteadyClock::now() - start));
    if (r.status.ok() && shared_call->method != "Translate" &&
        shared_call->method != "TranslateStream")
      CheckAnswerSize(&r);
    Finish(*shared_call, start, std::move(r), *shared_done);
  };

  std::vector<SentenceJob> jobs;
  jobs.reserve(plan->jobs());
  for (size_t i = 0; i < n; ++i) {
    const SentencePlan& sp = plan->sentences[i];
    const bool whole = sp.pieces.size() == 1;
    for (size_t k = 0; k < sp.pieces.size(); ++k) {
      SentenceJob job;
      job.src = sp.pieces[k];
      job.lane = sp.lane;
      job.options = sp.lane == 1 ? plan->long_options : plan->options;
      if (!whole) job.options.n_best = 1;  // pieces: their best only
      job.deadline = call.deadline;
      job.cancelled = call.cancelled;
      job.done = [state, complete, detok, m, i, k, whole](SentenceOutcome&& o) {
        grpc::Status st = ToStatus(o);
        PieceResult piece;
        if (st.ok()) {
          if (o.hyps.empty()) {
            st = {grpc::StatusCode::INTERNAL, "engine returned no hypothesis"};
          } else {
            try {
              piece.text = detok->Decode(o.hyps[0].tokens);
              piece.tokens = static_cast<int>(o.hyps[0].tokens.size());
              piece.score = o.hyps[0].score;
              if (whole) piece.hyps = std::move(o.hyps);
            } catch (const std::exception& e) {
              st = {grpc::StatusCode::INTERNAL,
                    std::string("detokenization failed: ") + e.what()};
            }
          }
        }
        if (st.ok()) m->output_tokens->Increment(piece.tokens);
        bool sentence_done;
        {
          std::lock_guard<std::mutex> lock(state->mu);
          if (!st.ok() && !state->failed) {
            state->failed = true;
            state->result.status = st;
          }
          state->pieces[i][k] = std::move(piece);
          state->queue_s[i] = std::max(state->queue_s[i], o.queue_seconds);
          state->compute_s[i] = std::max(state->compute_s[i], o.compute_seconds);
          sentence_done = --state->pieces_left[i] == 0;
        }
        if (sentence_done) complete(i);
      };
      jobs.push_back(std::move(job));
    }
  }
  const size_t job_count = jobs.size();
  auto feeder = std::make_shared<Feeder>(*v, std::move(jobs), call);
  Scheduler::Admit a = feeder->Start();
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
  // Sentences without tokens (documents) are answered with themselves, once the call is
  // accepted; with no job at all, that finishes the call.
  for (size_t i = 0; i < n; ++i)
    if (plan->sentences[i].pieces.empty()) complete(i);
  if (job_count == 0 && call.queued) call.queued->Fire();
  if (join) RunShadow(call, v->id, route.shadow_id, join);
  return Scheduler::Admit::kAccepted;
}

void Translator::RunShadow(const TranslateCall& call, const VariantId& primary,
                           const VariantId& shadow_id, std::shared_ptr<ShadowJoin> join) {
  auto start = SteadyClock::now();
  std::shared_ptr<Variant> v = repository_->Get(shadow_id);
  const size_t n = call.texts.size();
  auto skip = [&](const grpc::Status& s) {
    metrics_->CountRequest("shadow", shadow_id.name, shadow_id.version, call.source_language,
                           call.target_language, StatusCodeName(s.error_code()), 0);
    for (size_t i = 0; i < n; ++i) join->Set(i, true, false, "");
  };
  if (!v) return skip({grpc::StatusCode::UNAVAILABLE, "shadow unloaded"});
  CallPlan plan;
  grpc::Status s = PlanCall(call.texts, call.options, *v, LabelOf(call),
                            call.method == "TranslateDocument", &plan);
  if (!s.ok()) return skip(s);
  struct State {
    std::mutex mu;
    size_t remaining;
    grpc::Status status;
  };
  auto state = std::make_shared<State>();
  auto shared_call = std::make_shared<TranslateCall>(call);  // one copy for every job
  std::vector<SentenceJob> jobs;
  std::vector<size_t> skipped;
  for (size_t i = 0; i < n; ++i) {
    // The shadow compares whole sentences only: one cut into pieces is left out.
    if (plan.sentences[i].pieces.size() != 1) {
      skipped.push_back(i);
      continue;
    }
    SentenceJob job;
    job.src = plan.sentences[i].pieces[0];
    job.lane = plan.sentences[i].lane;
    job.options = job.lane == 1 ? plan.long_options : plan.options;
    std::shared_ptr<const Tokenizer> detok = v->target_tokenizer;
    VariantMetrics* m = v->metrics;
    const int input_tokens = plan.sentences[i].input_tokens;
    job.done = [this, state, shared_call, start, i, detok, m, input_tokens, join,
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
    jobs.push_back(std::move(job));
  }
  for (size_t i : skipped) join->Set(i, true, false, "");
  if (jobs.empty()) return;
  state->remaining = jobs.size();
  Scheduler::Admit a = v->scheduler->Submit(std::move(jobs));
  if (a != Scheduler::Admit::kAccepted)
    skip({a == Scheduler::Admit::kQueueFull ? grpc::StatusCode::RESOURCE_EXHAUSTED
                                            : grpc::StatusCode::UNAVAILABLE,
          "shadow not queued"});
  (void)primary;
}

}  // namespace mixserve
