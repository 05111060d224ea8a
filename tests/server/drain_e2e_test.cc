// SIGTERM drains: health turns NOT_SERVING, new calls are refused with UNAVAILABLE, and
// every accepted call is answered before the process exits.
#include <gtest/gtest.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <future>
#include <thread>

#include "grpc/health/v1/health.grpc.pb.h"
#include "tests/server/support/server_fixture.h"

namespace mixserve {
namespace {
using namespace mixserve::testing;

TEST(DrainE2E, SigtermCompletesAcceptedWork) {
  std::string repo = StandardRepository();
  ServerProcess server;
  server.EnablePauseHook();  // holds decoding so that work is still queued at SIGTERM
  std::string error;
  ASSERT_TRUE(server.Start("model_repository: \"" + repo + "\"\n" + R"(
drain_grace_seconds: 30
models { name: "en-de-base" batching { max_batch_sentences: 2 max_queue_delay_us: 0 decode_workers: 1 } }
)",
                           {}, &error))
      << error;
  server.PauseDecoding();
  auto texts = Sentences("en", 12, 60);
  ASSERT_EQ(texts.size(), 12u);
  std::vector<std::future<std::pair<grpc::Status, std::string>>> calls;
  for (const auto& text : texts)
    calls.push_back(std::async(std::launch::async, [&, text] {
      auto stub = server.Translation();
      auto req = Request(text);
      req.mutable_options()->set_max_output_tokens(40);
      v1::TranslateResponse r;
      grpc::ClientContext c;
      BoundWhilePaused(&c);
      grpc::Status s = stub->Translate(&c, req, &r);
      return std::make_pair(s, r.translation());
    }));
  // Wait until the server holds every call (two decoding, ten queued), then ask it to stop.
  // Both gauges are needed: ten queued is also what the server shows while the first
  // sentence decodes alone and the last call is still on its way.
  std::string m;
  auto settled = [&] {
    return MetricSum(m, "mixserve_queue_depth", {{"model", "en-de-base"}}) == 10 &&
           MetricSum(m, "mixserve_inflight_sentences", {{"model", "en-de-base"}}) == 2;
  };
  for (int i = 0; i < 500; ++i) {
    m = HttpGet(server.metrics_port(), "/metrics");
    if (settled()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(settled()) << m;
  server.Signal(SIGTERM);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  // During the drain: health says NOT_SERVING and new calls get UNAVAILABLE.
  {
    auto health = grpc::health::v1::Health::NewStub(server.Channel());
    grpc::health::v1::HealthCheckRequest req;
    grpc::health::v1::HealthCheckResponse resp;
    grpc::ClientContext c;
    grpc::Status s = health->Check(&c, req, &resp);
    if (s.ok()) {
      EXPECT_EQ(resp.status(), grpc::health::v1::HealthCheckResponse::NOT_SERVING);
    }
    v1::TranslateResponse r;
    grpc::ClientContext c2;
    EXPECT_EQ(server.Translation()->Translate(&c2, Request("A dog."), &r).error_code(),
              grpc::StatusCode::UNAVAILABLE);
  }
  server.ResumeDecoding();
  int ok = 0;
  for (auto& f : calls) {
    auto [s, text] = f.get();
    EXPECT_TRUE(s.ok()) << s.error_message();
    ok += s.ok();
  }
  EXPECT_EQ(ok, static_cast<int>(texts.size()));
  EXPECT_EQ(server.Wait(), 0);
}

}  // namespace
}  // namespace mixserve
