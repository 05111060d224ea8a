// A/B routing of the real server: weighted split, stickiness, defaults, run-time route
// changes, shadow traffic and its agreement metrics.
#include <gtest/gtest.h>
#include <grpcpp/grpcpp.h>

#include <map>
#include <thread>

#include "tests/server/support/server_fixture.h"
#include "text/bleu.h"

namespace mixserve {
namespace {
using namespace mixserve::testing;

const char* kSplitRoute = R"(
routes {
  source_language: "en" target_language: "de"
  targets { variant { name: "en-de-base" } weight: 70 }
  targets { variant { name: "en-de-alt" } weight: 30 }
}
)";

class RoutingE2E : public ::testing::Test {
 protected:
  void Start(const std::string& extra) {
    repo_ = StandardRepository();
    std::string error;
    ASSERT_TRUE(server_.Start("model_repository: \"" + repo_ + "\"\n" + extra, {}, &error))
        << error;
    stub_ = server_.Translation();
  }
  std::string Answer(v1::TranslateRequest req, v1::TranslateResponse* out = nullptr) {
    v1::TranslateResponse r;
    grpc::ClientContext c;
    grpc::Status s = stub_->Translate(&c, req, &r);
    EXPECT_TRUE(s.ok()) << s.error_message();
    if (out) *out = r;
    return r.variant().name();
  }
  std::string repo_;
  ServerProcess server_;
  std::unique_ptr<v1::TranslationService::Stub> stub_;
};

TEST_F(RoutingE2E, WeightedSplitFollowsTheWeights) {
  Start(kSplitRoute);
  auto req = Request("A dog runs.");
  req.mutable_options()->set_max_output_tokens(2);
  std::map<std::string, int> count;
  const int n = 300;
  for (int i = 0; i < n; ++i) count[Answer(req)]++;
  // Binomial(300, 0.7): sd ~ 7.9 requests; 4 sd either side.
  EXPECT_NEAR(count["en-de-base"], 210, 32) << count["en-de-alt"];
  EXPECT_EQ(count["en-de-base"] + count["en-de-alt"], n);
}

TEST_F(RoutingE2E, StickyKeysKeepTheirVariant) {
  Start(kSplitRoute);
  auto req = Request("A dog runs.");
  req.mutable_options()->set_max_output_tokens(2);
  std::map<std::string, int> count;
  for (int k = 0; k < 100; ++k) {
    req.set_routing_key("user-" + std::to_string(k));
    std::string first = Answer(req);
    for (int rep = 0; rep < 2; ++rep) EXPECT_EQ(Answer(req), first) << req.routing_key();
    count[first]++;
  }
  EXPECT_NEAR(count["en-de-base"], 70, 20);
  EXPECT_GT(count["en-de-alt"], 0);
}

TEST_F(RoutingE2E, DefaultsWithoutRouteAndRunTimeRouteChanges) {
  Start("");
  auto req = Request("A dog runs.");
  EXPECT_EQ(Answer(req), "en-de-alt");  // lexicographically first of the pair
  EXPECT_EQ(Answer(Request("Ein Hund rennt.", "de", "en")), "de-en-base");

  auto models = server_.Models();
  v1::SetRouteRequest set;
  auto* route = set.mutable_route();
  route->set_source_language("en");
  route->set_target_language("de");
  auto* t = route->add_targets();
  t->mutable_variant()->set_name("en-de-base");
  t->set_weight(1);
  v1::SetRouteResponse sr;
  grpc::ClientContext c1;
  ASSERT_TRUE(models->SetRoute(&c1, set, &sr).ok());
  for (int i = 0; i < 10; ++i) EXPECT_EQ(Answer(req), "en-de-base");

  v1::GetRoutesResponse routes;
  grpc::ClientContext c2;
  ASSERT_TRUE(models->GetRoutes(&c2, {}, &routes).ok());
  ASSERT_EQ(routes.routes_size(), 1);
  EXPECT_EQ(routes.routes(0).targets(0).variant().name(), "en-de-base");

  // A bad route is refused and the current one stays.
  route->mutable_targets(0)->set_weight(-1);
  grpc::ClientContext c3;
  grpc::Status bad = models->SetRoute(&c3, set, &sr);
  EXPECT_EQ(bad.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(bad.error_message().find("weight"), std::string::npos);
  EXPECT_EQ(Answer(req), "en-de-base");

  // No targets removes the route: back to the default.
  route->clear_targets();
  grpc::ClientContext c4;
  ASSERT_TRUE(models->SetRoute(&c4, set, &sr).ok());
  EXPECT_EQ(Answer(req), "en-de-alt");
}

TEST_F(RoutingE2E, ShadowGetsACopyAndAgreementIsRecorded) {
  Start(R"(
routes {
  source_language: "en" target_language: "de"
  targets { variant { name: "en-de-base" } weight: 1 }
  shadow { name: "en-de-alt" }
}
)");
  auto texts = Sentences("en", 12, 20);
  BleuStats expected;
  for (const auto& text : texts) {
    v1::TranslateResponse primary, shadow;
    EXPECT_EQ(Answer(Request(text), &primary), "en-de-base");
    auto direct = Request(text);
    direct.mutable_variant()->set_name("en-de-alt");
    Answer(direct, &shadow);
    try {
      expected += SentenceStats(shadow.translation(), {primary.translation()});
    } catch (const std::exception&) {
      // empty primary output: nothing to agree with (the server skips it too)
    }
  }
  std::map<std::string, std::string> labels = {{"model", "en-de-base"},
                                               {"shadow_model", "en-de-alt"}};
  std::string m;
  for (int i = 0; i < 100; ++i) {  // shadow answers arrive asynchronously
    m = HttpGet(server_.metrics_port(), "/metrics");
    if (MetricSum(m, "mixserve_requests_total", {{"method", "shadow"}}) >= texts.size())
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(MetricSum(m, "mixserve_requests_total", {{"method", "shadow"}, {"code", "OK"}}),
            texts.size());
  // The shadow's answers are counted under its own variant as well.
  EXPECT_EQ(MetricSum(m, "mixserve_sentences_total", {{"model", "en-de-alt"}}),
            2.0 * texts.size());
  for (int n = 0; n < kBleuOrder; ++n) {
    auto l = labels;
    l["order"] = std::to_string(n + 1);
    EXPECT_DOUBLE_EQ(MetricSum(m, "mixserve_shadow_bleu_matching_ngrams_total", l),
                     expected.matches[n]);
    EXPECT_DOUBLE_EQ(MetricSum(m, "mixserve_shadow_bleu_hypothesis_ngrams_total", l),
                     expected.totals[n]);
  }
  EXPECT_DOUBLE_EQ(MetricSum(m, "mixserve_shadow_bleu_hypothesis_length_total", labels),
                   expected.hyp_len);
  EXPECT_DOUBLE_EQ(MetricSum(m, "mixserve_shadow_bleu_reference_length_total", labels),
                   expected.ref_len);
}

}  // namespace
}  // namespace mixserve
