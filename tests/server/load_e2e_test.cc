// Load against the real server, at CI scale: measure saturation (closed loop), soak below it
// (open loop, unary calls and streams together), then overload at twice saturation and
// recover. Checks: every request id answered exactly once, no error other than the intended
// shedding, RSS flat, median latency stable, shedding fast, service back after overload.
//
// Length and load: MIXSERVE_SOAK_SECONDS (default 20) for the soak, MIXSERVE_SOAK_LOAD (default
// 0.5) its rate as a fraction of saturation; the other phases take ~15 s. Run longer and
// harder by hand:
//   MIXSERVE_SOAK_SECONDS=1800 MIXSERVE_SOAK_LOAD=0.8 build/tests/server/server_load_e2e_test
// Timing bounds are deliberately loose (factors of several): the CI machine has 2 shared
// cores, and the checks look for leaks, losses and runaway queues, not for small drifts. The
// default load leaves room for that machine: the load generator shares its cores with the
// server, open-loop arrivals form smaller batches than the closed-loop measurement, and other
// jobs slow both: at 80% one CI run's queue grew through the second half (p50 14 -> 193 ms),
// at 60% (with OpenBLAS, closed-loop saturation 2,526 requests/s) another's from the start.
#include <gtest/gtest.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>

#include "tests/server/support/server_fixture.h"

namespace mixserve {
namespace {
using namespace mixserve::testing;
using Clock = std::chrono::steady_clock;
using grpc::StatusCode;

// en-de-base takes the soak (a deep queue); en-de-alt, the same model shape, the overload (a
// shallow queue, so that it sheds).
// One intra-op thread per variant: with more, LibTorch's OpenMP threads spin for cores that the
// load generator and other jobs hold, and the 2-core CI machine's capacity collapses mid-soak
// (with a busy loop on one core: p50 380 -> 9,172 ms at 50% with the default, 9 -> 11 ms with 1).
const char* kConfig = R"(
compute_threads: 1
models { name: "en-de-base" batching { max_batch_sentences: 16 max_queue_size: 100000 max_queue_delay_us: 1000 } }
models { name: "en-de-alt" batching { max_batch_sentences: 16 max_queue_size: 64 max_queue_delay_us: 1000 } }
)";
constexpr int kOutputTokens = 32;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t k = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(k, v.size() - 1)];
}

// One call's record; written once by its callback, read after all have completed.
struct Record {
  std::atomic<int> answers{0};
  StatusCode code = StatusCode::OK;
  std::string message, id_back;
  Clock::time_point sent;
  double ms = 0;
};

// Unary calls through the callback API: any number in flight, each recorded by index.
class UnaryDriver {
 public:
  UnaryDriver(std::shared_ptr<grpc::Channel> channel, std::vector<std::string> texts,
              std::string variant, std::string prefix, size_t capacity)
      : stub_(v1::TranslationService::NewStub(channel)), texts_(std::move(texts)),
        variant_(std::move(variant)), prefix_(std::move(prefix)), records_(capacity) {}

  // Sends call `i`; `then` runs after it is recorded (on a gRPC thread).
  void Issue(size_t i, std::function<void()> then = {}) {
    struct Call {
      grpc::ClientContext ctx;
      v1::TranslateRequest req;
      v1::TranslateResponse resp;
    };
    auto call = std::make_shared<Call>();
    call->req = Request(texts_[i % texts_.size()]);
    call->req.mutable_variant()->set_name(variant_);
    call->req.mutable_options()->set_max_output_tokens(kOutputTokens);
    call->req.set_request_id(prefix_ + std::to_string(i));
    Record& r = records_[i];
    r.sent = Clock::now();
    issued_.fetch_add(1);
    stub_->async()->Translate(&call->ctx, &call->req, &call->resp,
                              [this, call, i, then](grpc::Status s) {
                                Record& rec = records_[i];
                                rec.ms = Ms(Clock::now() - rec.sent);
                                rec.code = s.error_code();
                                rec.message = s.error_message();
                                rec.id_back = call->resp.request_id();
                                rec.answers.fetch_add(1);
                                if (then) then();
                                std::lock_guard<std::mutex> lock(mu_);
                                ++completed_;
                                cv_.notify_all();
                              });
  }
  // Waits until every issued call completed (false on timeout).
  bool WaitAll(std::chrono::seconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return completed_ == issued_.load(); });
  }
  size_t completed() {
    std::lock_guard<std::mutex> lock(mu_);
    return completed_;
  }
  size_t issued() const { return issued_.load(); }
  const Record& record(size_t i) const { return records_[i]; }
  const std::string& prefix() const { return prefix_; }

 private:
  std::unique_ptr<v1::TranslationService::Stub> stub_;
  std::vector<std::string> texts_;
  std::string variant_, prefix_;
  std::vector<Record> records_;
  std::atomic<size_t> issued_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  size_t completed_ = 0;
};

