// The request path shared by the three translation RPCs: validate, route, tokenize, queue
// on the variant's scheduler (plus an optional shadow copy), detokenize, record metrics.
#pragma once

#include <grpcpp/support/status.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "mixserve/v1/config.pb.h"
#include "mixserve/v1/translation.pb.h"
#include "server/metrics.h"
#include "server/model_repository.h"
#include "server/router.h"

namespace mixserve {

// Fired once: when every sentence of a call is queued on its variant, or when the call ends
// without that (refused, failed). TranslateStream reads its next message only then, so that a
// full queue stops the stream instead of failing its requests (flow control).
class QueuedSignal {
 public:
  explicit QueuedSignal(std::function<void()> f) : f_(std::move(f)) {}
  void Fire() {
    if (!fired_.exchange(true) && f_) f_();
  }

 private:
  std::atomic<bool> fired_{false};
  std::function<void()> f_;
};

struct TranslateCall {
  // "Translate", "TranslateBatch", "TranslateStream", "TranslateDocument"
  std::string method;
  std::string request_id;
  std::string source_language, target_language;
  v1::VariantRef variant;
  std::string routing_key;
  v1::DecodingOptions options;
  std::vector<std::string> texts;
  std::vector<std::string> references;  // empty or one per text
  SteadyClock::time_point deadline = SteadyClock::time_point::max();
  std::shared_ptr<std::atomic<bool>> cancelled;
  // With a full queue, wait for room (up to the deadline) instead of answering
  // RESOURCE_EXHAUSTED; sentences are queued in groups of at most the queue's size, so a call
  // may hold more sentences than the queue (documents, streams).
  bool wait_for_room = false;
  std::shared_ptr<QueuedSignal> queued;  // may be null
};

struct TranslateResult {
  grpc::Status status;
  std::vector<v1::TranslateResponse> translations;  // one per text when OK
  VariantId variant;
  double queue_ms = 0, compute_ms = 0, total_ms = 0;
};

class Translator {
 public:
  Translator(const v1::ServerConfig& config, ModelRepository* repository, Router* router,
             Metrics* metrics);

  // Calls `done` exactly once (possibly before returning) with the result. Field checks
  // must have passed already (server/validation.h).
  void Run(TranslateCall call, std::function<void(TranslateResult&&)> done);

  // Counts and logs a call refused before it reached Run (failed field checks).
  void Reject(const TranslateCall& call, const grpc::Status& status);

  // Refuse new calls with UNAVAILABLE (draining).
  void SetDraining() { draining_ = true; }
  bool draining() const { return draining_; }
  // Calls accepted and not yet answered.
  int64_t in_flight() const { return in_flight_; }

  // The source language of a call: its own, else that of the variant it names ("" when
  // neither is known).
  std::string SourceLanguage(const TranslateCall& call) const;

  static std::string NewRequestId();
  static SteadyClock::time_point SteadyDeadline(std::chrono::system_clock::time_point d);

 private:
  void Finish(const TranslateCall& call, SteadyClock::time_point start, TranslateResult&& r,
              const std::function<void(TranslateResult&&)>& done);
  // A batch answer above limits.max_message_bytes becomes RESOURCE_EXHAUSTED naming the limit.
  void CheckAnswerSize(TranslateResult* r) const;
  // Prepares and queues the call on `v`; kStopped (variant unloading) is returned without
  // answering unless `last_attempt`; every other outcome answers through `done`.
  Scheduler::Admit Submit(TranslateCall call, SteadyClock::time_point start,
                          const RouteDecision& route, std::shared_ptr<Variant> v,
                          std::function<void(TranslateResult&&)>& done, bool last_attempt);
  void RunShadow(const TranslateCall& call, const VariantId& primary, const VariantId& shadow,
                 std::shared_ptr<struct ShadowJoin> join);

  v1::ServerConfig config_;
  ModelRepository* repository_;
  Router* router_;
  Metrics* metrics_;
  std::atomic<bool> draining_{false};
  std::atomic<int64_t> in_flight_{0};
};

const char* StatusCodeName(grpc::StatusCode code);

}  // namespace mixserve
