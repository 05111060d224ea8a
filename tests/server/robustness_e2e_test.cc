// Bad input, deadlines, cancellation and queue overflow against the real server.
#include <gtest/gtest.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <future>
#include <thread>

#include "tests/server/support/server_fixture.h"

namespace mixserve {
namespace {
using namespace mixserve::testing;

class RobustnessE2E : public ::testing::Test {
 protected:
  void Start(const std::string& extra) {
    repo_ = StandardRepository();
    std::string error;
    ASSERT_TRUE(server_.Start("model_repository: \"" + repo_ + "\"\n" + extra, {}, &error))
        << error;
    stub_ = server_.Translation();
  }
  std::string repo_;
  ServerProcess server_;
  std::unique_ptr<v1::TranslationService::Stub> stub_;
};

TEST_F(RobustnessE2E, BadInputsGetClearErrors) {
  Start("limits { max_text_bytes: 200 max_batch_texts: 4 }\n"
        "models { name: \"en-de-base\" max_input_tokens: 46 }\n"
        "models { name: \"en-de-alt\" max_input_tokens: 46 }\n"
        "models { name: \"de-en-base\" max_input_tokens: 46 }\n");
  struct Case {
    std::string name;
    v1::TranslateRequest req;
    grpc::StatusCode code;
    std::string needle;
  };
  std::vector<Case> cases;
  cases.push_back({"empty", Request(""), grpc::StatusCode::INVALID_ARGUMENT, "text is empty"});
  cases.push_back({"too long", Request(std::string(201, 'a')),
                   grpc::StatusCode::INVALID_ARGUMENT, "201 bytes"});
  cases.push_back({"utf8", Request("caf\xc3"), grpc::StatusCode::INVALID_ARGUMENT, "UTF-8"});
  cases.push_back({"pair", Request("hello", "en", "xx"), grpc::StatusCode::NOT_FOUND, "en-xx"});
  cases.push_back({"no pair", Request("hello", "", ""), grpc::StatusCode::INVALID_ARGUMENT,
                   "source_language"});
  {
    auto r = Request("hello");
    r.mutable_variant()->set_name("en-de-nope");
    cases.push_back({"variant", r, grpc::StatusCode::NOT_FOUND, "en-de-nope"});
  }
  {
    auto r = Request("hello");
    r.mutable_variant()->set_name("en-de-base");
    r.mutable_variant()->set_version(9);
    cases.push_back({"version", r, grpc::StatusCode::NOT_FOUND, "version 9"});
  }
  {
    auto r = Request("hello", "de", "en");
    r.mutable_variant()->set_name("en-de-base");
    cases.push_back({"wrong pair", r, grpc::StatusCode::INVALID_ARGUMENT, "translates en-de"});
  }
  {
    auto r = Request("hello");
    r.mutable_options()->set_beam_size(-1);
    cases.push_back({"beam -1", r, grpc::StatusCode::INVALID_ARGUMENT, "beam_size"});
    r.mutable_options()->set_beam_size(17);
    cases.push_back({"beam 17", r, grpc::StatusCode::INVALID_ARGUMENT, "maximum of 16"});
    r.mutable_options()->set_beam_size(2);
    r.mutable_options()->set_n_best(3);
    cases.push_back({"n_best", r, grpc::StatusCode::INVALID_ARGUMENT, "n_best 3"});
    r.mutable_options()->set_beam_size(0);  // default beam 1
    r.mutable_options()->set_n_best(2);
    cases.push_back({"n_best default beam", r, grpc::StatusCode::INVALID_ARGUMENT,
                     "beam size 1"});
    r.mutable_options()->set_n_best(0);
    r.mutable_options()->set_max_output_tokens(-5);
    cases.push_back({"max out", r, grpc::StatusCode::INVALID_ARGUMENT, "max_output_tokens"});
  }
  {
    // Within the byte limit, beyond max_input_tokens (46) after tokenization.
    std::string words;
    for (int i = 0; i < 30; ++i) words += "zebra ";
    cases.push_back({"tokens", Request(words), grpc::StatusCode::INVALID_ARGUMENT,
                     "tokens after tokenization"});
  }
  for (const auto& k : cases) {
    v1::TranslateResponse r;
    grpc::ClientContext c;
    grpc::Status s = stub_->Translate(&c, k.req, &r);
    EXPECT_EQ(s.error_code(), k.code) << k.name << ": " << s.error_message();
    EXPECT_NE(s.error_message().find(k.needle), std::string::npos)
        << k.name << ": " << s.error_message();
  }
  v1::TranslateBatchRequest b;
  b.set_source_language("en");
  b.set_target_language("de");
  for (int i = 0; i < 5; ++i) b.add_texts("a dog");
  v1::TranslateBatchResponse br;
  grpc::ClientContext c;
  grpc::Status s = stub_->TranslateBatch(&c, b, &br);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(s.error_message().find("batch of 5"), std::string::npos) << s.error_message();
  // Nothing above disturbed the server.
  v1::TranslateResponse ok;
  grpc::ClientContext c2;
  EXPECT_TRUE(stub_->Translate(&c2, Request("A dog."), &ok).ok());
  std::string m = HttpGet(server_.metrics_port(), "/metrics");
  EXPECT_GE(MetricSum(m, "mixserve_requests_total", {{"code", "INVALID_ARGUMENT"}}), 10);
}

// One busy variant: one sentence at a time (one decoding loop of one sentence), a queue of three.
const char* kBusy = R"(
models { name: "en-de-base" batching { max_batch_sentences: 1 max_queue_size: 3 max_queue_delay_us: 0 decode_workers: 1 } }
)";

std::vector<std::string> LongTexts(size_t n) { return Sentences("en", n, 40); }

double Gauge(const ServerProcess& server, const std::string& name) {
  return MetricSum(HttpGet(server.metrics_port(), "/metrics"), name, {{"model", "en-de-base"}});
}

// Polls /metrics until `ready` holds for the exposition (or about ten seconds pass).
template <typename Ready>
std::string WaitForMetrics(const ServerProcess& server, Ready ready) {
  std::string m;
  for (int i = 0; i < 500; ++i) {
    m = HttpGet(server.metrics_port(), "/metrics");
    if (ready(m)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return m;
}

TEST_F(RobustnessE2E, QueueOverflowAnswersResourceExhaustedAtOnce) {
  // Decoding is held, so the running sentence and the queue stay full while calls arrive.
  server_.EnablePauseHook();
  Start(kBusy);
  server_.PauseDecoding();
  // A batch larger than the whole queue.
  v1::TranslateBatchRequest b;
  b.set_source_language("en");
  b.set_target_language("de");
  for (const auto& t : LongTexts(4)) b.add_texts(t);
  v1::TranslateBatchResponse br;
  grpc::ClientContext c;
  auto t0 = std::chrono::steady_clock::now();
  grpc::Status s = stub_->TranslateBatch(&c, b, &br);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(s.error_message().find("full"), std::string::npos) << s.error_message();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(1));
  // One call takes the only batch slot (and stays there while decoding is held) ...
  auto running = std::async(std::launch::async, [&] {
    auto stub = server_.Translation();
    auto req = Request(LongTexts(1).front());
    v1::TranslateResponse r;
    grpc::ClientContext cc;
    BoundWhilePaused(&cc);
    return stub->Translate(&cc, req, &r);
  });
  WaitForMetrics(server_, [](const std::string& m) {
    return MetricSum(m, "mixserve_inflight_sentences", {{"model", "en-de-base"}}) == 1;
  });
  ASSERT_EQ(Gauge(server_, "mixserve_inflight_sentences"), 1);
  // ... then of many concurrent calls three wait in the queue and the others are refused at
  // once; when decoding resumes the accepted ones all complete.
  std::vector<std::future<grpc::Status>> calls;
  auto texts = LongTexts(24);
  ASSERT_EQ(texts.size(), 24u);
  for (const auto& text : texts) {
    calls.push_back(std::async(std::launch::async, [&, text] {
      auto stub = server_.Translation();
      auto req = Request(text);
      req.mutable_options()->set_max_output_tokens(40);
      v1::TranslateResponse r;
      grpc::ClientContext cc;
      BoundWhilePaused(&cc);
      return stub->Translate(&cc, req, &r);
    }));
  }
  const int accepted = 3;  // max_queue_size
  const int refused = static_cast<int>(texts.size()) - accepted;
  int full = 0;
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  std::vector<bool> seen(calls.size(), false);
  while (full < refused && std::chrono::steady_clock::now() < until) {
    for (size_t i = 0; i < calls.size(); ++i) {
      if (seen[i] ||
          calls[i].wait_for(std::chrono::milliseconds(1)) != std::future_status::ready)
        continue;
      seen[i] = true;
      grpc::Status st = calls[i].get();
      EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << st.error_message();
      EXPECT_NE(st.error_message().find("full"), std::string::npos) << st.error_message();
      ++full;
    }
  }
  EXPECT_EQ(full, refused);
  EXPECT_EQ(Gauge(server_, "mixserve_queue_depth"), 3);
  server_.ResumeDecoding();
  int ok = 0;
  for (size_t i = 0; i < calls.size(); ++i) {
    if (seen[i]) continue;
    grpc::Status st = calls[i].get();
    EXPECT_TRUE(st.ok()) << st.error_code() << ": " << st.error_message();
    ok += st.ok();
  }
  EXPECT_EQ(ok, accepted);
  grpc::Status rs = running.get();
  EXPECT_TRUE(rs.ok()) << rs.error_message();
}

TEST_F(RobustnessE2E, DeadlinesAndCancellationFreeTheQueue) {
  // Decoding is held: one sentence occupies the only batch slot, so the calls below wait in
  // the queue, where their deadline passes or their client cancels.
  server_.EnablePauseHook();
  Start(kBusy);
  server_.PauseDecoding();
  auto texts = LongTexts(3);
  auto busy = std::async(std::launch::async, [&] {
    auto stub = server_.Translation();
    auto req = Request(texts[0]);
    req.mutable_options()->set_max_output_tokens(20);
    v1::TranslateResponse r;
    grpc::ClientContext cc;
    BoundWhilePaused(&cc);
    return stub->Translate(&cc, req, &r);
  });
  WaitForMetrics(server_, [](const std::string& m) {
    return MetricSum(m, "mixserve_inflight_sentences", {{"model", "en-de-base"}}) == 1;
  });
  ASSERT_EQ(Gauge(server_, "mixserve_inflight_sentences"), 1);
  {
    v1::TranslateResponse r;
    grpc::ClientContext c;
    c.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(300));
    auto req = Request(texts[1]);
    req.mutable_options()->set_max_output_tokens(20);
    grpc::Status s = stub_->Translate(&c, req, &r);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << s.error_message();
  }
  // The client gives up at its deadline, possibly before the server has taken the expired call
  // out of its queue: wait until it has, so the depth seen below is the next call's alone.
  std::string before = WaitForMetrics(server_, [](const std::string& m) {
    return MetricSum(m, "mixserve_queue_depth", {{"model", "en-de-base"}}) == 0;
  });
  ASSERT_EQ(MetricSum(before, "mixserve_queue_depth", {{"model", "en-de-base"}}), 0);
  {
    v1::TranslateResponse r;
    grpc::ClientContext c;
    auto req = Request(texts[2]);
    req.mutable_options()->set_max_output_tokens(20);
    std::promise<grpc::Status> done;
    stub_->async()->Translate(&c, &req, &r, [&](grpc::Status s) { done.set_value(s); });
    // Cancel once the server holds the call in its queue.
    WaitForMetrics(server_, [](const std::string& m) {
      return MetricSum(m, "mixserve_queue_depth", {{"model", "en-de-base"}}) == 1;
    });
    EXPECT_EQ(Gauge(server_, "mixserve_queue_depth"), 1);
    c.TryCancel();
    EXPECT_EQ(done.get_future().get().error_code(), grpc::StatusCode::CANCELLED);
  }
  // The server saw both, and they left the queue while decoding was still held.
  auto counted = [](const std::string& m) {
    return MetricSum(m, "mixserve_requests_total", {{"code", "CANCELLED"}}) +
           MetricSum(m, "mixserve_requests_total", {{"code", "DEADLINE_EXCEEDED"}});
  };
  std::string m = WaitForMetrics(server_, [&](const std::string& x) {
    return counted(x) >= 2 &&
           MetricSum(x, "mixserve_queue_depth", {{"model", "en-de-base"}}) == 0;
  });
  // gRPC also cancels a call whose deadline passes, so that one may count as either.
  EXPECT_EQ(counted(m), 2);
  EXPECT_GE(MetricSum(m, "mixserve_requests_total", {{"code", "CANCELLED"}}), 1);
  EXPECT_EQ(MetricSum(m, "mixserve_queue_depth", {{"model", "en-de-base"}}), 0);
  // The held sentence completes once decoding resumes, and nothing is left running.
  server_.ResumeDecoding();
  grpc::Status bs = busy.get();
  EXPECT_TRUE(bs.ok()) << bs.error_message();
  m = WaitForMetrics(server_, [](const std::string& x) {
    return MetricSum(x, "mixserve_inflight_sentences", {{"model", "en-de-base"}}) == 0;
  });
  EXPECT_EQ(MetricSum(m, "mixserve_inflight_sentences", {{"model", "en-de-base"}}), 0);
  v1::TranslateResponse r;
  grpc::ClientContext c;
  EXPECT_TRUE(stub_->Translate(&c, Request("A dog."), &r).ok());
}

}  // namespace
}  // namespace mixserve

namespace mixserve {
namespace {
using namespace mixserve::testing;

TEST(RateLimitE2E, ClientOverItsRateGetsResourceExhausted) {
  std::string repo = StandardRepository();
  ServerProcess server;
  std::string error;
  ASSERT_TRUE(server.Start("model_repository: \"" + repo + "\"\nlimits { rate_limit_rps: 2 }\n",
                           {}, &error))
      << error;
  auto stub = server.Translation();
  int ok = 0, limited = 0;
  for (int i = 0; i < 8; ++i) {
    auto req = Request("A dog.");
    req.mutable_options()->set_max_output_tokens(1);
    v1::TranslateResponse r;
    grpc::ClientContext c;
    grpc::Status s = stub->Translate(&c, req, &r);
    if (s.ok()) {
      ++ok;
    } else {
      EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
      EXPECT_NE(s.error_message().find("rate limit"), std::string::npos);
      ++limited;
    }
  }
  EXPECT_GE(ok, 2);
  EXPECT_GT(limited, 0);
}

}  // namespace
}  // namespace mixserve
