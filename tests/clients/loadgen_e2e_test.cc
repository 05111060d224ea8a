// mixserve-loadgen against the real mixserve-server (tiny random-weight models on loopback):
// forced-variant A/B runs, routed open-loop runs, client-side drops and failure handling.
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "base/remove_tree.h"
#include "tests/server/support/server_fixture.h"
#include "text/bleu.h"

namespace mixserve {
namespace {
using namespace mixserve::testing;
using google::protobuf::Struct;
using google::protobuf::Value;

constexpr int kSentences = 24;
constexpr int kMaxTokens = 8;

const char* kRoute = R"(
routes {
  source_language: "en" target_language: "de"
  targets { variant { name: "en-de-base" } weight: 50 }
  targets { variant { name: "en-de-alt" } weight: 50 }
}
)";

struct Outcome {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

// Runs mixserve-loadgen with `args`; returns its exit status and output.
Outcome RunLoadgen(const std::vector<std::string>& args) {
  std::string cmd = std::string(MIXSERVE_BINARY_DIR) + "/clients/mixserve-loadgen --quiet";
  for (const auto& a : args) cmd += " '" + a + "'";
  cmd += " 2>&1";
  Outcome o;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return o;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) o.output.append(buf, n);
  const int status = pclose(p);
  o.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return o;
}

Struct ReadJson(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  Struct s;
  const auto status = google::protobuf::util::JsonStringToMessage(ss.str(), &s);
  EXPECT_TRUE(status.ok()) << status.ToString() << "\n" << ss.str();
  return s;
}

const Struct& Field(const Struct& s, const std::string& key) {
  return s.fields().at(key).struct_value();
}
double Number(const Struct& s, const std::string& key) {
  return s.fields().at(key).number_value();
}
std::string Text(const Struct& s, const std::string& key) {
  return s.fields().at(key).string_value();
}
const google::protobuf::ListValue& List(const Struct& s, const std::string& key) {
  return s.fields().at(key).list_value();
}

class LoadgenE2E : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new ServerProcess;
    std::string error;
    const std::string repo = StandardRepository();
    if (!server_->Start("model_repository: \"" + repo + "\"\n" + kRoute, {}, &error)) {
      setup_error_ = new std::string(error);
      return;
    }
    dir_ = new std::string(MakeTempDir("loadgen"));
    // Parallel lines that fit the tiny models' length limit.
    sources_ = new std::vector<std::string>(Sentences("en", kSentences));
    references_ = new std::vector<std::string>(Sentences("de", kSentences));
    std::ofstream src(*dir_ + "/test.en"), ref(*dir_ + "/test.de");
    for (int i = 0; i < kSentences; ++i) {
      src << (*sources_)[i] << "\n";
      ref << (*references_)[i] << "\n";
    }
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
    if (dir_) RemoveTree(*dir_);
  }
  void SetUp() override {
    ASSERT_EQ(setup_error_, nullptr) << *setup_error_;
    ASSERT_EQ(sources_->size(), static_cast<size_t>(kSentences));
    ASSERT_EQ(references_->size(), static_cast<size_t>(kSentences));
  }

  std::vector<std::string> Common() const {
    return {"--target=" + server_->address(), "--src=" + *dir_ + "/test.en",
            "--ref=" + *dir_ + "/test.de", "--src-lang=en", "--tgt-lang=de",
            "--max-tokens=" + std::to_string(kMaxTokens)};
  }

  // The variant's translations of the test set, fetched one by one outside mixserve-loadgen.
  static std::vector<std::string> Direct(const std::string& variant) {
    auto stub = server_->Translation();
    std::vector<std::string> hyps;
    for (const auto& s : *sources_) {
      auto req = Request(s);
      req.mutable_options()->set_max_output_tokens(kMaxTokens);
      req.mutable_variant()->set_name(variant);
      v1::TranslateResponse resp;
      grpc::ClientContext ctx;
      EXPECT_TRUE(stub->Translate(&ctx, req, &resp).ok());
      hyps.push_back(resp.translation());
    }
    return hyps;
  }

  static std::vector<std::string> Lines(const std::string& path) {
    std::ifstream in(path);
    std::vector<std::string> lines;
    std::string line;
    while (std::getline(in, line)) lines.push_back(line);
    return lines;
  }

  static ServerProcess* server_;
  static std::string* setup_error_;
  static std::string* dir_;
  static std::vector<std::string>* sources_;
  static std::vector<std::string>* references_;
};

