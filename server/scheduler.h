// The batching scheduler of one variant on one device: a bounded, deadline-aware queue in
// front of worker threads that run iteration-level (continuous) batching on the engine's
// DecodeSessions. New sentences join a running decode between steps, finished ones leave at
// once, and cancelled or expired ones are removed from the queue or the batch. With several
// workers (SchedulerOptions::workers: on the CPU, one decoding loop per core) each runs its
// own batch on the shared engine, and the queue is shared out between them.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "engine/engine.h"

namespace mixserve {

using SteadyClock = std::chrono::steady_clock;

struct SchedulerOptions {
  int max_batch_sentences = 64;
  int max_batch_tokens = 4096;    // source tokens in the running batch
  // With nothing running, how long the first queued sentence waits for a batch to fill (the
  // configuration's default: 0 with continuous batching, 2000 without; config.proto).
  int64_t max_queue_delay_us = 0;
  int max_queue_size = 1024;      // queued sentences
  bool continuous = true;         // false: a batch runs to its end before the next starts
  // Continuous batching with a decode running: queued sentences join once at least
  // join_min_sentences wait (capped by the room left in the batch) or the oldest has waited
  // max_join_delay_us (config.proto, BatchingConfig).
  int join_min_sentences = 1;
  int64_t max_join_delay_us = 0;
  // Test hook: while this file exists no decoding step runs (queued and running sentences
  // still leave on cancellation or deadline, and new ones are still queued and admitted).
  // Lets tests hold work on the server deterministically. Empty: off.
  std::string pause_file;
  // Test hook: every decoding step throws, as a broken engine would (MIXSERVE_TEST_FAIL_DECODE).
  bool fail_steps = false;
  // After this many failed engine calls in a row (and none succeeding in between), the
  // observer's `failed` callback is called once.
  int max_consecutive_failures = 3;
  // Decoding loops, each with its own running batch (and sessions) on the shared engine. A
  // loop takes queued sentences up to its share of all the work (queued and running, divided
  // by the loops), so that the batches stay balanced. At least 1.
  int workers = 1;
  // Called first on each worker thread (may be empty): e.g. its compute threads.
  std::function<void()> on_worker_start;
};

struct SentenceOutcome {
  enum class Code { kOk, kCancelled, kDeadlineExceeded, kUnavailable, kInternal };
  Code code = Code::kOk;
  std::string message;
  std::vector<Hypothesis> hyps;
  double queue_seconds = 0;
  double compute_seconds = 0;
};

struct SentenceJob {
  std::vector<int> src;  // token ids without BOS/EOS
  DecodeOptions options;
  // 0: the variant's engine; 1: its long-sentence engine (Scheduler's long_engine), built for
  // a longer max_len. Sentences of different lanes never share a decoding session.
  int lane = 0;
  SteadyClock::time_point deadline = SteadyClock::time_point::max();
  std::shared_ptr<std::atomic<bool>> cancelled;  // may be null
  // Called exactly once, from the worker thread (or from Submit's caller when refused).
  std::function<void(SentenceOutcome&&)> done;
};

// Observes queue and batch sizes (metrics); every callback may be empty.
struct SchedulerObserver {
  // Called with the scheduler's lock held (so that depths land in order): must not call
  // back into the scheduler.
  std::function<void(size_t)> queue_depth;
  std::function<void(size_t)> in_flight;
  std::function<void(size_t)> step_batch;  // sentences in one decoding step
  // Seconds of one loop phase: kAdmit (sentences joining: encoder, decoder state), kStep
  // (one decoding step of one session), kFinish (handing that step's finished sentences to
  // the completion thread, which detokenizes and answers them).
  enum class Phase { kAdmit, kStep, kFinish };
  std::function<void(Phase, double)> phase_seconds;
  // The engine failed max_consecutive_failures times in a row (worker thread; may call Stop).
  std::function<void(const std::string& error)> failed;
};

class Scheduler {
 public:
  enum class Admit { kAccepted, kQueueFull, kStopped };

