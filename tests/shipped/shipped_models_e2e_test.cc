// The shipped model repository (models/) served by the real server with the configuration of
// the README's first command (deploy/default.pbtxt): every version loads, the routes answer,
// and greedy translation of the test set through the server agrees with the BLEU that the
// export step measured offline and wrote into each version's metadata.json.
#include <gtest/gtest.h>
#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "config/json_io.h"
#include "mixserve/v1/records.pb.h"
#include "tests/server/support/server_fixture.h"
#include "text/bleu.h"

namespace mixserve {
namespace {
using namespace mixserve::testing;
namespace fs = std::filesystem;

const std::string kModels = std::string(MIXSERVE_SOURCE_DIR) + "/models";

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

bool HasShippedModels() {
  if (!fs::is_directory(kModels)) return false;
  for (const auto& m : fs::directory_iterator(kModels))
    if (m.is_directory())
      for (const auto& v : fs::directory_iterator(m.path()))
        if (fs::exists(v.path() / "model.pbtxt")) return true;
  return false;
}

class ShippedModels : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!HasShippedModels()) return;
    server_ = new ServerProcess();
    std::string error;
    const std::string config = Slurp(std::string(MIXSERVE_SOURCE_DIR) + "/deploy/default.pbtxt");
    if (!server_->Start(config, {"--models=" + kModels}, &error)) start_error_ = error;
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    if (!HasShippedModels()) GTEST_SKIP() << "models/ holds no model";
    ASSERT_TRUE(start_error_.empty()) << start_error_;
  }
  static v1::ListModelsResponse List() {
    v1::ListModelsResponse resp;
    grpc::ClientContext c;
    EXPECT_TRUE(server_->Models()->ListModels(&c, {}, &resp).ok());
    return resp;
  }

  static ServerProcess* server_;
  static std::string start_error_;
};
ServerProcess* ShippedModels::server_ = nullptr;
std::string ShippedModels::start_error_;

TEST_F(ShippedModels, EveryVersionOnDiskIsReady) {
  std::set<std::string> on_disk, ready;
  for (const auto& m : fs::directory_iterator(kModels))
    if (m.is_directory()) on_disk.insert(m.path().filename().string());
  const auto listed = List();
  for (const auto& m : listed.models())
    for (const auto& v : m.versions()) {
      EXPECT_EQ(v.state(), v1::MODEL_STATE_READY) << m.name() << "/" << v.version() << ": "
                                                  << v.message();
      if (v.state() == v1::MODEL_STATE_READY) ready.insert(m.name());
    }
  EXPECT_EQ(ready, on_disk);
}

