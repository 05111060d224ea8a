// Queueing policy of the scheduler, driven through a small in-test engine whose sentences
// finish after as many steps as they have source tokens (output: the source reversed).
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>

#include "server/scheduler.h"

namespace mixserve {
namespace {

struct Trace {
  std::mutex mu;
  std::vector<size_t> step_sizes;
  std::set<uint64_t> removed;
  int sessions = 0;   // created
  int destroyed = 0;  // sessions destroyed
  std::atomic<int> step_delay_ms{0};
  std::atomic<bool> fail{false};  // Step throws while set
};

class StepSession : public DecodeSession {
 public:
  explicit StepSession(Trace* t) : t_(t) {}
  ~StepSession() override {
    std::lock_guard<std::mutex> lock(t_->mu);
    t_->destroyed++;
  }
  void Add(uint64_t id, const std::vector<int>& src) override { AddBatch({id}, {src}); }
  void AddBatch(const std::vector<uint64_t>& ids,
                const std::vector<std::vector<int>>& srcs) override {
    for (size_t i = 0; i < ids.size(); ++i) rows_[ids[i]] = {srcs[i], srcs[i].size()};
  }
  void Remove(uint64_t id) override {
    rows_.erase(id);
    std::lock_guard<std::mutex> lock(t_->mu);
    t_->removed.insert(id);
  }
  std::vector<Finished> Step() override {
    {
      std::lock_guard<std::mutex> lock(t_->mu);
      t_->step_sizes.push_back(rows_.size());
    }
    if (t_->step_delay_ms) std::this_thread::sleep_for(std::chrono::milliseconds(t_->step_delay_ms));
    if (t_->fail) throw std::runtime_error("boom");
    std::vector<Finished> out;
    for (auto it = rows_.begin(); it != rows_.end();) {
      if (--it->second.left == 0) {
        Hypothesis h;
        h.tokens.assign(it->second.src.rbegin(), it->second.src.rend());
        out.push_back({it->first, {h}});
        it = rows_.erase(it);
      } else {
        ++it;
      }
    }
    return out;
  }
  size_t active() const override { return rows_.size(); }

 private:
  struct Row {
    std::vector<int> src;
    size_t left;
  };
  Trace* t_;
  std::map<uint64_t, Row> rows_;
};

class StepEngine : public Engine {
 public:
  explicit StepEngine(Trace* t) : t_(t) {}
  const ModelInfo& info() const override { return info_; }
  std::vector<std::vector<Hypothesis>> Translate(const std::vector<std::vector<int>>&,
                                                 const DecodeOptions&) override {
    return {};
  }
  std::unique_ptr<DecodeSession> NewSession(const DecodeOptions&) override {
    std::lock_guard<std::mutex> lock(t_->mu);
    t_->sessions++;
    return std::make_unique<StepSession>(t_);
  }
  int64_t DeviceMemoryBytes() const override { return 0; }