  // `long_engine` (may be null) decodes the jobs of lane 1.
  Scheduler(Engine* engine, const SchedulerOptions& options, SchedulerObserver observer = {},
            Engine* long_engine = nullptr);
  ~Scheduler();  // drains: accepted work completes, then the workers stop
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // All or nothing: either every job is queued, or none is (kQueueFull when they do not fit,
  // kStopped after Stop()). Refused jobs' callbacks are not called.
  Admit Submit(std::vector<SentenceJob> jobs);
  // Flow control: calls `resume` once, from the completion thread, when `n` more sentences fit
  // the queue (at once if they do now), or when the scheduler stops, `deadline` passes or
  // `cancelled` is set; the callback tells which by calling Submit again and checking. Waiters
  // are woken in the order they came, an earlier one first even if a later one would fit.
  // `n` above max_queue_size never fits: it is woken at once.
  void WhenRoom(size_t n, SteadyClock::time_point deadline,
                std::shared_ptr<std::atomic<bool>> cancelled, std::function<void()> resume);
  int max_queue_size() const { return options_.max_queue_size; }
  // Refuses new work; queued and running sentences still complete.
  void Stop();
  // True once stopped and every accepted sentence has completed.
  bool Idle() const;
  size_t queued() const;

 private:
  struct Queued {
    uint64_t id;
    SentenceJob job;
    SteadyClock::time_point enqueued;
  };
  struct Active {
    SentenceJob job;
    SteadyClock::time_point enqueued, admitted;
  };
  struct Waiter {
    size_t n;
    SteadyClock::time_point deadline;
    std::shared_ptr<std::atomic<bool>> cancelled;
    std::function<void()> resume;
  };
  using OptionsKey = std::tuple<int, int, int, float, int>;  // lane, then the options
  struct Session {
    std::unique_ptr<DecodeSession> session;
    std::map<uint64_t, Active> active;
    size_t tokens = 0;
  };

  void Loop(size_t worker);
  // Picks queued jobs for `worker` to admit (oldest first, then those of the same options
  // with the nearest source length), at most its share of the work. Called with mu_ held.
  std::vector<Queued> PickLocked(size_t worker, size_t active, size_t active_tokens);
  // Whether the queued sentences should wait for more before joining a running decode.
  bool JoinLaterLocked(SteadyClock::time_point now, size_t active) const;
  // Hands the sentence's outcome to the completion thread (its callback detokenizes and
  // answers the call there, off the decoding loop).
  void Finish(SentenceJob& job, SentenceOutcome&& outcome);
  void CompleteLoop();
  // Counts a failed (or, with error "", a successful) engine call; any worker.
  void CountFailure(const std::string& error);
  // Publishes `worker`'s sentences in flight and reports the variant's total.
  void ReportInFlight(size_t worker, size_t in_flight);
  bool Paused() const;
  static OptionsKey KeyOf(const SentenceJob& j) {
    const DecodeOptions& o = j.options;
    return {j.lane, o.beam_size, o.max_output_tokens, o.length_penalty, o.n_best};
  }
  // Moves the waiters that may go on now (room, stop, deadline, cancellation) out of waiters_
  // and hands their callbacks to the completion thread. Called with mu_ held.
  void WakeWaitersLocked(SteadyClock::time_point now);

  Engine* engine_;
  Engine* long_engine_;
  SchedulerOptions options_;
  SchedulerObserver observer_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Queued> queue_;
  std::deque<Waiter> waiters_;
  bool stopping_ = false;
  bool finished_ = false;   // every worker has stopped
  size_t stopped_workers_ = 0;
  uint64_t next_id_ = 1;
  std::vector<size_t> worker_active_;  // sentences each worker runs (guarded by mu_)
  std::atomic<int> consecutive_failures_{0};
  std::mutex in_flight_mu_;
  std::vector<size_t> worker_in_flight_;  // guarded by in_flight_mu_
  std::vector<std::thread> workers_;
  // Completion callbacks waiting for the completion thread, and how many are not done yet.
  mutable std::mutex done_mu_;
  std::condition_variable done_cv_;
  std::deque<std::pair<std::function<void(SentenceOutcome&&)>, SentenceOutcome>> done_queue_;
  size_t done_pending_ = 0;
  bool done_stop_ = false;
  std::thread completer_;
};

}  // namespace mixserve