ServerProcess* LoadgenE2E::server_ = nullptr;
std::string* LoadgenE2E::setup_error_ = nullptr;
std::string* LoadgenE2E::dir_ = nullptr;
std::vector<std::string>* LoadgenE2E::sources_ = nullptr;
std::vector<std::string>* LoadgenE2E::references_ = nullptr;

TEST_F(LoadgenE2E, ForcedVariantsGivePairedComparison) {
  // Random-weight models say much the same whatever the input (their BLEU is 0 here); the
  // BLEU arithmetic itself is covered by clients_test. This checks the plumbing: requests to
  // both variants, their answers in the report and the --hyps files, the paired comparison.
  const std::vector<std::string> base = Direct("en-de-base"), alt = Direct("en-de-alt");
  const std::vector<std::string>& refs = *references_;
  auto args = Common();
  const std::string json = *dir_ + "/forced.json", svg = *dir_ + "/forced.svg";
  // One sentence at a time (sent to both variants at once): no batch mixes sentences of one
  // variant, so every translation equals the one fetched alone.
  // Two passes: the report counts each sentence once, with its first answer.
  args.insert(args.end(), {"--variants=en-de-base,en-de-alt", "--concurrency=1",
                           "--count=" + std::to_string(2 * kSentences),
                           "--json=" + json, "--plot=" + svg, "--hyps=" + *dir_ + "/forced",
                           "--bootstrap=200"});
  const Outcome o = RunLoadgen(args);
  ASSERT_EQ(o.exit_code, 0) << o.output;
  EXPECT_NE(o.output.find("A/B: en-de-alt vs en-de-base"), std::string::npos) << o.output;

  // --hyps: each variant's translations in test-set order, as fetched directly.
  EXPECT_EQ(Lines(*dir_ + "/forced.en-de-base.txt"), base);
  EXPECT_EQ(Lines(*dir_ + "/forced.en-de-alt.txt"), alt);

  const Struct r = ReadJson(json);
  EXPECT_EQ(Number(Field(r, "run"), "dispatched"), 2 * kSentences);
  const auto variants = List(r, "variants");
  ASSERT_EQ(variants.values_size(), 2);
  const Struct& vb = variants.values(0).struct_value();
  const Struct& va = variants.values(1).struct_value();
  EXPECT_EQ(Text(vb, "variant"), "en-de-base");
  EXPECT_EQ(Text(va, "variant"), "en-de-alt");
  for (const Struct* v : {&vb, &va}) {
    EXPECT_EQ(Number(*v, "requests"), 2 * kSentences);
    EXPECT_EQ(Number(*v, "ok"), 2 * kSentences);
    EXPECT_EQ(Number(*v, "bleu_sentences"), kSentences);
    EXPECT_GT(Number(*v, "sentences_per_s"), 0);
    const Struct lat = Field(*v, "latency_ms");
    EXPECT_GT(Number(lat, "p50"), 0);
    EXPECT_LE(Number(lat, "p50"), Number(lat, "p99"));
    EXPECT_LE(Number(lat, "p99"), Number(lat, "max"));
  }
  EXPECT_EQ(List(vb, "served_by").values(0).string_value(), "en-de-base:1");
  const double bleu_base = CorpusBleu(base, refs).score, bleu_alt = CorpusBleu(alt, refs).score;
  EXPECT_NEAR(Number(vb, "bleu"), bleu_base, 1e-4);
  EXPECT_NEAR(Number(va, "bleu"), bleu_alt, 1e-4);

  const auto comparisons = List(r, "comparisons");
  ASSERT_EQ(comparisons.values_size(), 1);
  const Struct& c = comparisons.values(0).struct_value();
  EXPECT_EQ(Number(c, "paired_sentences"), kSentences);
  EXPECT_NEAR(Number(c, "bleu_difference"), bleu_alt - bleu_base, 1e-4);
  const auto ci = List(c, "difference_ci95");
  EXPECT_LE(ci.values(0).number_value(), Number(c, "bleu_difference") + 1e-9);
  EXPECT_GE(ci.values(1).number_value(), Number(c, "bleu_difference") - 1e-9);
  EXPECT_GT(Number(c, "p_value"), 0);
  EXPECT_LE(Number(c, "p_value"), 1);
  EXPECT_GT(Number(Field(c, "latency_ratio"), "p50"), 0);

  std::ifstream in(svg);
  std::stringstream plot;
  plot << in.rdbuf();
  EXPECT_EQ(plot.str().rfind("<svg", 0), 0u);
  EXPECT_NE(plot.str().find("en-de-alt"), std::string::npos);
}