 private:
  Trace* t_;
  ModelInfo info_;
};

struct Result {
  std::promise<SentenceOutcome> p;
};

SentenceJob Job(std::vector<int> src, std::shared_ptr<std::promise<SentenceOutcome>> p,
                std::shared_ptr<std::atomic<bool>> cancel = nullptr) {
  SentenceJob j;
  j.src = std::move(src);
  j.cancelled = std::move(cancel);
  j.done = [p](SentenceOutcome&& o) { p->set_value(std::move(o)); };
  return j;
}

TEST(Scheduler, TranslatesAndBatchesWithinTheQueueDelay) {
  Trace t;
  StepEngine e(&t);
  SchedulerOptions o;
  o.max_queue_delay_us = 200000;  // long enough for all three to arrive together
  Scheduler s(&e, o);
  std::vector<std::shared_ptr<std::promise<SentenceOutcome>>> ps;
  for (int i = 0; i < 3; ++i) {
    ps.push_back(std::make_shared<std::promise<SentenceOutcome>>());
    std::vector<SentenceJob> jobs;
    jobs.push_back(Job({1, 2, i + 3}, ps.back()));
    ASSERT_EQ(s.Submit(std::move(jobs)), Scheduler::Admit::kAccepted);
  }
  for (int i = 0; i < 3; ++i) {
    auto r = ps[i]->get_future().get();
    EXPECT_EQ(r.code, SentenceOutcome::Code::kOk);
    EXPECT_EQ(r.hyps[0].tokens, (std::vector<int>{i + 3, 2, 1}));
  }
  std::lock_guard<std::mutex> lock(t.mu);
  EXPECT_EQ(t.step_sizes.front(), 3u);
}

TEST(Scheduler, ContinuousBatchingAdmitsBetweenSteps) {
  Trace t;
  t.step_delay_ms = 5;
  StepEngine e(&t);
  SchedulerOptions o;
  o.max_queue_delay_us = 0;
  Scheduler s(&e, o);
  auto long_p = std::make_shared<std::promise<SentenceOutcome>>();
  std::vector<SentenceJob> a;
  a.push_back(Job(std::vector<int>(40, 5), long_p));  // 40 steps
  ASSERT_EQ(s.Submit(std::move(a)), Scheduler::Admit::kAccepted);
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  auto short_p = std::make_shared<std::promise<SentenceOutcome>>();
  std::vector<SentenceJob> b;
  b.push_back(Job({7, 8}, short_p));
  ASSERT_EQ(s.Submit(std::move(b)), Scheduler::Admit::kAccepted);
  auto short_f = short_p->get_future();
  auto long_f = long_p->get_future();
  // The short sentence joins the running batch and leaves it long before the long one ends.
  ASSERT_EQ(short_f.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_EQ(long_f.wait_for(std::chrono::milliseconds(0)), std::future_status::timeout);
  EXPECT_EQ(long_f.get().code, SentenceOutcome::Code::kOk);
  std::lock_guard<std::mutex> lock(t.mu);
  EXPECT_EQ(*std::max_element(t.step_sizes.begin(), t.step_sizes.end()), 2u);
}

TEST(Scheduler, LaneOneRunsOnTheLongEngineInItsOwnSession) {
  Trace t, long_t;
  StepEngine e(&t), long_e(&long_t);
  SchedulerOptions o;
  Scheduler s(&e, o, {}, &long_e);
  auto a = std::make_shared<std::promise<SentenceOutcome>>();
  auto b = std::make_shared<std::promise<SentenceOutcome>>();
  std::vector<SentenceJob> jobs;
  jobs.push_back(Job({1, 2}, a));
  jobs.push_back(Job({3, 4, 5}, b));
  jobs.back().lane = 1;
  ASSERT_EQ(s.Submit(std::move(jobs)), Scheduler::Admit::kAccepted);
  EXPECT_EQ(a->get_future().get().hyps[0].tokens, (std::vector<int>{2, 1}));
  EXPECT_EQ(b->get_future().get().hyps[0].tokens, (std::vector<int>{5, 4, 3}));
  std::lock_guard<std::mutex> l1(t.mu), l2(long_t.mu);
  EXPECT_EQ(t.sessions, 1);
  EXPECT_EQ(long_t.sessions, 1);
  EXPECT_EQ(*std::max_element(long_t.step_sizes.begin(), long_t.step_sizes.end()), 1u);
}

TEST(Scheduler, WhenRoomWakesWaitersInOrderOnceTheQueueDrains) {
  Trace t;
  t.step_delay_ms = 2;
  StepEngine e(&t);
  SchedulerOptions o;
  o.max_queue_size = 2;
  o.max_batch_sentences = 1;
  Scheduler s(&e, o);
  std::vector<std::shared_ptr<std::promise<SentenceOutcome>>> ps;
  auto submit = [&](int n) {
    std::vector<SentenceJob> jobs;
    for (int i = 0; i < n; ++i) {
      ps.push_back(std::make_shared<std::promise<SentenceOutcome>>());
      jobs.push_back(Job(std::vector<int>(10, 1), ps.back()));
    }
    return s.Submit(std::move(jobs));
  };
  // One decoding, two queued: the queue is full.
  ASSERT_EQ(submit(1), Scheduler::Admit::kAccepted);
  while (s.queued() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  ASSERT_EQ(submit(2), Scheduler::Admit::kAccepted);
  ASSERT_EQ(submit(1), Scheduler::Admit::kQueueFull);
  ps.pop_back();  // refused: its callback is never called
  std::mutex mu;
  std::vector<int> woken;
  std::promise<void> both;
  auto wait = [&](int who, size_t n) {
    s.WhenRoom(n, SteadyClock::time_point::max(), nullptr, [&, who] {
      std::lock_guard<std::mutex> lock(mu);
      woken.push_back(who);
      if (woken.size() == 2) both.set_value();
    });
  };
  wait(1, 2);
  wait(2, 1);  // would fit earlier, but waits behind the first
  ASSERT_EQ(both.get_future().wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_EQ(woken, (std::vector<int>{1, 2}));
  for (auto& p : ps) EXPECT_EQ(p->get_future().get().code, SentenceOutcome::Code::kOk);
  // A cancelled waiter, and one whose deadline has passed, are woken without room: each of
  // the three sentences below takes a second, and the waiters need the whole queue.
  t.step_delay_ms = 1000;
  ps.clear();
  for (int i = 0; i < 3; ++i) {
    ps.push_back(std::make_shared<std::promise<SentenceOutcome>>());
    std::vector<SentenceJob> jobs;
    jobs.push_back(Job({1}, ps.back()));
    ASSERT_EQ(s.Submit(std::move(jobs)), Scheduler::Admit::kAccepted);
    // The first one decodes, the other two fill the queue.
    while (i == 0 && s.queued() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  auto cancel = std::make_shared<std::atomic<bool>>(true);
  std::promise<void> cancelled, expired;
  s.WhenRoom(2, SteadyClock::time_point::max(), cancel, [&] { cancelled.set_value(); });
  s.WhenRoom(2, SteadyClock::now() - std::chrono::milliseconds(1), nullptr,
             [&] { expired.set_value(); });
  EXPECT_EQ(cancelled.get_future().wait_for(std::chrono::milliseconds(900)),
            std::future_status::ready);
  EXPECT_EQ(expired.get_future().wait_for(std::chrono::milliseconds(900)),
            std::future_status::ready);
  for (auto& p : ps) EXPECT_EQ(p->get_future().get().code, SentenceOutcome::Code::kOk);
}

// Waits until the engine has run at least one step.
void WaitForFirstStep(Trace& t) {
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(t.mu);
      if (!t.step_sizes.empty()) return;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}

// Submits one sentence of `tokens` source tokens (it decodes for as many steps, each
// t.step_delay_ms long) and returns its promise once its decode is running.
std::shared_ptr<std::promise<SentenceOutcome>> StartLongSentence(Scheduler& s, Trace& t,
                                                                 int tokens) {
  auto p = std::make_shared<std::promise<SentenceOutcome>>();
  std::vector<SentenceJob> a;
  a.push_back(Job(std::vector<int>(tokens, 5), p));
  EXPECT_EQ(s.Submit(std::move(a)), Scheduler::Admit::kAccepted);
  WaitForFirstStep(t);
  return p;
}

TEST(Scheduler, SentencesJoinARunningDecodeInGroups) {
  Trace t;
  t.step_delay_ms = 5;
  StepEngine e(&t);
  SchedulerOptions o;
  o.max_queue_delay_us = 0;
  o.join_min_sentences = 3;
  o.max_join_delay_us = 10'000'000;  // only the group size lets them in here
  Scheduler s(&e, o);
  auto long_p = StartLongSentence(s, t, 80);  // 80 steps, about 400 ms
  std::vector<std::shared_ptr<std::promise<SentenceOutcome>>> ps;
  auto submit_short = [&] {
    ps.push_back(std::make_shared<std::promise<SentenceOutcome>>());
    std::vector<SentenceJob> j;
    j.push_back(Job({7, 8}, ps.back()));
    ASSERT_EQ(s.Submit(std::move(j)), Scheduler::Admit::kAccepted);
  };
  submit_short();
  submit_short();
  std::this_thread::sleep_for(std::chrono::milliseconds(40));
  {
    std::lock_guard<std::mutex> lock(t.mu);
    for (size_t n : t.step_sizes) EXPECT_EQ(n, 1u) << "two sentences joined before the third";
  }
  submit_short();
  for (auto& p : ps) {
    auto f = p->get_future();
    ASSERT_EQ(f.wait_for(std::chrono::seconds(5)), std::future_status::ready);
    EXPECT_EQ(f.get().code, SentenceOutcome::Code::kOk);
  }
  EXPECT_EQ(long_p->get_future().get().code, SentenceOutcome::Code::kOk);
  std::lock_guard<std::mutex> lock(t.mu);
  for (size_t n : t.step_sizes) EXPECT_TRUE(n == 1u || n == 4u) << n;  // the three together
  EXPECT_NE(std::find(t.step_sizes.begin(), t.step_sizes.end(), 4u), t.step_sizes.end());
}

TEST(Scheduler, JoinDelayBoundsTheWaitForAGroup) {
  Trace t;
  t.step_delay_ms = 5;
  StepEngine e(&t);
  SchedulerOptions o;
  o.max_queue_delay_us = 0;
  o.join_min_sentences = 8;
  o.max_join_delay_us = 30'000;
  Scheduler s(&e, o);
  auto long_p = StartLongSentence(s, t, 80);
  auto p = std::make_shared<std::promise<SentenceOutcome>>();
  std::vector<SentenceJob> b;
  b.push_back(Job({7, 8}, p));
  const auto submitted = SteadyClock::now();
  ASSERT_EQ(s.Submit(std::move(b)), Scheduler::Admit::kAccepted);
  auto f = p->get_future();
  ASSERT_EQ(f.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  const auto r = f.get();
  EXPECT_EQ(r.code, SentenceOutcome::Code::kOk);
  // Alone, it joined once the delay had passed: not before, and not only at the end.
  EXPECT_GE(SteadyClock::now() - submitted, std::chrono::milliseconds(30));
  EXPECT_GE(r.queue_seconds, 0.030);
  EXPECT_EQ(long_p->get_future().get().code, SentenceOutcome::Code::kOk);
  std::lock_guard<std::mutex> lock(t.mu);
  EXPECT_EQ(*std::max_element(t.step_sizes.begin(), t.step_sizes.end()), 2u);
}

TEST(Scheduler, StaticBatchingWaitsForTheBatchToEnd) {
  Trace t;
  StepEngine e(&t);
  SchedulerOptions o;
  o.max_queue_delay_us = 0;
  o.continuous = false;
  t.step_delay_ms = 2;  // the first sentence decodes for 30 steps, about 60 ms
  Scheduler s(&e, o);
  // The second sentence arrives once the first one's batch is running (not after a fixed
  // sleep, which a loaded machine can outlast before the batch even starts).
  auto p1 = StartLongSentence(s, t, 30);
  auto f1 = p1->get_future();
  auto p2 = std::make_shared<std::promise<SentenceOutcome>>();
  std::vector<SentenceJob> b;
  b.push_back(Job({1}, p2));
  s.Submit(std::move(b));
  const bool first_still_running = f1.wait_for(std::chrono::seconds(0)) != std::future_status::ready;
  f1.get();
  p2->get_future().get();
  if (!first_still_running) GTEST_SKIP() << "the first batch ended before the second sentence came";
  std::lock_guard<std::mutex> lock(t.mu);
  for (size_t n : t.step_sizes) EXPECT_EQ(n, 1u);
}

TEST(Scheduler, BatchLimitsInSentencesAndTokens) {
  Trace t;
  StepEngine e(&t);
  SchedulerOptions o;
  o.max_batch_sentences = 3;
  o.max_batch_tokens = 1000;
  o.max_queue_delay_us = 100000;
  Scheduler s(&e, o);
  std::vector<std::shared_ptr<std::promise<SentenceOutcome>>> ps;
  std::vector<SentenceJob> jobs;
  for (int i = 0; i < 10; ++i) {
    ps.push_back(std::make_shared<std::promise<SentenceOutcome>>());
    jobs.push_back(Job({1, 2, 3, 4}, ps.back()));
  }
  ASSERT_EQ(s.Submit(std::move(jobs)), Scheduler::Admit::kAccepted);
  for (auto& p : ps) EXPECT_EQ(p->get_future().get().code, SentenceOutcome::Code::kOk);
  {
    std::lock_guard<std::mutex> lock(t.mu);
    for (size_t n : t.step_sizes) EXPECT_LE(n, 3u);
    t.step_sizes.clear();
  }
  // Token budget: 10 tokens allow two 4-token sentences at a time.
  SchedulerOptions o2 = o;
  o2.max_batch_sentences = 64;
  o2.max_batch_tokens = 10;
  Scheduler s2(&e, o2);
  ps.clear();
  jobs.clear();
  for (int i = 0; i < 6; ++i) {
    ps.push_back(std::make_shared<std::promise<SentenceOutcome>>());
    jobs.push_back(Job({1, 2, 3, 4}, ps.back()));
  }
  ASSERT_EQ(s2.Submit(std::move(jobs)), Scheduler::Admit::kAccepted);
  for (auto& p : ps) p->get_future().get();
  std::lock_guard<std::mutex> lock(t.mu);
  for (size_t n : t.step_sizes) EXPECT_LE(n, 2u);
}

TEST(Scheduler, FullQueueRefusesAllOrNothing) {
  Trace t;
  t.step_delay_ms = 20;
  StepEngine e(&t);
  SchedulerOptions o;
  o.max_queue_size = 4;
  o.max_batch_sentences = 1;
  o.max_queue_delay_us = 0;
  Scheduler s(&e, o);
  std::vector<std::shared_ptr<std::promise<SentenceOutcome>>> ps;
  auto submit = [&](int n) {
    std::vector<SentenceJob> jobs;
    for (int i = 0; i < n; ++i) {
      ps.push_back(std::make_shared<std::promise<SentenceOutcome>>());
      jobs.push_back(Job({1, 2, 3}, ps.back()));
    }
    return s.Submit(std::move(jobs));
  };
  EXPECT_EQ(submit(5), Scheduler::Admit::kQueueFull);
  ps.clear();
  EXPECT_EQ(submit(4), Scheduler::Admit::kAccepted);
  // At most one has left the queue for the batch so far: four more cannot fit.
  EXPECT_EQ(submit(4), Scheduler::Admit::kQueueFull);
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(ps[i]->get_future().get().code, SentenceOutcome::Code::kOk);
}

TEST(Scheduler, CancelAndDeadlineLeaveQueueAndBatch) {
  Trace t;
  t.step_delay_ms = 5;
  StepEngine e(&t);
  SchedulerOptions o;
  o.max_batch_sentences = 1;
  o.max_queue_delay_us = 0;
  Scheduler s(&e, o);
  auto running = std::make_shared<std::promise<SentenceOutcome>>();
  auto cancel_running = std::make_shared<std::atomic<bool>>(false);
  auto queued = std::make_shared<std::promise<SentenceOutcome>>();
  auto cancel_queued = std::make_shared<std::atomic<bool>>(false);
  auto expiring = std::make_shared<std::promise<SentenceOutcome>>();
  std::vector<SentenceJob> jobs;
  jobs.push_back(Job(std::vector<int>(1000, 1), running, cancel_running));
  jobs.push_back(Job({1, 2}, queued, cancel_queued));
  SentenceJob exp = Job({3}, expiring);
  exp.deadline = SteadyClock::now() + std::chrono::milliseconds(30);
  jobs.push_back(std::move(exp));
  ASSERT_EQ(s.Submit(std::move(jobs)), Scheduler::Admit::kAccepted);
  cancel_queued->store(true);
  auto q = queued->get_future().get();
  EXPECT_EQ(q.code, SentenceOutcome::Code::kCancelled);
  auto x = expiring->get_future().get();
  EXPECT_EQ(x.code, SentenceOutcome::Code::kDeadlineExceeded);
  cancel_running->store(true);
  auto r = running->get_future().get();
  EXPECT_EQ(r.code, SentenceOutcome::Code::kCancelled);
  std::lock_guard<std::mutex> lock(t.mu);
  EXPECT_EQ(t.removed.size(), 1u);  // only the running one was in the batch
}

TEST(Scheduler, StopDrainsAcceptedWork) {
  Trace t;
  t.step_delay_ms = 2;
  StepEngine e(&t);
  std::vector<std::shared_ptr<std::promise<SentenceOutcome>>> ps;
  {
    SchedulerOptions o;
    o.max_batch_sentences = 2;
    o.max_queue_delay_us = 0;
    Scheduler s(&e, o);
    std::vector<SentenceJob> jobs;
    for (int i = 0; i < 8; ++i) {
      ps.push_back(std::make_shared<std::promise<SentenceOutcome>>());
      jobs.push_back(Job({1, 2, 3, 4, 5}, ps.back()));
    }
    ASSERT_EQ(s.Submit(std::move(jobs)), Scheduler::Admit::kAccepted);
    s.Stop();
    std::vector<SentenceJob> late;
    late.push_back(Job({1}, std::make_shared<std::promise<SentenceOutcome>>()));
    EXPECT_EQ(s.Submit(std::move(late)), Scheduler::Admit::kStopped);
  }  // destructor waits for the worker
  for (auto& p : ps) {
    auto f = p->get_future();
    ASSERT_EQ(f.wait_for(std::chrono::seconds(0)), std::future_status::ready);
    EXPECT_EQ(f.get().code, SentenceOutcome::Code::kOk);
  }
}

// Two decoding loops: the queued sentences are shared out (each loop takes its half of the
// work into its own session), the in-flight total counts both loops, and stopping drains both.
TEST(Scheduler, WorkersShareTheQueueAndDrainOnStop) {
  Trace t;
  t.step_delay_ms = 5;
  StepEngine e(&t);
  std::mutex in_flight_mu;
  size_t max_in_flight = 0, last_in_flight = 99;
  SchedulerObserver obs;
  obs.in_flight = [&](size_t n) {
    std::lock_guard<std::mutex> lock(in_flight_mu);
    max_in_flight = std::max(max_in_flight, n);
    last_in_flight = n;
  };
  std::atomic<int> started{0};
  std::vector<std::shared_ptr<std::promise<SentenceOutcome>>> ps;
  {
    SchedulerOptions o;
    o.workers = 2;
    o.max_queue_delay_us = 0;
    o.on_worker_start = [&] { ++started; };
    Scheduler s(&e, o, obs);
    std::vector<SentenceJob> jobs;
    for (int i = 0; i < 8; ++i) {
      ps.push_back(std::make_shared<std::promise<SentenceOutcome>>());
      jobs.push_back(Job(std::vector<int>(10, i + 4), ps.back()));
    }
    ASSERT_EQ(s.Submit(std::move(jobs)), Scheduler::Admit::kAccepted);
    for (int i = 0; i < 8; ++i) {
      auto r = ps[i]->get_future().get();
      EXPECT_EQ(r.code, SentenceOutcome::Code::kOk);
      EXPECT_EQ(r.hyps[0].tokens, std::vector<int>(10, i + 4));
    }
    // More work after the first: both loops still take it, and Stop drains them.
    std::vector<std::shared_ptr<std::promise<SentenceOutcome>>> more;
    std::vector<SentenceJob> jobs2;
    for (int i = 0; i < 6; ++i) {
      more.push_back(std::make_shared<std::promise<SentenceOutcome>>());
      jobs2.push_back(Job({1, 2, 3, 4, 5, 6}, more.back()));
    }
    ASSERT_EQ(s.Submit(std::move(jobs2)), Scheduler::Admit::kAccepted);
    s.Stop();
    ps.insert(ps.end(), more.begin(), more.end());
  }  // the destructor waits for both workers
  EXPECT_EQ(started.load(), 2);
  std::lock_guard<std::mutex> lock(t.mu);
  EXPECT_EQ(t.sessions, 2) << "one session per loop, kept for the second batch";
  EXPECT_LE(*std::max_element(t.step_sizes.begin(), t.step_sizes.end()), 4u)
      << "a loop took more than its half of the 8 sentences";
  std::lock_guard<std::mutex> l2(in_flight_mu);
  EXPECT_EQ(max_in_flight, 8u);  // both loops' sentences
  EXPECT_EQ(last_in_flight, 0u);
}

TEST(Scheduler, LengthAwareGroupingPrefersSimilarLengths) {
  Trace t;
  StepEngine e(&t);
  SchedulerOptions o;
  o.max_batch_sentences = 2;
  o.max_queue_delay_us = 100000;
  Scheduler s(&e, o);
  std::vector<std::shared_ptr<std::promise<SentenceOutcome>>> ps;
  std::vector<SentenceJob> jobs;
  for (int len : {10, 1, 2, 10}) {
    ps.push_back(std::make_shared<std::promise<SentenceOutcome>>());
    jobs.push_back(Job(std::vector<int>(len, 4), ps.back()));
  }
  s.Submit(std::move(jobs));
  for (auto& p : ps) p->get_future().get();
  // The oldest (10 tokens) runs with the other 10-token sentence (10 steps), then the two
  // short ones together (2 steps): 12 steps. First-come order would take 13.
  std::lock_guard<std::mutex> lock(t.mu);
  EXPECT_EQ(t.step_sizes.size(), 12u);
}

// The test hook: while the pause file exists nothing decodes, but cancellation still frees
// both the batch and the queue; removing the file lets the rest finish.
TEST(Scheduler, PauseFileHoldsDecodingButNotCancellation) {
  Trace t;
  StepEngine e(&t);
  SchedulerOptions o;
  o.max_batch_sentences = 1;
  o.max_queue_delay_us = 0;
  o.pause_file = ::testing::TempDir() + "/scheduler_pause_" + std::to_string(::getpid());
  std::ofstream(o.pause_file) << "paused\n";
  Scheduler s(&e, o);
  auto running = std::make_shared<std::promise<SentenceOutcome>>();
  auto queued = std::make_shared<std::promise<SentenceOutcome>>();
  auto cancelled = std::make_shared<std::promise<SentenceOutcome>>();
  auto cancel = std::make_shared<std::atomic<bool>>(false);
  std::vector<SentenceJob> jobs;
  jobs.push_back(Job({1, 2}, running));
  jobs.push_back(Job({3}, queued));
  jobs.push_back(Job({4}, cancelled, cancel));
  ASSERT_EQ(s.Submit(std::move(jobs)), Scheduler::Admit::kAccepted);
  auto f_running = running->get_future(), f_queued = queued->get_future();
  EXPECT_EQ(f_running.wait_for(std::chrono::milliseconds(200)), std::future_status::timeout);
  {
    std::lock_guard<std::mutex> lock(t.mu);
    EXPECT_TRUE(t.step_sizes.empty());
  }
  cancel->store(true);
  EXPECT_EQ(cancelled->get_future().get().code, SentenceOutcome::Code::kCancelled);
  EXPECT_EQ(f_queued.wait_for(std::chrono::milliseconds(0)), std::future_status::timeout);
  std::remove(o.pause_file.c_str());
  EXPECT_EQ(f_running.get().code, SentenceOutcome::Code::kOk);
  EXPECT_EQ(f_queued.get().code, SentenceOutcome::Code::kOk);
}

}  // namespace
}  // namespace mixserve

namespace mixserve {
namespace {

// Runs one sentence to its end and returns its outcome.
SentenceOutcome RunOne(Scheduler& s, std::vector<int> src) {
  auto p = std::make_shared<std::promise<SentenceOutcome>>();
  std::vector<SentenceJob> jobs;
  jobs.push_back(Job(std::move(src), p));
  EXPECT_EQ(s.Submit(std::move(jobs)), Scheduler::Admit::kAccepted);
  return p->get_future().get();
}

// An idle scheduler keeps its last session for the next request of the same options, and
// lets it go when a session of other options starts (whose steps may need its graphs).
TEST(Scheduler, IdleSessionServesTheNextRequestOfItsOptions) {
  Trace t;
  StepEngine e(&t);
  SchedulerOptions o;
  o.max_queue_delay_us = 0;
  Scheduler s(&e, o);
  EXPECT_EQ(RunOne(s, {1, 2}).hyps.at(0).tokens, (std::vector<int>{2, 1}));
  EXPECT_EQ(RunOne(s, {3}).hyps.at(0).tokens, (std::vector<int>{3}));
  {
    std::lock_guard<std::mutex> lock(t.mu);
    EXPECT_EQ(t.sessions, 1);
    EXPECT_EQ(t.destroyed, 0);
  }
  auto p = std::make_shared<std::promise<SentenceOutcome>>();
  std::vector<SentenceJob> jobs;
  jobs.push_back(Job({4, 5}, p));
  jobs[0].options.max_output_tokens = 7;  // other options: another session
  ASSERT_EQ(s.Submit(std::move(jobs)), Scheduler::Admit::kAccepted);
  EXPECT_EQ(p->get_future().get().hyps.at(0).tokens, (std::vector<int>{5, 4}));
  std::lock_guard<std::mutex> lock(t.mu);
  EXPECT_EQ(t.sessions, 2);
  EXPECT_EQ(t.destroyed, 1);
}

TEST(Scheduler, RepeatedEngineFailuresAreReportedOnceAndSuccessResetsTheCount) {
  Trace t;
  StepEngine e(&t);
  SchedulerOptions o;
  o.max_queue_delay_us = 0;
  o.max_consecutive_failures = 3;
  std::mutex mu;
  std::vector<std::string> reports;
  SchedulerObserver obs;
  obs.failed = [&](const std::string& error) {
    std::lock_guard<std::mutex> lock(mu);
    reports.push_back(error);
  };
  Scheduler s(&e, o, obs);
  t.fail = true;
  for (int i = 0; i < 2; ++i) {
    auto r = RunOne(s, {1, 2});
    EXPECT_EQ(r.code, SentenceOutcome::Code::kInternal);
    EXPECT_EQ(r.message, "decoding failed: boom");
  }
  t.fail = false;
  EXPECT_EQ(RunOne(s, {1, 2}).code, SentenceOutcome::Code::kOk);  // resets the count
  t.fail = true;
  for (int i = 0; i < 2; ++i) EXPECT_EQ(RunOne(s, {3}).code, SentenceOutcome::Code::kInternal);
  {
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_TRUE(reports.empty());
  }
  EXPECT_EQ(RunOne(s, {3}).code, SentenceOutcome::Code::kInternal);  // the third in a row
  EXPECT_EQ(RunOne(s, {3}).code, SentenceOutcome::Code::kInternal);  // reported once only
  std::lock_guard<std::mutex> lock(mu);
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0], "decoding failed: boom");
}

TEST(Scheduler, FailStepsHookAndThrowingCallbacksLeaveTheWorkerRunning) {
  Trace t;
  StepEngine e(&t);
  SchedulerOptions o;
  o.max_queue_delay_us = 0;
  o.fail_steps = true;
  {
    Scheduler s(&e, o);
    auto r = RunOne(s, {1});
    EXPECT_EQ(r.code, SentenceOutcome::Code::kInternal);
    EXPECT_EQ(r.message, "decoding failed: test hook (MIXSERVE_TEST_FAIL_DECODE): decoding step failed");
  }
  o.fail_steps = false;
  Scheduler s(&e, o);
  std::vector<SentenceJob> jobs(1);
  jobs[0].src = {1, 2};
  jobs[0].done = [](SentenceOutcome&&) { throw std::runtime_error("callback bug"); };
  ASSERT_EQ(s.Submit(std::move(jobs)), Scheduler::Admit::kAccepted);
  EXPECT_EQ(RunOne(s, {4, 5}).hyps.at(0).tokens, (std::vector<int>{5, 4}));
}

}  // namespace
}  // namespace mixserve
