#include "server/scheduler.h"

#include <algorithm>
#include <cstdlib>
#include <exception>
#include <stdexcept>

#include "server/log.h"

#include <unistd.h>

namespace mixserve {
namespace {
double Seconds(SteadyClock::duration d) { return std::chrono::duration<double>(d).count(); }
}  // namespace

Scheduler::Scheduler(Engine* engine, const SchedulerOptions& options,
                     SchedulerObserver observer, Engine* long_engine)
    : engine_(engine), long_engine_(long_engine), options_(options),
      observer_(std::move(observer)) {
  if (options_.max_batch_sentences < 1) options_.max_batch_sentences = 1;
  if (options_.max_batch_tokens < 1) options_.max_batch_tokens = 1;
  if (options_.max_queue_size < 1) options_.max_queue_size = 1;
  if (options_.workers < 1) options_.workers = 1;
  const auto n = static_cast<size_t>(options_.workers);
  worker_active_.assign(n, 0);
  worker_in_flight_.assign(n, 0);
  completer_ = std::thread([this] { CompleteLoop(); });
  for (size_t w = 0; w < n; ++w) workers_.emplace_back([this, w] { Loop(w); });
}

Scheduler::~Scheduler() {
  Stop();
  for (auto& w : workers_)
    if (w.joinable()) w.join();
  {
    std::lock_guard<std::mutex> lock(done_mu_);
    done_stop_ = true;
  }
  done_cv_.notify_one();
  if (completer_.joinable()) completer_.join();  // answers everything handed over first
}

Scheduler::Admit Scheduler::Submit(std::vector<SentenceJob> jobs) {
  auto now = SteadyClock::now();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return Admit::kStopped;
    if (queue_.size() + jobs.size() > static_cast<size_t>(options_.max_queue_size))
      return Admit::kQueueFull;
    for (auto& j : jobs) queue_.push_back(Queued{next_id_++, std::move(j), now});
    // Under the lock: written after it, a submit's depth could land after the loop's newer
    // one and leave the gauge stale.
    if (observer_.queue_depth) observer_.queue_depth(queue_.size());
  }
  cv_.notify_one();
  return Admit::kAccepted;
}

void Scheduler::WhenRoom(size_t n, SteadyClock::time_point deadline,
                         std::shared_ptr<std::atomic<bool>> cancelled,
                         std::function<void()> resume) {
  std::lock_guard<std::mutex> lock(mu_);
  waiters_.push_back(Waiter{n, deadline, std::move(cancelled), std::move(resume)});
  WakeWaitersLocked(SteadyClock::now());
}

void Scheduler::WakeWaitersLocked(SteadyClock::time_point now) {
  if (waiters_.empty()) return;
  const size_t max = static_cast<size_t>(options_.max_queue_size);
  size_t room = queue_.size() < max ? max - queue_.size() : 0;
  std::vector<std::function<void()>> wake;
  bool blocked = false;  // an earlier waiter does not fit: later ones wait behind it
  for (auto it = waiters_.begin(); it != waiters_.end();) {
    const bool gone = stopping_ || now >= it->deadline || (it->cancelled && it->cancelled->load());
    const bool fits = !blocked && (it->n <= room || it->n > max);
    if (gone || fits) {
      if (fits && !gone) room -= std::min(room, it->n);
      wake.push_back(std::move(it->resume));
      it = waiters_.erase(it);
    } else {
      blocked = true;
      ++it;
    }
  }
  if (wake.empty()) return;
  {
    std::lock_guard<std::mutex> done_lock(done_mu_);  // order: mu_, then done_mu_
    for (auto& f : wake) {
      done_queue_.emplace_back([f = std::move(f)](SentenceOutcome&&) { f(); }, SentenceOutcome{});
      ++done_pending_;
    }
  }
  done_cv_.notify_one();
}

void Scheduler::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    WakeWaitersLocked(SteadyClock::now());
  }
  cv_.notify_all();
}

bool Scheduler::Idle() const {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!finished_) return false;
  }
  std::lock_guard<std::mutex> lock(done_mu_);
  return done_pending_ == 0;
}

size_t Scheduler::queued() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.size();
}

void Scheduler::Finish(SentenceJob& job, SentenceOutcome&& outcome) {
  if (!job.done) return;
  {
    std::lock_guard<std::mutex> lock(done_mu_);
    done_queue_.emplace_back(std::move(job.done), std::move(outcome));
    ++done_pending_;
  }
  job.done = nullptr;
  done_cv_.notify_one();
}

