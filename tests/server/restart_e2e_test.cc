// Shutdown and restarts under load: SIGTERM while traffic flows answers every request the
// server accepted; a restart on the same repository serves identical translations; model
// versions loaded and unloaded through ModelService under load drop no request.
#include <gtest/gtest.h>
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <map>
#include <mutex>
#include <regex>
#include <set>
#include <iostream>
#include <sstream>
#include <thread>
#include <tuple>

#include "tests/server/support/server_fixture.h"

namespace mixserve {
namespace {
using namespace mixserve::testing;
using grpc::StatusCode;

TEST(RestartE2E, SigtermUnderLoadAnswersEveryAcceptedRequest) {
  std::string repo = StandardRepository();
  ServerProcess server;
  std::string error;
  ASSERT_TRUE(server.Start("model_repository: \"" + repo + "\"\ndrain_grace_seconds: 30\n",
                           {"--log_level=debug"}, &error))
      << error;
  const auto texts = Sentences("en", 50);
  // Eight clients, each with its own channel, send back to back until SIGTERM and for a
  // while after it.
  struct Outcome {
    StatusCode code;
    std::string message;
  };
  std::mutex mu;
  std::map<std::string, Outcome> outcomes;
  std::atomic<bool> stop{false};
  std::vector<std::thread> clients;
  for (int c = 0; c < 8; ++c)
    clients.emplace_back([&, c] {
      auto channel = grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials());
      auto stub = v1::TranslationService::NewStub(channel);
      for (int i = 0; !stop; ++i) {
        auto req = Request(texts[(c * 7 + i) % texts.size()]);
        req.mutable_options()->set_max_output_tokens(20);
        req.set_request_id("c" + std::to_string(c) + "-" + std::to_string(i));
        v1::TranslateResponse r;
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
        grpc::Status s = stub->Translate(&ctx, req, &r);
        if (s.ok()) {
          EXPECT_EQ(r.request_id(), req.request_id());
        }
        std::lock_guard<std::mutex> lock(mu);
        outcomes[req.request_id()] = {s.error_code(), s.error_message()};
        if (!s.ok() && s.error_code() != StatusCode::UNAVAILABLE &&
            s.error_code() != StatusCode::CANCELLED)
          break;
        if (!s.ok()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    });
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  server.Signal(SIGTERM);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  stop = true;
  for (auto& t : clients) t.join();
  EXPECT_EQ(server.Wait(), 0);
  const std::string log = server.Log();
  EXPECT_EQ(log.find("calls unanswered"), std::string::npos) << log;

  // What the server accepted: every request it logged as answered (code=OK) or refused while
  // draining. Each OK it logged reached its client as OK; every client failure is either the
  // drain's refusal or a connection the server no longer accepted (never logged).
  std::map<std::string, std::string> logged;  // id -> code
  std::regex line("request id=(\\S+) method=Translate \\S+ code=(\\w+)");
  std::istringstream in(log);
  std::string l;
  while (std::getline(in, l)) {
    std::smatch m;
    if (std::regex_search(l, m, line)) logged[m[1]] = m[2];
  }
  size_t ok = 0, refused = 0, unreachable = 0;
  for (const auto& [id, o] : outcomes) {
    auto it = logged.find(id);
    if (o.code == StatusCode::OK) {
      ++ok;
      ASSERT_NE(it, logged.end()) << id;
      EXPECT_EQ(it->second, "OK") << id;
    } else if (o.message == "server is shutting down") {
      ++refused;
      ASSERT_NE(it, logged.end()) << id;
      EXPECT_EQ(it->second, "UNAVAILABLE") << id;
    } else {
      // The port is closing: gRPC refuses (UNAVAILABLE) or, for a call that raced with the
      // shutdown before any handler saw it, cancels (CANCELLED). Neither was accepted.
      ++unreachable;
      EXPECT_TRUE(o.code == StatusCode::UNAVAILABLE || o.code == StatusCode::CANCELLED)
          << id << ": " << o.code << " " << o.message;
      EXPECT_EQ(it, logged.end()) << id << " was accepted (" << it->second
                                  << ") but its client got: " << o.message;
    }
  }
  for (const auto& [id, code] : logged) {
    if (code == "OK") {
      EXPECT_EQ(outcomes.count(id), 1u) << id << " answered by the server, never received";
    }
  }
  EXPECT_GT(ok, 20u);
  std::cout << "SIGTERM under load: " << ok << " answered, " << refused
            << " refused while draining, " << unreachable << " after the port closed, 0 lost\n";
}

TEST(RestartE2E, SigtermAnswersEveryMessageAcceptedOnAnOpenStream) {
  std::string repo = StandardRepository();
  ServerProcess server;
  server.EnablePauseHook();  // holds decoding so that the stream's messages are queued at SIGTERM
  std::string error;
  ASSERT_TRUE(server.Start("model_repository: \"" + repo + "\"\ndrain_grace_seconds: 30\n" +
                               "models { name: \"en-de-base\" }\n",
                           {}, &error))
      << error;
  server.PauseDecoding();
  auto stub = server.Translation();
  grpc::ClientContext ctx;
  auto stream = stub->TranslateStream(&ctx);
  const auto texts = Sentences("en", 10, 30);
  ASSERT_EQ(texts.size(), 10u);
  for (size_t i = 0; i < texts.size(); ++i) {
    auto req = Request(texts[i]);
    req.set_request_id("a" + std::to_string(i));
    req.mutable_options()->set_max_output_tokens(10);
    ASSERT_TRUE(stream->Write(req));
  }
  std::string m;
  for (int i = 0; i < 500; ++i) {
    m = HttpGet(server.metrics_port(), "/metrics");
    if (MetricSum(m, "mixserve_queue_depth", {{"model", "en-de-base"}}) +
            MetricSum(m, "mixserve_inflight_sentences", {{"model", "en-de-base"}}) >= 10)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_EQ(MetricSum(m, "mixserve_queue_depth", {{"model", "en-de-base"}}) +
                MetricSum(m, "mixserve_inflight_sentences", {{"model", "en-de-base"}}),
            10);
  server.Signal(SIGTERM);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  // A message sent during the drain is refused on the stream, which goes on.
  auto late = Request("A dog.");
  late.set_request_id("late");
  ASSERT_TRUE(stream->Write(late));
  server.ResumeDecoding();
  std::map<std::string, v1::TranslateResponse> got;
  v1::TranslateResponse r;
  while (got.size() < 11 && stream->Read(&r)) {
    EXPECT_EQ(got.count(r.request_id()), 0u) << r.request_id() << " answered twice";
    got[r.request_id()] = r;
  }
  ASSERT_EQ(got.size(), 11u);
  for (size_t i = 0; i < texts.size(); ++i) {
    const auto& a = got["a" + std::to_string(i)];
    EXPECT_EQ(a.status_code(), 0) << a.status_message();
    EXPECT_EQ(a.variant().name(), "en-de-base");
  }
  EXPECT_EQ(got["late"].status_code(), static_cast<int>(StatusCode::UNAVAILABLE));
  EXPECT_EQ(got["late"].status_message(), "server is shutting down");
  stream->WritesDone();
  grpc::Status s = stream->Finish();
  EXPECT_TRUE(s.ok() || s.error_code() == StatusCode::CANCELLED) << s.error_message();
  EXPECT_EQ(server.Wait(), 0);
}

std::vector<std::string> TranslateAll(ServerProcess& server, const std::vector<std::string>& en,
                                      const std::vector<std::string>& de) {
  std::vector<std::string> out;
  auto stub = server.Translation();
  for (int beam : {1, 3}) {
    for (const auto& [texts, model, src, tgt] :
         {std::make_tuple(&en, "en-de-base", "en", "de"),
          std::make_tuple(&en, "en-de-alt", "en", "de"),
          std::make_tuple(&de, "de-en-base", "de", "en")}) {
      for (const auto& t : *texts) {
        auto req = Request(t, src, tgt);
        req.mutable_variant()->set_name(model);
        req.mutable_options()->set_beam_size(beam);
        req.mutable_options()->set_max_output_tokens(16);
        v1::TranslateResponse r;
        grpc::ClientContext c;
        grpc::Status s = stub->Translate(&c, req, &r);
        EXPECT_TRUE(s.ok()) << s.error_message();
        out.push_back(r.translation() + " | " + std::to_string(r.score()));
      }
    }
  }
  return out;
}

TEST(RestartE2E, RestartOnTheSameRepositoryServesIdenticalTranslations) {
  std::string repo = StandardRepository();
  const auto en = Sentences("en", 10, 100), de = Sentences("de", 10, 100);
  std::vector<std::string> before, after;
  for (auto* out : {&before, &after}) {
    ServerProcess server;
    std::string error;
    ASSERT_TRUE(server.Start("model_repository: \"" + repo + "\"\n", {}, &error)) << error;
    *out = TranslateAll(server, en, de);
    EXPECT_EQ(server.Stop(SIGTERM), 0);
  }
  ASSERT_EQ(before.size(), 60u);
  EXPECT_EQ(before, after);
  // Not trivially equal: the variants translate differently.
  EXPECT_NE(std::vector<std::string>(before.begin(), before.begin() + 10),
            std::vector<std::string>(before.begin() + 10, before.begin() + 20));
}

TEST(RestartE2E, LoadAndUnloadUnderLoadDropNoRequest) {
  std::string repo = StandardRepository();
  ServerProcess server;
  std::string error;
  ASSERT_TRUE(server.Start("model_repository: \"" + repo + "\"\n", {}, &error)) << error;
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0};
  std::mutex mu;
  std::string last_error;
  std::set<int64_t> versions_seen;
  std::vector<std::thread> clients;
  for (int c = 0; c < 4; ++c)
    clients.emplace_back([&, c] {
      auto stub = server.Translation();
      while (!stop) {
        auto req = Request("A man rides a horse.");
        if (c % 2) req.mutable_variant()->set_name("en-de-base");  // latest loaded version
        req.mutable_options()->set_max_output_tokens(6);
        v1::TranslateResponse r;
        grpc::ClientContext ctx;
        grpc::Status s = stub->Translate(&ctx, req, &r);
        std::lock_guard<std::mutex> lock(mu);
        if (s.ok()) {
          ++ok;
          if (r.variant().name() == "en-de-base") versions_seen.insert(r.variant().version());
        } else {
          ++failed;
          last_error = s.error_message();
        }
      }
    });
  // However the test ends (a failed ASSERT returns at once), the clients stop first.
  struct StopClients {
    std::atomic<bool>& stop;
    std::vector<std::thread>& threads;
    ~StopClients() {
      stop = true;
      for (auto& t : threads)
        if (t.joinable()) t.join();
    }
  } stop_clients{stop, clients};
  auto models = server.Models();
  // Three hot swaps: load version v+1, then unload version v, while the clients run.
  for (int64_t v = 1; v <= 3; ++v) {
    CreateModel(repo, {"en-de-base", v + 1, "en", "de", "mha", static_cast<uint64_t>(100 + v)});
    v1::LoadModelRequest load;
    load.set_name("en-de-base");
    load.set_version(v + 1);
    v1::LoadModelResponse lr;
    grpc::ClientContext c1;
    grpc::Status s = models->LoadModel(&c1, load, &lr);
    ASSERT_TRUE(s.ok()) << s.error_message();
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    v1::UnloadModelRequest unload;
    unload.set_name("en-de-base");
    unload.set_version(v);
    v1::UnloadModelResponse ur;
    grpc::ClientContext c2;
    s = models->UnloadModel(&c2, unload, &ur);
    ASSERT_TRUE(s.ok()) << s.error_message();
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  stop = true;
  for (auto& t : clients) t.join();
  EXPECT_GT(ok.load(), 20);
  EXPECT_EQ(failed.load(), 0) << last_error;
  EXPECT_EQ(versions_seen.count(4), 1u);
  EXPECT_GE(versions_seen.size(), 3u);
  std::cout << "hot swaps under load: " << ok.load() << " answered, " << failed.load()
            << " failed; en-de-base versions that answered: " << versions_seen.size() << "\n";
  EXPECT_EQ(server.Stop(SIGTERM), 0);
}

}  // namespace
}  // namespace mixserve