TEST_F(LoadgenE2E, WithoutBoundsOnePassOverTheTestSet) {
  auto args = Common();
  const std::string json = *dir_ + "/pass.json";
  args.insert(args.end(), {"--variants=en-de-base", "--concurrency=3", "--json=" + json});
  const Outcome o = RunLoadgen(args);
  ASSERT_EQ(o.exit_code, 0) << o.output;
  const Struct r = ReadJson(json);
  EXPECT_EQ(Number(Field(r, "run"), "dispatched"), kSentences);
  const Struct v = List(r, "variants").values(0).struct_value();
  EXPECT_EQ(Number(v, "ok"), kSentences);
  EXPECT_EQ(Number(v, "bleu_sentences"), kSentences);
}

TEST_F(LoadgenE2E, RoutedOpenLoopSplitsBetweenVariants) {
  auto args = Common();
  const std::string json = *dir_ + "/open.json";
  args.insert(args.end(),
              {"--qps=25", "--duration=2.5", "--warmup=0.5", "--routing-key=request",
               "--json=" + json});
  const Outcome o = RunLoadgen(args);
  ASSERT_EQ(o.exit_code, 0) << o.output;
  const Struct r = ReadJson(json);
  const Struct run = Field(r, "run");
  EXPECT_EQ(Text(run, "mode"), "open");
  // Poisson(62.5) arrivals in 2.5 s: sd ~8; allow 4 sd.
  EXPECT_NEAR(Number(run, "dispatched"), 62.5, 32);
  EXPECT_EQ(Number(run, "dropped"), 0);
  double requests = 0;
  std::vector<std::string> labels;
  const auto variant_list = List(r, "variants");
  for (const auto& v : variant_list.values()) {
    labels.push_back(Text(v.struct_value(), "variant"));
    requests += Number(v.struct_value(), "requests");
  }
  // Routed: one request per sentence; those sent in the warm-up are not in the report.
  EXPECT_GT(Number(run, "warmup_requests"), 0);
  EXPECT_EQ(requests + Number(run, "warmup_requests"), Number(run, "dispatched"));
  // A 50/50 split of ~50 requests: both variants answer (chance of one missing ~1e-15).
  ASSERT_EQ(labels.size(), 2u) << o.output;
  EXPECT_EQ(labels[0], "en-de-alt:1");
  EXPECT_EQ(labels[1], "en-de-base:1");
  ASSERT_EQ(List(r, "comparisons").values_size(), 1);
}

TEST_F(LoadgenE2E, StickyRoutingLeavesNothingToPair) {
  // Two passes over the test set with the sentence as routing key: each sentence goes to the
  // same variant both times, so no sentence is answered by both.
  auto args = Common();
  const std::string json = *dir_ + "/sticky.json", hyps = *dir_ + "/sticky";
  args.insert(args.end(), {"--count=" + std::to_string(2 * kSentences), "--concurrency=4",
                           "--routing-key=sentence", "--json=" + json, "--hyps=" + hyps});
  const Outcome o = RunLoadgen(args);
  ASSERT_EQ(o.exit_code, 0) << o.output;
  const Struct r = ReadJson(json);
  const auto variants = List(r, "variants");
  ASSERT_EQ(variants.values_size(), 2) << o.output;  // 24 sentences split 50/50
  double covered = 0;
  for (const auto& v : variants.values()) {
    EXPECT_EQ(Number(v.struct_value(), "requests"), 2 * Number(v.struct_value(), "bleu_sentences"));
    covered += Number(v.struct_value(), "bleu_sentences");
  }
  EXPECT_EQ(covered, kSentences);
  const Struct c = List(r, "comparisons").values(0).struct_value();
  EXPECT_EQ(Number(c, "paired_sentences"), 0);
  EXPECT_EQ(c.fields().count("p_value"), 0u);
  EXPECT_NE(o.output.find("unpaired BLEU only"), std::string::npos) << o.output;
  // --hyps: a line per test-set sentence, empty where the other variant answered.
  const auto alt = Lines(hyps + ".en-de-alt_1.txt"), base = Lines(hyps + ".en-de-base_1.txt");
  EXPECT_EQ(alt.size(), static_cast<size_t>(kSentences));
  EXPECT_EQ(base.size(), static_cast<size_t>(kSentences));
}

