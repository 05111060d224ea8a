// Every RPC of the real server over loopback gRPC.
#include <gtest/gtest.h>
#include <grpcpp/grpcpp.h>

#include <map>
#include <set>

#include "grpc/health/v1/health.grpc.pb.h"
#include "tests/server/support/server_fixture.h"

namespace mixserve {
namespace {
using namespace mixserve::testing;

class TranslateE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    repo_ = StandardRepository();
    std::string error;
    ASSERT_TRUE(server_.Start("model_repository: \"" + repo_ + "\"\n", {}, &error)) << error;
    stub_ = server_.Translation();
  }
  std::string repo_;
  ServerProcess server_;
  std::unique_ptr<v1::TranslationService::Stub> stub_;
};

TEST_F(TranslateE2E, ReadyLineNamesBothPorts) {
  EXPECT_GT(server_.port(), 0);
  EXPECT_GT(server_.metrics_port(), 0);
  EXPECT_NE(server_.ready_line().find("127.0.0.1:" + std::to_string(server_.port())),
            std::string::npos);
}

TEST_F(TranslateE2E, TranslateAnswersWithVariantTokensAndTimings) {
  auto req = Request("A man is riding a bicycle.", "de", "en");
  req.set_request_id("req-1");
  v1::TranslateResponse a, b;
  grpc::ClientContext c1, c2;
  ASSERT_TRUE(stub_->Translate(&c1, req, &a).ok());
  EXPECT_EQ(a.request_id(), "req-1");
  EXPECT_EQ(a.variant().name(), "de-en-base");  // the only de-en variant
  EXPECT_EQ(a.variant().version(), 1);
  EXPECT_GT(a.input_tokens(), 0);
  EXPECT_GE(a.output_tokens(), 0);
  EXPECT_LE(a.output_tokens(), 8);
  EXPECT_GT(a.timings().total_ms(), 0);
  EXPECT_GE(a.timings().total_ms(), a.timings().queue_ms());
  // Deterministic: the same request gives the same answer.
  ASSERT_TRUE(stub_->Translate(&c2, req, &b).ok());
  EXPECT_EQ(a.translation(), b.translation());
  // A server-made request id when none is given.
  grpc::ClientContext c3;
  v1::TranslateResponse c;
  req.clear_request_id();
  ASSERT_TRUE(stub_->Translate(&c3, req, &c).ok());
  EXPECT_FALSE(c.request_id().empty());
}

TEST_F(TranslateE2E, BatchMatchesSingleTranslations) {
  auto texts = Sentences("en", 5);
  v1::TranslateBatchRequest batch;
  for (const auto& t : texts) batch.add_texts(t);
  batch.mutable_variant()->set_name("en-de-base");
  batch.mutable_options()->set_max_output_tokens(8);
  v1::TranslateBatchResponse br;
  grpc::ClientContext ctx;
  ASSERT_TRUE(stub_->TranslateBatch(&ctx, batch, &br).ok());
  ASSERT_EQ(br.translations_size(), 5);
  EXPECT_EQ(br.variant().name(), "en-de-base");
  for (int i = 0; i < 5; ++i) {
    v1::TranslateRequest r = Request(texts[i]);
    r.mutable_variant()->set_name("en-de-base");
    v1::TranslateResponse one;
    grpc::ClientContext c;
    ASSERT_TRUE(stub_->Translate(&c, r, &one).ok());
    EXPECT_EQ(one.translation(), br.translations(i).translation()) << i;
  }
}

TEST_F(TranslateE2E, NBestWithBeam) {
  auto req = Request("Two dogs play in the snow.");
  req.mutable_variant()->set_name("en-de-base");
  req.mutable_options()->set_beam_size(3);
  req.mutable_options()->set_n_best(2);
  v1::TranslateResponse r;
  grpc::ClientContext c;
  grpc::Status s = stub_->Translate(&c, req, &r);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(r.n_best_size(), 2);
  EXPECT_EQ(r.n_best(0).text(), r.translation());
}