void Scheduler::CompleteLoop() {
  std::unique_lock<std::mutex> lock(done_mu_);
  for (;;) {
    done_cv_.wait(lock, [this] { return done_stop_ || !done_queue_.empty(); });
    if (done_queue_.empty()) return;  // stopping, and everything answered
    auto batch = std::move(done_queue_);
    done_queue_.clear();
    lock.unlock();
    for (auto& [done, outcome] : batch) {
      // A throwing callback must not take the completions (and every later answer) down.
      try {
        done(std::move(outcome));
      } catch (const std::exception& e) {
        LOG_ERROR("scheduler: a completion callback threw: " << e.what());
      } catch (...) {
        LOG_ERROR("scheduler: a completion callback threw");
      }
    }
    lock.lock();
    done_pending_ -= batch.size();
  }
}

void Scheduler::CountFailure(const std::string& error) {
  if (error.empty()) {
    consecutive_failures_ = 0;
    return;
  }
  if (consecutive_failures_.fetch_add(1) + 1 == options_.max_consecutive_failures &&
      observer_.failed)
    observer_.failed(error);
}

void Scheduler::ReportInFlight(size_t worker, size_t in_flight) {
  std::lock_guard<std::mutex> lock(in_flight_mu_);  // reports land in the order of the totals
  worker_in_flight_[worker] = in_flight;
  size_t total = 0;
  for (size_t n : worker_in_flight_) total += n;
  if (observer_.in_flight) observer_.in_flight(total);
}

bool Scheduler::Paused() const {
  return !options_.pause_file.empty() && ::access(options_.pause_file.c_str(), F_OK) == 0;
}

std::vector<Scheduler::Queued> Scheduler::PickLocked(size_t worker, size_t active,
                                                     size_t active_tokens) {
  std::vector<Queued> picked;
  if (queue_.empty()) return picked;
  size_t room = options_.max_batch_sentences > static_cast<int>(active)
                    ? options_.max_batch_sentences - active
                    : 0;
  // This worker's share of all the work, queued and running: the rest is left to the others.
  size_t all = queue_.size();
  for (size_t n : worker_active_) all += n;
  const size_t share = (all + worker_active_.size() - 1) / worker_active_.size();
  room = std::min(room, share > active ? share - active : 0);
  if (room == 0) return picked;
  size_t budget = static_cast<size_t>(options_.max_batch_tokens);
  size_t tokens = active_tokens;
  // The oldest sentence always goes first (no starvation); an empty batch takes it even if
  // it alone exceeds the token budget.
  const Queued& head = queue_.front();
  if (active > 0 && tokens + head.job.src.size() > budget) return picked;
  OptionsKey key = KeyOf(head.job);
  size_t head_len = head.job.src.size();
  // Length-aware grouping: among a window of the queue, the sentences of the same decoding
  // options whose source length is closest to the oldest one's join it.
  size_t window = std::min(queue_.size(), room * 4 + 1);
  std::vector<size_t> order;
  for (size_t i = 1; i < window; ++i)
    if (KeyOf(queue_[i].job) == key) order.push_back(i);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    long da = std::labs(static_cast<long>(queue_[a].job.src.size()) - static_cast<long>(head_len));
    long db = std::labs(static_cast<long>(queue_[b].job.src.size()) - static_cast<long>(head_len));
    return da < db;
  });
  std::vector<size_t> take{0};
  tokens += head_len;
  for (size_t i : order) {
    if (take.size() >= room) break;
    size_t len = queue_[i].job.src.size();
    if (tokens + len > budget) continue;
    tokens += len;
    take.push_back(i);
  }
  std::sort(take.begin(), take.end());
  for (size_t k = take.size(); k-- > 0;) {
    picked.push_back(std::move(queue_[take[k]]));
    queue_.erase(queue_.begin() + static_cast<long>(take[k]));
  }
  std::reverse(picked.begin(), picked.end());
  worker_active_[worker] += picked.size();
  return picked;
}

bool Scheduler::JoinLaterLocked(SteadyClock::time_point now, size_t active) const {
  if (active == 0 || stopping_ || options_.join_min_sentences <= 1) return false;
  const size_t cap = static_cast<size_t>(options_.max_batch_sentences);
  const size_t room = cap > active ? cap - active : 1;
  const size_t need = std::min(static_cast<size_t>(options_.join_min_sentences), room);
  return queue_.size() < need &&
         now < queue_.front().enqueued + std::chrono::microseconds(options_.max_join_delay_us);
}