// Closed loop: `concurrency` calls always in flight for `seconds`; completed calls per second.
double MeasureSaturation(ServerProcess& server, const std::vector<std::string>& texts,
                         int concurrency, double seconds) {
  const size_t capacity = 100000;
  UnaryDriver d(server.Channel(), texts, "en-de-base", "sat-", capacity);
  std::atomic<size_t> next{0};
  std::atomic<bool> stop{false};
  const auto t0 = Clock::now();
  std::function<void()> more = [&] {
    if (stop) return;
    size_t i = next.fetch_add(1);
    if (i < capacity) d.Issue(i, more);
  };
  for (int k = 0; k < concurrency; ++k) more();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  const size_t done = d.completed();
  const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  stop = true;
  EXPECT_TRUE(d.WaitAll(std::chrono::seconds(60)));
  for (size_t i = 0; i < d.issued(); ++i)
    EXPECT_EQ(d.record(i).code, StatusCode::OK) << d.record(i).message;
  return static_cast<double>(done) / elapsed;
}

// Open loop: call i leaves at t0 + i / rate, whatever the answers do.
void OpenLoop(UnaryDriver* d, size_t first, double rate, double seconds) {
  const auto t0 = Clock::now();
  const size_t n = static_cast<size_t>(rate * seconds);
  for (size_t k = 0; k < n; ++k) {
    std::this_thread::sleep_until(t0 + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(k / rate)));
    d->Issue(first + k);
  }
}

// One bidirectional stream fed at a fixed rate; answers are counted by request id.
struct StreamLoad {
  std::map<std::string, int> answers;
  std::map<std::string, Clock::time_point> sent;
  std::vector<double> first_half_ms, second_half_ms;
  int errors = 0;
  std::string last_error;
  size_t written = 0;
  grpc::Status finish;
};

void RunStream(ServerProcess& server, const std::vector<std::string>& texts, const std::string& prefix,
               double rate, double seconds, StreamLoad* out) {
  auto stub = server.Translation();
  grpc::ClientContext ctx;
  auto stream = stub->TranslateStream(&ctx);
  std::mutex mu;
  const auto t0 = Clock::now();
  const auto half = t0 + std::chrono::duration_cast<Clock::duration>(
                             std::chrono::duration<double>(seconds / 2));
  std::thread reader([&] {
    v1::TranslateResponse r;
    while (stream->Read(&r)) {
      auto now = Clock::now();
      std::lock_guard<std::mutex> lock(mu);
      ++out->answers[r.request_id()];
      if (r.status_code() != 0) {
        ++out->errors;
        out->last_error = r.status_message();
      }
      auto it = out->sent.find(r.request_id());
      if (it != out->sent.end())
        (it->second < half ? out->first_half_ms : out->second_half_ms)
            .push_back(Ms(now - it->second));
    }
  });
  const size_t n = static_cast<size_t>(rate * seconds);
  for (size_t k = 0; k < n; ++k) {
    std::this_thread::sleep_until(t0 + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(k / rate)));
    auto req = Request(texts[(k * 7) % texts.size()]);
    req.mutable_variant()->set_name("en-de-base");
    req.mutable_options()->set_max_output_tokens(kOutputTokens);
    req.set_request_id(prefix + std::to_string(k));
    {
      std::lock_guard<std::mutex> lock(mu);
      out->sent[req.request_id()] = Clock::now();
    }
    if (!stream->Write(req)) break;
    ++out->written;
  }
  stream->WritesDone();
  reader.join();
  out->finish = stream->Finish();
}

double SoakSeconds() {
  const char* v = std::getenv("MIXSERVE_SOAK_SECONDS");
  return v && *v ? std::max(4.0, std::atof(v)) : 20.0;
}

// Soak rate as a fraction of the measured saturation, within [0.1, 1].
double SoakLoad() {
  const char* v = std::getenv("MIXSERVE_SOAK_LOAD");
  return v && *v ? std::clamp(std::atof(v), 0.1, 1.0) : 0.5;
}