TEST_F(ShippedModels, RoutesAnswerWithTheirVariants) {
  // The en->de route of deploy/default.pbtxt splits between these two variants.
  const std::set<std::string> en_de = {"en-de-base", "en-de-lstm-enc"};
  std::set<std::string> seen;
  auto stub = server_->Translation();
  for (int i = 0; i < 40; ++i) {
    auto req = Request("A man is riding a bike.");
    req.set_routing_key("user-" + std::to_string(i));
    v1::TranslateResponse resp;
    grpc::ClientContext c;
    const auto s = stub->Translate(&c, req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_FALSE(resp.translation().empty());
    EXPECT_TRUE(en_de.count(resp.variant().name())) << resp.variant().name();
    seen.insert(resp.variant().name());
  }
  EXPECT_TRUE(seen.count("en-de-base"));  // 90% of the keys
}

// BLEU through the server against the BLEU the export step measured offline (same engine and
// weights, greedy) and wrote into metadata.json. The server refuses sources longer than the
// model's limit (INVALID_ARGUMENT naming it) where the offline evaluation truncates them, so
// the server's BLEU is taken over the accepted sentences, which must be nearly all.
struct Scored {
  std::vector<std::string> hyps, refs;
  int refused = 0;
};

void TranslateChunk(v1::TranslationService::Stub& stub, const v1::ModelStatus& m, int64_t version,
                    const std::vector<std::string>& srcs, const std::vector<std::string>& refs,
                    Scored* out) {
  v1::TranslateBatchRequest req;
  for (const auto& s : srcs) req.add_texts(s);
  req.set_source_language(m.source_language());
  req.set_target_language(m.target_language());
  req.mutable_variant()->set_name(m.name());
  req.mutable_variant()->set_version(version);
  req.mutable_options()->set_beam_size(1);
  v1::TranslateBatchResponse resp;
  grpc::ClientContext c;
  const auto st = stub.TranslateBatch(&c, req, &resp);
  if (st.ok()) {
    ASSERT_EQ(resp.translations_size(), static_cast<int>(srcs.size()));
    for (size_t i = 0; i < srcs.size(); ++i) {
      out->hyps.push_back(resp.translations(static_cast<int>(i)).translation());
      out->refs.push_back(refs[i]);
    }
    return;
  }
  ASSERT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message();
  if (srcs.size() == 1) {
    EXPECT_NE(st.error_message().find("tokens"), std::string::npos) << st.error_message();
    ++out->refused;
    return;
  }
  // Split to find the refused sentences.
  const size_t half = srcs.size() / 2;
  TranslateChunk(stub, m, version, {srcs.begin(), srcs.begin() + half},
                 {refs.begin(), refs.begin() + half}, out);
  TranslateChunk(stub, m, version, {srcs.begin() + half, srcs.end()},
                 {refs.begin() + half, refs.end()}, out);
}

TEST_F(ShippedModels, ServerBleuAgreesWithExportedMetadata) {
  auto stub = server_->Translation();
  int checked = 0;
  const auto listed = List();
  for (const auto& m : listed.models()) {
    for (const auto& v : m.versions()) {
      // metadata.json as the server reports it: a mixserve.v1.ModelMetadata.
      v1::ModelMetadata meta;
      ASSERT_NO_THROW(JsonToMessage(v.metadata_json(), m.name() + " metadata_json", &meta));
      if (!meta.has_bleu_test() || meta.test_set() != "test_2016_flickr") continue;
      const double expected = meta.bleu_test();
      const auto srcs = Sentences(m.source_language(), 1000);
      const auto refs = Sentences(m.target_language(), 1000);
      ASSERT_EQ(srcs.size(), refs.size());
      Scored scored;
      for (size_t i = 0; i < srcs.size(); i += 100) {
        const size_t j = std::min(srcs.size(), i + 100);
        TranslateChunk(*stub, m, v.version(), {srcs.begin() + i, srcs.begin() + j},
                       {refs.begin() + i, refs.begin() + j}, &scored);
      }
      const std::string what = m.name() + "/" + std::to_string(v.version());
      EXPECT_LE(scored.refused, 30) << what << ": sentences refused as too long";
      const double got = CorpusBleu(scored.hyps, scored.refs).score;
      std::printf("%s: BLEU %.2f through the server on %zu sentences (%d refused); metadata %.2f\n",
                  what.c_str(), got, scored.hyps.size(), scored.refused, expected);
      EXPECT_GT(got, expected - 2.0) << what;
      EXPECT_LT(got, expected + 5.0) << what;
      ++checked;
    }
  }
  EXPECT_GT(checked, 0) << "no version carries bleu_test on test_2016_flickr";
}

// The baselines served with dtype int8 (weights quantized at load, model/cpu_linear.h) beside
// the default server's fp32: greedy BLEU on test_2016 through the server may drop by at most
// 0.3, and most sentences come out the same.
TEST_F(ShippedModels, Int8BaselinesKeepTheirBleu) {
  ServerProcess int8;
  std::string error;
  ASSERT_TRUE(int8.Start("model_repository: \"" + kModels + "\"\n"
                         "models { name: \"en-de-base\" dtype: \"int8\" }\n"
                         "models { name: \"de-en-base\" dtype: \"int8\" }\n",
                         {}, &error))
      << error;
  EXPECT_NE(int8.Log().find("dtype=int8 cpu_kernel="), std::string::npos) << int8.Log();
  auto fp32_stub = server_->Translation();
  auto int8_stub = int8.Translation();
  int checked = 0;
  const auto listed = List();
  for (const auto& m : listed.models()) {
    if (m.name() != "en-de-base" && m.name() != "de-en-base") continue;
    const int64_t version = m.versions(0).version();
    const auto srcs = Sentences(m.source_language(), 1000);
    const auto refs = Sentences(m.target_language(), 1000);
    Scored fp32, q;
    for (size_t i = 0; i < srcs.size(); i += 100) {
      const size_t j = std::min(srcs.size(), i + 100);
      const std::vector<std::string> s(srcs.begin() + i, srcs.begin() + j);
      const std::vector<std::string> r(refs.begin() + i, refs.begin() + j);
      TranslateChunk(*fp32_stub, m, version, s, r, &fp32);
      TranslateChunk(*int8_stub, m, version, s, r, &q);
    }
    ASSERT_EQ(fp32.hyps.size(), q.hyps.size()) << m.name();
    ASSERT_EQ(fp32.refs, q.refs) << m.name();
    size_t same = 0;
    for (size_t i = 0; i < q.hyps.size(); ++i) same += q.hyps[i] == fp32.hyps[i];
    const double b32 = CorpusBleu(fp32.hyps, fp32.refs).score;
    const double b8 = CorpusBleu(q.hyps, q.refs).score;
    std::printf("%s: BLEU fp32 %.2f, int8 %.2f on %zu sentences; %zu translations identical\n",
                m.name().c_str(), b32, b8, q.hyps.size(), same);
    EXPECT_GE(b8, b32 - 0.3) << m.name();
    EXPECT_GE(same, q.hyps.size() / 2) << m.name();
    ++checked;
  }
  EXPECT_EQ(checked, 2);
}

}  // namespace
}  // namespace mixserve