void Scheduler::Loop(size_t worker) {
  const auto delay = std::chrono::microseconds(options_.max_queue_delay_us);
  std::map<OptionsKey, Session> sessions;  // this worker's own
  if (options_.on_worker_start) options_.on_worker_start();
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    auto now = SteadyClock::now();
    // Cancelled and expired sentences leave the queue at once.
    std::vector<std::pair<Queued, SentenceOutcome::Code>> dropped;
    for (auto it = queue_.begin(); it != queue_.end();) {
      // gRPC also cancels a call whose deadline passed: that counts as an expiry.
      bool expired = now >= it->job.deadline;
      bool cancelled = !expired && it->job.cancelled && it->job.cancelled->load();
      if (cancelled || expired) {
        dropped.emplace_back(std::move(*it), cancelled
                                                 ? SentenceOutcome::Code::kCancelled
                                                 : SentenceOutcome::Code::kDeadlineExceeded);
        it = queue_.erase(it);
      } else {
        ++it;
      }
    }
    WakeWaitersLocked(now);  // room left by dropped sentences; expired or cancelled waiters
    size_t active = 0, active_tokens = 0;
    for (auto& kv : sessions) {
      active += kv.second.active.size();
      active_tokens += kv.second.tokens;
    }
    worker_active_[worker] = active;
    std::vector<Queued> admit;
    bool wait = false;
    SteadyClock::time_point wait_until = SteadyClock::time_point::max();
    if (dropped.empty() && queue_.empty() && active == 0) {
      if (stopping_) {
        finished_ = ++stopped_workers_ == static_cast<size_t>(options_.workers);
        break;
      }
      wait = true;
    } else if (!queue_.empty() && (options_.continuous || active == 0)) {
      // With nothing running, a short delay lets a batch fill up before decoding starts.
      auto due = queue_.front().enqueued + delay;
      if (active == 0 && dropped.empty() && !stopping_ &&
          queue_.size() < static_cast<size_t>(options_.max_batch_sentences) && now < due) {
        wait = true;
        wait_until = due;
        for (const auto& q : queue_) wait_until = std::min(wait_until, q.job.deadline);
      } else if (!JoinLaterLocked(now, active)) {
        admit = PickLocked(worker, active, active_tokens);
        WakeWaitersLocked(now);  // the admitted sentences left room in the queue
        // What this worker left is for another one.
        if (!queue_.empty() && options_.workers > 1) cv_.notify_one();
      }
    }
    if (wait) {
      if (wait_until == SteadyClock::time_point::max()) {
        // Wake periodically to notice cancellations of queued sentences.
        cv_.wait_for(lock, std::chrono::milliseconds(50));
      } else {
        cv_.wait_until(lock, std::min(wait_until, now + std::chrono::milliseconds(50)));
      }
      continue;
    }
    if (observer_.queue_depth) observer_.queue_depth(queue_.size());  // under the lock, as in Submit
    lock.unlock();

    for (auto& [q, code] : dropped) {
      SentenceOutcome o;
      o.code = code;
      o.message = code == SentenceOutcome::Code::kCancelled ? "cancelled while queued"
                                                            : "deadline expired while queued";
      o.queue_seconds = Seconds(now - q.enqueued);
      Finish(q.job, std::move(o));
    }

    auto observe = [this](SchedulerObserver::Phase phase, SteadyClock::time_point since) {
      if (observer_.phase_seconds)
        observer_.phase_seconds(phase, Seconds(SteadyClock::now() - since));
    };
    // New sentences join their session with one encoder call per options group.
    const auto admit_start = SteadyClock::now();
    std::map<OptionsKey, std::vector<Queued>> groups;
    for (auto& q : admit) groups[KeyOf(q.job)].push_back(std::move(q));
    for (auto& [key, items] : groups) {
      Session& s = sessions[key];
      std::vector<uint64_t> ids;
      std::vector<std::vector<int>> srcs;
      for (auto& q : items) {
        ids.push_back(q.id);
        srcs.push_back(q.job.src);
      }
      try {
        if (!s.session) {
          // An idle session of other options gives way first: its decoder state may hold
          // step graphs that the new one's steps need.
          for (auto other = sessions.begin(); other != sessions.end();)
            other = other->first != key && other->second.active.empty() ? sessions.erase(other)
                                                                        : std::next(other);
          Engine* engine = items.front().job.lane == 1 && long_engine_ ? long_engine_ : engine_;
          s.session = engine->NewSession(items.front().job.options);
        }
        s.session->AddBatch(ids, srcs);
      } catch (const std::exception& e) {
        CountFailure(std::string("engine failed to start the sentence: ") + e.what());
        for (auto& q : items) {
          SentenceOutcome o;
          o.code = SentenceOutcome::Code::kInternal;
          o.message = std::string("engine failed to start the sentence: ") + e.what();
          Finish(q.job, std::move(o));
        }
        if (s.active.empty()) sessions.erase(key);
        continue;
      }
      auto admitted = SteadyClock::now();
      for (auto& q : items) {
        s.tokens += q.job.src.size();
        s.active.emplace(q.id, Active{std::move(q.job), q.enqueued, admitted});
      }
    }

    if (!admit.empty()) observe(SchedulerObserver::Phase::kAdmit, admit_start);

    // One decoding step per session; cancelled/expired sentences leave before it.
    const bool paused = Paused();
    size_t in_flight = 0;
    for (auto it = sessions.begin(); it != sessions.end();) {
      Session& s = it->second;
      auto step_now = SteadyClock::now();
      for (auto a = s.active.begin(); a != s.active.end();) {
        bool expired = step_now >= a->second.job.deadline;
        bool cancelled = !expired && a->second.job.cancelled && a->second.job.cancelled->load();
        if (cancelled || expired) {
          try {
            s.session->Remove(a->first);
          } catch (const std::exception&) {
          }
          SentenceOutcome o;
          o.code = cancelled ? SentenceOutcome::Code::kCancelled
                             : SentenceOutcome::Code::kDeadlineExceeded;
          o.message = cancelled ? "cancelled during decoding" : "deadline expired during decoding";
          o.queue_seconds = Seconds(a->second.admitted - a->second.enqueued);
          o.compute_seconds = Seconds(step_now - a->second.admitted);
          s.tokens -= a->second.job.src.size();
          Finish(a->second.job, std::move(o));
          a = s.active.erase(a);
        } else {
          ++a;
        }
      }
      if (!s.active.empty() && !paused) {
        if (observer_.step_batch) observer_.step_batch(s.active.size());
        std::vector<DecodeSession::Finished> done;
        std::string error;
        try {
          if (options_.fail_steps)
            throw std::runtime_error("test hook (MIXSERVE_TEST_FAIL_DECODE): decoding step failed");
          const auto step_start = SteadyClock::now();
          done = s.session->Step();
          observe(SchedulerObserver::Phase::kStep, step_start);
        } catch (const std::exception& e) {
          error = e.what();
          if (error.empty()) error = "unknown engine error";
        }
        CountFailure(error.empty() ? "" : "decoding failed: " + error);
        auto t = SteadyClock::now();
        if (!error.empty()) {
          for (auto& a : s.active) {
            SentenceOutcome o;
            o.code = SentenceOutcome::Code::kInternal;
            o.message = "decoding failed: " + error;
            Finish(a.second.job, std::move(o));
          }
          s.active.clear();
          s.tokens = 0;
          s.session.reset();
        }
        for (auto& f : done) {
          auto a = s.active.find(f.id);
          if (a == s.active.end()) continue;
          SentenceOutcome o;
          o.hyps = std::move(f.hyps);
          o.queue_seconds = Seconds(a->second.admitted - a->second.enqueued);
          o.compute_seconds = Seconds(t - a->second.admitted);
          s.tokens -= a->second.job.src.size();
          Finish(a->second.job, std::move(o));
          s.active.erase(a);
        }
        if (!done.empty()) observe(SchedulerObserver::Phase::kFinish, t);
      }
      in_flight += s.active.size();
      // A session whose sentences are all answered stays while it is the only one, so that
      // an idle server's next request of the same options joins it (no new decoder state;
      // with dead rows, into the memory of the last one) instead of building a new one.
      if (s.active.empty() && (!s.session || sessions.size() > 1))
        it = sessions.erase(it);
      else
        ++it;
    }
    ReportInFlight(worker, in_flight);
    lock.lock();
    if (paused) cv_.wait_for(lock, std::chrono::milliseconds(5));
  }
}

}  // namespace mixserve