TEST(LoadE2E, SoakThenOverloadAndRecovery) {
  ServerProcess server;
  std::string error;
  ASSERT_TRUE(server.Start("model_repository: \"" + StandardRepository() + "\"\n" + kConfig,
                           {}, &error))
      << error;
  const auto texts = Sentences("en", 200);
  ASSERT_EQ(texts.size(), 200u);

  // 1. Saturation: what the variant completes with far more calls in flight than its batch.
  const double saturation = MeasureSaturation(server, texts, 64, 4.0);
  ASSERT_GT(saturation, 5.0);
  std::cout << "saturation: " << saturation << " requests/s (closed loop, 64 in flight, "
            << kOutputTokens << " output tokens)\n";

  // 2. Soak below saturation: half of it as unary calls, the rest over two streams.
  const double soak_s = SoakSeconds();
  const double rate = SoakLoad() * saturation;
  const size_t unary_n = static_cast<size_t>(rate * 0.5 * soak_s);
  UnaryDriver soak(server.Channel(), texts, "en-de-base", "soak-", unary_n + 1);
  std::vector<std::pair<double, long>> rss;  // (seconds since start, bytes)
  std::atomic<bool> sampling{true};
  const auto soak_t0 = Clock::now();
  std::thread sampler([&] {
    while (sampling) {
      rss.emplace_back(std::chrono::duration<double>(Clock::now() - soak_t0).count(),
                       server.RssBytes());
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
  });
  StreamLoad streams[2];
  std::thread s0([&] { RunStream(server, texts, "s0-", rate * 0.25, soak_s, &streams[0]); });
  std::thread s1([&] { RunStream(server, texts, "s1-", rate * 0.25, soak_s, &streams[1]); });
  OpenLoop(&soak, 0, rate * 0.5, soak_s);
  s0.join();
  s1.join();
  const bool all_answered = soak.WaitAll(std::chrono::seconds(120));
  sampling = false;
  sampler.join();
  ASSERT_TRUE(all_answered) << "unary answers missing";

  // Every id answered exactly once, without error, with its own id.
  std::vector<double> first, second;
  size_t unary_errors = 0;
  for (size_t i = 0; i < soak.issued(); ++i) {
    const Record& r = soak.record(i);
    EXPECT_EQ(r.answers.load(), 1) << "soak-" << i;
    if (r.code != StatusCode::OK) {
      ++unary_errors;
      ADD_FAILURE() << "soak-" << i << ": " << r.code << " " << r.message;
      continue;
    }
    EXPECT_EQ(r.id_back, "soak-" + std::to_string(i));
    (r.sent - soak_t0 < std::chrono::duration<double>(soak_s / 2) ? first : second)
        .push_back(r.ms);
  }
  size_t stream_answers = 0;
  for (auto& s : streams) {
    EXPECT_TRUE(s.finish.ok()) << s.finish.error_message();
    EXPECT_EQ(s.errors, 0) << s.last_error;
    EXPECT_EQ(s.answers.size(), s.written);
    for (const auto& [id, n] : s.answers) {
      EXPECT_EQ(n, 1) << id << " answered " << n << " times";
      EXPECT_TRUE(s.sent.count(id)) << "answer for an id never sent: " << id;
    }
    stream_answers += s.answers.size();
    first.insert(first.end(), s.first_half_ms.begin(), s.first_half_ms.end());
    second.insert(second.end(), s.second_half_ms.begin(), s.second_half_ms.end());
  }
  EXPECT_EQ(unary_errors, 0u);
  // Latency stable: the second half's median no worse than a few times the first's. A leak or
  // a queue that never drains moves the median of every later request. The p99 is printed,
  // not checked: one stall of a second from another job on a 2-core machine sets the p99 of
  // a 10-second half (the long run in docs/reliability.md met one: p99 899 ms, p50 unmoved).
  const double p50a = Percentile(first, 0.5), p50b = Percentile(second, 0.5);
  const double p99a = Percentile(first, 0.99), p99b = Percentile(second, 0.99);
  EXPECT_LE(p50b, 4 * p50a + 200) << "p50 " << p50a << " -> " << p50b << " ms";
  // Memory flat: after warm-up (the first quarter: allocator pools, gRPC buffers, batch
  // shapes), the peak of the last quarter is within 25% + 64 MiB of the second quarter's.
  long early = 0, late = 0;
  for (const auto& [t, b] : rss) {
    if (t >= soak_s * 0.25 && t < soak_s * 0.5) early = std::max(early, b);
    if (t >= soak_s * 0.75) late = std::max(late, b);
  }
  ASSERT_GT(early, 0);
  ASSERT_GT(late, 0);
  EXPECT_LE(late, early + early / 4 + (64L << 20)) << "RSS " << early << " -> " << late;
  std::cout << "soak: " << soak_s << " s at " << rate << " requests/s: " << soak.issued()
            << " unary + " << stream_answers << " streamed, 0 lost, 0 duplicated; latency p50 "
            << p50a << " -> " << p50b << " ms, p99 " << p99a << " -> " << p99b
            << " ms; RSS " << (early >> 20) << " -> " << (late >> 20) << " MiB\n";

  // 3. Overload at 2x on the shallow-queue variant: the excess is refused at once.
  const double over_s = 5.0;
  const size_t over_n = static_cast<size_t>(2 * saturation * over_s);
  UnaryDriver over(server.Channel(), texts, "en-de-alt", "over-", over_n + 1);
  OpenLoop(&over, 0, 2 * saturation, over_s);
  ASSERT_TRUE(over.WaitAll(std::chrono::seconds(120)));
  std::vector<double> shed_ms, ok_ms;
  for (size_t i = 0; i < over.issued(); ++i) {
    const Record& r = over.record(i);
    EXPECT_EQ(r.answers.load(), 1) << "over-" << i;
    if (r.code == StatusCode::OK) {
      EXPECT_EQ(r.id_back, "over-" + std::to_string(i));
      ok_ms.push_back(r.ms);
    } else {
      EXPECT_EQ(r.code, StatusCode::RESOURCE_EXHAUSTED) << r.message;
      EXPECT_EQ(r.message, "queue of variant en-de-alt/1 is full (64 sentences)");
      shed_ms.push_back(r.ms);
    }
  }
  const double shed_fraction = static_cast<double>(shed_ms.size()) / over.issued();
  // Half of the offered load cannot be served; allow for batching doing better than measured.
  EXPECT_GT(shed_fraction, 0.1);
  // Refusals do not wait for a slot: the server's own time for each refused call (its log's
  // ms=, from the call's arrival to its answer). What the client sees also holds the client's
  // own lag, sharing the 2 cores with the server at twice its capacity (1.5-2 s at p99 for
  // refused and served calls alike on the CI machine), so it is printed, not checked.
  std::vector<double> server_shed_ms;
  {
    std::istringstream log(server.Log());
    for (std::string line; std::getline(log, line);) {
      if (line.find("code=RESOURCE_EXHAUSTED") == std::string::npos) continue;
      const auto at = line.rfind(" ms=");
      if (at != std::string::npos) server_shed_ms.push_back(std::stod(line.substr(at + 4)));
    }
  }
  EXPECT_GE(server_shed_ms.size(), shed_ms.size());
  EXPECT_LT(Percentile(server_shed_ms, 0.99), 50);
  std::cout << "overload: " << over.issued() << " requests at " << 2 * saturation
            << " requests/s: " << shed_ms.size() << " shed (" << 100 * shed_fraction
            << "%), shed p50 " << Percentile(shed_ms, 0.5) << " ms, p99 "
            << Percentile(shed_ms, 0.99) << " ms at the client, p99 "
            << Percentile(server_shed_ms, 0.99) << " ms in the server; served p50 "
            << Percentile(ok_ms, 0.5) << " ms\n";

  // 4. Recovery: at 30% of saturation the same variant serves everything again (its queue of
  // 64 absorbs a stall of a second or so from other jobs on the machine).
  const double rec_s = 4.0;
  UnaryDriver rec(server.Channel(), texts, "en-de-alt", "rec-",
                  static_cast<size_t>(0.3 * saturation * rec_s) + 1);
  OpenLoop(&rec, 0, 0.3 * saturation, rec_s);
  ASSERT_TRUE(rec.WaitAll(std::chrono::seconds(60)));
  size_t rec_errors = 0;
  for (size_t i = 0; i < rec.issued(); ++i) {
    EXPECT_EQ(rec.record(i).answers.load(), 1);
    if (rec.record(i).code != StatusCode::OK) ++rec_errors;
  }
  EXPECT_EQ(rec_errors, 0u) << "after overload";
  std::cout << "recovery: " << rec.issued() << " requests at " << 0.3 * saturation
            << " requests/s, " << rec_errors << " errors\n";
  EXPECT_EQ(server.Stop(SIGTERM), 0);
}

}  // namespace
}  // namespace mixserve