TEST_F(LoadgenE2E, OpenLoopCountsClientSideDrops) {
  auto args = Common();
  const std::string json = *dir_ + "/drops.json";
  // 2000 arrivals/s with one request allowed in flight: most arrivals find it busy.
  args.insert(args.end(), {"--qps=2000", "--count=300", "--max-inflight=1",
                           "--variants=en-de-base", "--json=" + json});
  const Outcome o = RunLoadgen(args);
  ASSERT_EQ(o.exit_code, 0) << o.output;
  const Struct run = Field(ReadJson(json), "run");
  EXPECT_GT(Number(run, "dropped"), 0);
  EXPECT_EQ(Number(run, "dropped") + Number(run, "dispatched"), 300);
}

TEST_F(LoadgenE2E, ReportsErrorsByStatus) {
  auto args = Common();
  const std::string json = *dir_ + "/errors.json";
  args.insert(args.end(), {"--variants=no-such-model", "--count=5", "--json=" + json});
  const Outcome o = RunLoadgen(args);
  EXPECT_EQ(o.exit_code, 1) << o.output;  // nothing succeeded
  const Struct v = List(ReadJson(json), "variants").values(0).struct_value();
  EXPECT_EQ(Number(v, "requests"), 5);
  EXPECT_EQ(Number(v, "ok"), 0);
  EXPECT_EQ(Number(Field(v, "errors"), "NOT_FOUND"), 5) << o.output;
}

TEST_F(LoadgenE2E, UnreachableServerAndBadInput) {
  auto args = Common();
  args[0] = "--target=127.0.0.1:1";
  args.push_back("--count=3");
  Outcome o = RunLoadgen(args);
  EXPECT_EQ(o.exit_code, 1) << o.output;
  EXPECT_NE(o.output.find("UNAVAILABLE=3"), std::string::npos) << o.output;

  std::ofstream(*dir_ + "/short.de") << "only one line\n";
  args = Common();
  args[2] = "--ref=" + *dir_ + "/short.de";
  o = RunLoadgen(args);
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_NE(o.output.find("lines"), std::string::npos) << o.output;

  args = Common();
  args.push_back("--json=" + *dir_ + "/no-such-dir/out.json");
  o = RunLoadgen(args);
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_NE(o.output.find("no-such-dir/out.json"), std::string::npos) << o.output;

  args = Common();
  args[1] = "--src=" + *dir_ + "/missing.en";
  o = RunLoadgen(args);
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_NE(o.output.find("missing.en"), std::string::npos) << o.output;
}

TEST_F(LoadgenE2E, TlsWithTheServersCa) {
  // A self-signed certificate for 127.0.0.1, its own CA.
  const std::string cert = *dir_ + "/cert.pem", key = *dir_ + "/key.pem";
  const std::string gen = "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1"
                          " -addext subjectAltName=IP:127.0.0.1 -keyout " + key + " -out " +
                          cert + " >/dev/null 2>&1";
  if (std::system(gen.c_str()) != 0) GTEST_SKIP() << "openssl cannot make a certificate";
  ServerProcess tls_server;
  std::string error;
  ASSERT_TRUE(tls_server.Start("model_repository: \"" + StandardRepository() + "\"\n" +
                                   "tls { cert_file: \"" + cert + "\" key_file: \"" + key +
                                   "\" }\n",
                               {}, &error))
      << error;
  auto args = Common();
  args[0] = "--target=" + tls_server.address();
  args.insert(args.end(), {"--count=4", "--variants=en-de-base"});
  Outcome o = RunLoadgen(args);
  EXPECT_EQ(o.exit_code, 1) << o.output;  // plaintext against TLS: nothing succeeds
  args.push_back("--tls-ca=" + cert);
  args.push_back("--json=" + *dir_ + "/tls.json");
  o = RunLoadgen(args);
  EXPECT_EQ(o.exit_code, 0) << o.output;
  const Struct v = List(ReadJson(*dir_ + "/tls.json"), "variants").values(0).struct_value();
  EXPECT_EQ(Number(v, "ok"), 4) << o.output;
}

}  // namespace
}  // namespace mixserve