TEST_F(TranslateE2E, StreamAnswersEveryMessageMatchedById) {
  grpc::ClientContext ctx;
  auto stream = stub_->TranslateStream(&ctx);
  auto texts = Sentences("en", 6);
  std::set<std::string> sent;
  for (int i = 0; i < 8; ++i) {
    v1::TranslateRequest r = Request(i < 6 ? texts[i] : "");  // two bad ones
    r.set_request_id("s" + std::to_string(i));
    sent.insert(r.request_id());
    ASSERT_TRUE(stream->Write(r));
  }
  stream->WritesDone();
  v1::TranslateResponse resp;
  std::set<std::string> got;
  int errors = 0;
  while (stream->Read(&resp)) {
    got.insert(resp.request_id());
    if (resp.status_code() != 0) {
      ++errors;
      EXPECT_EQ(resp.status_code(), static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
      EXPECT_NE(resp.status_message().find("empty"), std::string::npos);
    } else {
      EXPECT_FALSE(resp.variant().name().empty());
    }
  }
  EXPECT_TRUE(stream->Finish().ok());
  EXPECT_EQ(got, sent);
  EXPECT_EQ(errors, 2);
}

// A message the server cannot parse (proto3 refuses a text that is not UTF-8) is answered
// with its request_id and INVALID_ARGUMENT, and the stream goes on.
TEST_F(TranslateE2E, StreamAnswersUnparsableMessageAndGoesOn) {
  grpc::ClientContext ctx;
  auto stream = stub_->TranslateStream(&ctx);
  v1::TranslateRequest bad = Request("caf\xc3 au lait");
  bad.set_request_id("bad");
  v1::TranslateRequest good = Request("A dog runs.");
  good.set_request_id("good");
  ASSERT_TRUE(stream->Write(bad));
  ASSERT_TRUE(stream->Write(good));
  stream->WritesDone();
  std::map<std::string, v1::TranslateResponse> got;
  v1::TranslateResponse resp;
  while (stream->Read(&resp)) got[resp.request_id()] = resp;
  grpc::Status s = stream->Finish();
  EXPECT_TRUE(s.ok()) << s.error_code() << ": " << s.error_message();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got["bad"].status_code(), static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
  EXPECT_EQ(got["bad"].status_message(), "text is not valid UTF-8 (byte offset 3)");
  EXPECT_EQ(got["good"].status_code(), 0) << got["good"].status_message();
  EXPECT_FALSE(got["good"].variant().name().empty());
}

TEST_F(TranslateE2E, HealthServing) {
  auto health = grpc::health::v1::Health::NewStub(server_.Channel());
  for (const char* service : {"", "mixserve.v1.TranslationService", "mixserve.v1.ModelService"}) {
    grpc::health::v1::HealthCheckRequest req;
    req.set_service(service);
    grpc::health::v1::HealthCheckResponse resp;
    grpc::ClientContext c;
    ASSERT_TRUE(health->Check(&c, req, &resp).ok()) << service;
    EXPECT_EQ(resp.status(), grpc::health::v1::HealthCheckResponse::SERVING) << service;
  }
}

TEST_F(TranslateE2E, ListModelsShowsEveryVariantReady) {
  auto models = server_.Models();
  v1::ListModelsRequest req;
  v1::ListModelsResponse resp;
  grpc::ClientContext c;
  ASSERT_TRUE(models->ListModels(&c, req, &resp).ok());
  std::set<std::string> names;
  for (const auto& m : resp.models()) {
    names.insert(m.name());
    ASSERT_EQ(m.versions_size(), 1);
    EXPECT_EQ(m.versions(0).state(), v1::MODEL_STATE_READY);
    EXPECT_GT(m.versions(0).parameter_count(), 0);
    // "auto" device: the CPU, or the first GPU where there is one.
    const std::string& device = m.versions(0).device();
    EXPECT_TRUE(device == "cpu" || device == "cuda:0") << device;
    EXPECT_EQ(m.versions(0).config().d_model(), 32);
  }
  EXPECT_EQ(names, (std::set<std::string>{"de-en-base", "en-de-alt", "en-de-base"}));
}

}  // namespace
}  // namespace mixserve
