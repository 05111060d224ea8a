// ModelService of the real server: authentication, load/unload, failed loads, path
// traversal, repository polling and hot swaps under traffic.
#include <gtest/gtest.h>
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "tests/server/support/server_fixture.h"
#include "base/remove_tree.h"

namespace mixserve {
namespace {
using namespace mixserve::testing;
namespace fs = std::filesystem;

class AdminE2E : public ::testing::Test {
 protected:
  void Start(const std::string& extra) {
    repo_ = StandardRepository();
    std::string error;
    ASSERT_TRUE(server_.Start("model_repository: \"" + repo_ + "\"\n" + extra, {}, &error))
        << error;
    stub_ = server_.Translation();
    models_ = server_.Models();
  }
  grpc::Status Translate(const v1::TranslateRequest& req, v1::TranslateResponse* r) {
    grpc::ClientContext c;
    return stub_->Translate(&c, req, r);
  }
  v1::ListModelsResponse List() {
    v1::ListModelsResponse resp;
    grpc::ClientContext c;
    EXPECT_TRUE(models_->ListModels(&c, {}, &resp).ok());
    return resp;
  }
  // State of one version in ListModels (UNSPECIFIED when not listed).
  v1::ModelState StateOf(const std::string& name, int64_t version, std::string* message = nullptr) {
    return StateIn(List(), name, version, message);
  }
  std::string repo_;
  ServerProcess server_;
  std::unique_ptr<v1::TranslationService::Stub> stub_;
  std::unique_ptr<v1::ModelService::Stub> models_;
};

TEST_F(AdminE2E, BearerTokenRequired) {
  std::string dir = MakeTempDir("token");
  std::ofstream(dir + "/token") << "s3cret\n";
  Start("admin_token_file: \"" + dir + "/token\"\n");
  v1::ListModelsResponse resp;
  {
    grpc::ClientContext c;
    auto s = models_->ListModels(&c, {}, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  }
  {
    grpc::ClientContext c;
    c.AddMetadata("authorization", "Bearer wrong");
    EXPECT_EQ(models_->ListModels(&c, {}, &resp).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  }
  {
    grpc::ClientContext c;
    c.AddMetadata("authorization", "Bearer s3cret");
    v1::UnloadModelRequest u;
    u.set_name("en-de-alt");
    v1::UnloadModelResponse ur;
    grpc::ClientContext c2;
    EXPECT_EQ(models_->UnloadModel(&c2, u, &ur).error_code(), grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_TRUE(models_->ListModels(&c, {}, &resp).ok());
    EXPECT_EQ(resp.models_size(), 3);
  }
  // Translation needs no token.
  v1::TranslateResponse r;
  EXPECT_TRUE(Translate(Request("A dog."), &r).ok());
}

TEST_F(AdminE2E, PathTraversalRefused) {
  Start("");
  for (const char* name : {"../en-de-base", "en-de-base/../../etc", "..", "/etc", ""}) {
    v1::LoadModelRequest req;
    req.set_name(name);
    v1::LoadModelResponse resp;
    grpc::ClientContext c;
    EXPECT_EQ(models_->LoadModel(&c, req, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << name;
  }
  v1::LoadModelRequest req;
  req.set_name("en-de-base");
  req.set_version(-1);
  v1::LoadModelResponse resp;
  grpc::ClientContext c;
  EXPECT_EQ(models_->LoadModel(&c, req, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  grpc::ClientContext c2;
  req.set_name("no-such-model");
  req.set_version(0);
  EXPECT_EQ(models_->LoadModel(&c2, req, &resp).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(AdminE2E, UnloadAndLoadAgain) {
  Start("");
  auto req = Request("A dog.");
  req.mutable_variant()->set_name("en-de-alt");
  v1::TranslateResponse r;
  ASSERT_TRUE(Translate(req, &r).ok());
  v1::UnloadModelRequest u;
  u.set_name("en-de-alt");
  v1::UnloadModelResponse ur;
  grpc::ClientContext c1;
  ASSERT_TRUE(models_->UnloadModel(&c1, u, &ur).ok());
  auto s = Translate(req, &r);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(s.error_message().find("en-de-alt"), std::string::npos);
  EXPECT_EQ(StateOf("en-de-alt", 1), v1::MODEL_STATE_UNSPECIFIED);
  grpc::ClientContext c2;
  EXPECT_EQ(models_->UnloadModel(&c2, u, &ur).error_code(), grpc::StatusCode::NOT_FOUND);

  v1::LoadModelRequest l;
  l.set_name("en-de-alt");
  v1::LoadModelResponse lr;
  grpc::ClientContext c3;
  ASSERT_TRUE(models_->LoadModel(&c3, l, &lr).ok());
  EXPECT_EQ(lr.status().version(), 1);
  EXPECT_EQ(lr.status().state(), v1::MODEL_STATE_READY);
  EXPECT_TRUE(Translate(req, &r).ok());
}

TEST_F(AdminE2E, FailedLoadLeavesServingVariantsUntouched) {
  Start("");
  // Version 2 of en-de-base with corrupt weights, version 3 with a bad config.
  fs::copy(repo_ + "/en-de-base/1", repo_ + "/en-de-base/2", fs::copy_options::recursive);
  std::ofstream(repo_ + "/en-de-base/2/model.pt", std::ios::trunc) << "not a checkpoint";
  fs::copy(repo_ + "/en-de-base/1", repo_ + "/en-de-base/3", fs::copy_options::recursive);
  std::ofstream(repo_ + "/en-de-base/3/model.pbtxt", std::ios::trunc) << "d_model: banana\n";
  for (int v : {2, 3}) {
    v1::LoadModelRequest l;
    l.set_name("en-de-base");
    l.set_version(v);
    v1::LoadModelResponse lr;
    grpc::ClientContext c;
    auto s = models_->LoadModel(&c, l, &lr);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << v;
    EXPECT_NE(s.error_message().find("version " + std::to_string(v)), std::string::npos)
        << s.error_message();
    std::string message;
    EXPECT_EQ(StateOf("en-de-base", v, &message), v1::MODEL_STATE_UNAVAILABLE);
    EXPECT_FALSE(message.empty());
  }
  EXPECT_EQ(StateOf("en-de-base", 1), v1::MODEL_STATE_READY);
  auto req = Request("A dog.");
  req.mutable_variant()->set_name("en-de-base");
  v1::TranslateResponse r;
  ASSERT_TRUE(Translate(req, &r).ok());
  EXPECT_EQ(r.variant().version(), 1);
  std::string m = HttpGet(server_.metrics_port(), "/metrics");
  EXPECT_EQ(MetricSum(m, "mixserve_model_load_failures_total", {{"model", "en-de-base"}}), 2);
}

TEST_F(AdminE2E, PollingSwapsVersionsUnderTraffic) {
  Start("repository_poll_seconds: 1\n");
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0};
  std::string last_error;
  std::thread traffic([&] {
    auto stub = server_.Translation();
    auto req = Request("A man rides a horse.");
    req.mutable_options()->set_max_output_tokens(3);
    while (!stop) {
      v1::TranslateResponse r;
      grpc::ClientContext c;
      auto s = stub->Translate(&c, req, &r);
      if (s.ok()) {
        ++ok;
      } else {
        ++failed;
        last_error = s.error_message();
      }
    }
  });
  // A new version appears: latest 1 loads it, then retires version 1.
  CreateModel(repo_, {"en-de-base", 2, "en", "de", "mha", 44});
  bool swapped = false;
  for (int i = 0; i < 100 && !swapped; ++i) {
    swapped = StateOf("en-de-base", 2) == v1::MODEL_STATE_READY &&
              StateOf("en-de-base", 1) == v1::MODEL_STATE_UNSPECIFIED;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(swapped);
  // Unload and reload another variant of the pair while traffic flows.
  v1::UnloadModelRequest u;
  u.set_name("en-de-alt");
  v1::UnloadModelResponse ur;
  grpc::ClientContext c1;
  EXPECT_TRUE(models_->UnloadModel(&c1, u, &ur).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  v1::LoadModelRequest l;
  l.set_name("en-de-alt");
  v1::LoadModelResponse lr;
  grpc::ClientContext c2;
  EXPECT_TRUE(models_->LoadModel(&c2, l, &lr).ok());
  // The version directory disappears: version 1 comes back.
  mixserve::RemoveTree(repo_ + "/en-de-base/2");
  bool back = false;
  for (int i = 0; i < 100 && !back; ++i) {
    back = StateOf("en-de-base", 1) == v1::MODEL_STATE_READY &&
           StateOf("en-de-base", 2) == v1::MODEL_STATE_UNSPECIFIED;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(back);
  stop = true;
  traffic.join();
  EXPECT_GT(ok.load(), 10);
  EXPECT_EQ(failed.load(), 0) << last_error;
  auto req = Request("A dog.");
  req.mutable_variant()->set_name("en-de-base");
  v1::TranslateResponse r;
  ASSERT_TRUE(Translate(req, &r).ok());
  EXPECT_EQ(r.variant().version(), 1);
}

}  // namespace
}  // namespace mixserve
