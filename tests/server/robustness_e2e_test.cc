// Bad input, deadlines, cancellation and queue overflow against the real server.
#include <gtest/gtest.h>
#include <grpcpp/grpcpp.h>

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
  Start("limits { max_text_bytes: 200 max_batch_texts: 4 }\n");
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
    // Within the byte limit, beyond the model's max_len (48) after tokenization.
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

// One busy variant: one sentence at a time, long outputs.
const char* kBusy = R"(
models { name: "en-de-base" batching { max_batch_sentences: 1 max_queue_size: 3 max_queue_delay_us: 0 } }
)";

std::vector<std::string> LongTexts(size_t n) { return Sentences("en", n, 40); }

TEST_F(RobustnessE2E, QueueOverflowAnswersResourceExhaustedAtOnce) {
  Start(kBusy);
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
  // Many concurrent calls: some are refused, the accepted ones all complete.
  std::vector<std::future<grpc::Status>> calls;
  auto texts = LongTexts(24);
  for (const auto& text : texts) {
    calls.push_back(std::async(std::launch::async, [&, text] {
      auto stub = server_.Translation();
      auto req = Request(text);
      req.mutable_options()->set_max_output_tokens(40);
      v1::TranslateResponse r;
      grpc::ClientContext cc;
      return stub->Translate(&cc, req, &r);
    }));
  }
  int ok = 0, full = 0;
  for (auto& f : calls) {
    grpc::Status st = f.get();
    if (st.ok()) ++ok;
    else if (st.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) ++full;
    else ADD_FAILURE() << st.error_message();
  }
  EXPECT_GT(full, 0);
  EXPECT_GT(ok, 0);
  EXPECT_EQ(ok + full, static_cast<int>(texts.size()));
}

TEST_F(RobustnessE2E, DeadlinesAndCancellationFreeTheQueue) {
  Start(kBusy);
  auto texts = LongTexts(3);
  // Keep the variant busy.
  std::vector<std::future<grpc::Status>> busy;
  for (int i = 0; i < 2; ++i)
    busy.push_back(std::async(std::launch::async, [&, i] {
      auto stub = server_.Translation();
      auto req = Request(texts[i]);
      req.mutable_options()->set_max_output_tokens(46);
      v1::TranslateResponse r;
      grpc::ClientContext cc;
      return stub->Translate(&cc, req, &r);
    }));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  {
    v1::TranslateResponse r;
    grpc::ClientContext c;
    c.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(5));
    auto req = Request(texts[2]);
    req.mutable_options()->set_max_output_tokens(46);
    EXPECT_EQ(stub_->Translate(&c, req, &r).error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  }
  {
    v1::TranslateResponse r;
    grpc::ClientContext c;
    auto req = Request(texts[2]);
    req.mutable_options()->set_max_output_tokens(46);
    std::promise<grpc::Status> done;
    stub_->async()->Translate(&c, &req, &r, [&](grpc::Status s) { done.set_value(s); });
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    c.TryCancel();
    EXPECT_EQ(done.get_future().get().error_code(), grpc::StatusCode::CANCELLED);
  }
  for (auto& f : busy) EXPECT_TRUE(f.get().ok());
  // The server saw both, and nothing is left queued or running.
  std::string m;
  for (int i = 0; i < 50; ++i) {
    m = HttpGet(server_.metrics_port(), "/metrics");
    if (MetricSum(m, "mixserve_requests_total", {{"code", "CANCELLED"}}) +
            MetricSum(m, "mixserve_requests_total", {{"code", "DEADLINE_EXCEEDED"}}) >= 2)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_GE(MetricSum(m, "mixserve_requests_total", {{"code", "CANCELLED"}}) +
                MetricSum(m, "mixserve_requests_total", {{"code", "DEADLINE_EXCEEDED"}}),
            2);
  EXPECT_EQ(MetricSum(m, "mixserve_queue_depth", {{"model", "en-de-base"}}), 0);
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
