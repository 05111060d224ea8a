#include <gtest/gtest.h>

#include <map>
#include <random>

#include "server/router.h"

namespace mixserve {
namespace {

LoadedVariant Make(const std::string& name, int64_t version, const std::string& src,
                   const std::string& tgt) {
  LoadedVariant v;
  v.id.name = name;
  v.id.version = version;
  v.source_language = src;
  v.target_language = tgt;
  return v;
}

std::vector<LoadedVariant> Loaded() {
  std::vector<LoadedVariant> out;
  out.push_back(Make("en-de-base", 1, "en", "de"));
  out.push_back(Make("en-de-base", 2, "en", "de"));
  out.push_back(Make("en-de-aft", 1, "en", "de"));
  out.push_back(Make("de-en-base", 3, "de", "en"));
  return out;
}

v1::RouteConfig Split(double a, double b) {
  v1::RouteConfig r;
  r.set_source_language("en");
  r.set_target_language("de");
  auto* t = r.add_targets();
  t->mutable_variant()->set_name("en-de-base");
  t->set_weight(a);
  t = r.add_targets();
  t->mutable_variant()->set_name("en-de-aft");
  t->set_weight(b);
  return r;
}

TEST(Router, ExplicitVariant) {
  Router router;
  v1::VariantRef ref;
  ref.set_name("en-de-base");
  auto d = router.Route("en", "de", ref, "", Loaded(), 0.5, 0.5);
  ASSERT_TRUE(d.status.ok());
  EXPECT_EQ(d.primary.version, 2);  // latest loaded
  ref.set_version(1);
  EXPECT_EQ(router.Route("", "", ref, "", Loaded(), 0.5, 0.5).primary.version, 1);
  ref.set_version(7);
  EXPECT_EQ(router.Route("en", "de", ref, "", Loaded(), 0.5, 0.5).status.error_code(),
            grpc::StatusCode::NOT_FOUND);
  ref.set_name("de-en-base");
  ref.set_version(0);
  auto bad = router.Route("en", "de", ref, "", Loaded(), 0.5, 0.5);
  EXPECT_EQ(bad.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(bad.status.error_message().find("translates de-en"), std::string::npos);
}

TEST(Router, DefaultWithoutRoute) {
  Router router;
  auto d = router.Route("en", "de", {}, "", Loaded(), 0.9, 0.9);
  ASSERT_TRUE(d.status.ok());
  EXPECT_EQ(d.primary.name, "en-de-aft");  // lexicographically first
  d = router.Route("de", "en", {}, "", Loaded(), 0.1, 0.1);
  EXPECT_EQ(d.primary.ToString(), "de-en-base/3");  // the only one
  d = router.Route("en", "fr", {}, "", Loaded(), 0.1, 0.1);
  EXPECT_EQ(d.status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(d.status.error_message().find("en-fr"), std::string::npos);
}

TEST(Router, WeightedSplitProportions) {
  Router router({Split(90, 10)});
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> u(0, 1);
  std::map<std::string, int> count;
  const int n = 20000;
  for (int i = 0; i < n; ++i) count[router.Route("en", "de", {}, "", Loaded(), u(rng), 0).primary.name]++;
  EXPECT_NEAR(count["en-de-base"] / double(n), 0.9, 0.01);
  // Sticky keys split in the same proportion and never change their answer.
  count.clear();
  for (int i = 0; i < n; ++i) {
    std::string key = "user-" + std::to_string(i);
    auto a = router.Route("en", "de", {}, key, Loaded(), u(rng), 0).primary;
    auto b = router.Route("en", "de", {}, key, Loaded(), u(rng), 0).primary;
    EXPECT_EQ(a, b);
    count[a.name]++;
  }
  EXPECT_NEAR(count["en-de-base"] / double(n), 0.9, 0.01);
}

TEST(Router, UnloadedTargetsAreSkipped) {
  Router router({Split(1, 1)});
  std::vector<LoadedVariant> only_base = {Make("en-de-base", 1, "en", "de")};
  for (double u : {0.0, 0.4, 0.6, 0.99})
    EXPECT_EQ(router.Route("en", "de", {}, "", only_base, u, 0).primary.name, "en-de-base");
}

TEST(Router, ShadowAndRouteChanges) {
  auto r = Split(1, 0);
  r.mutable_shadow()->set_name("en-de-aft");
  Router router({r});
  auto d = router.Route("en", "de", {}, "", Loaded(), 0.3, 0.99);
  EXPECT_EQ(d.primary.name, "en-de-base");
  ASSERT_TRUE(d.shadow);  // fraction defaults to 1
  EXPECT_EQ(d.shadow_id.name, "en-de-aft");
  r.set_shadow_fraction(0.25);
  router.SetRoute(r);
  EXPECT_FALSE(router.Route("en", "de", {}, "", Loaded(), 0.3, 0.5).shadow);
  EXPECT_TRUE(router.Route("en", "de", {}, "", Loaded(), 0.3, 0.2).shadow);
  ASSERT_EQ(router.Routes().size(), 1u);
  v1::RouteConfig remove;
  remove.set_source_language("en");
  remove.set_target_language("de");
  router.SetRoute(remove);
  EXPECT_TRUE(router.Routes().empty());
}

TEST(Router, KeyFractionIsStableAndSpread) {
  EXPECT_EQ(Router::KeyFraction("abc", 1), Router::KeyFraction("abc", 1));
  EXPECT_NE(Router::KeyFraction("abc", 1), Router::KeyFraction("abc", 2));
  double sum = 0;
  for (int i = 0; i < 10000; ++i) {
    double f = Router::KeyFraction("k" + std::to_string(i), 1);
    ASSERT_GE(f, 0);
    ASSERT_LT(f, 1);
    sum += f;
  }
  EXPECT_NEAR(sum / 10000, 0.5, 0.02);
}

}  // namespace
}  // namespace mixserve

#include "server/rate_limiter.h"

namespace mixserve {
namespace {

TEST(RateLimiter, BucketPerClientHost) {
  RateLimiter off(0);
  for (int i = 0; i < 100; ++i) EXPECT_TRUE(off.Allow("ipv4:1.2.3.4:1"));
  RateLimiter r(3);
  int allowed = 0;
  for (int i = 0; i < 10; ++i) allowed += r.Allow("ipv4:10.0.0.1:" + std::to_string(5000 + i));
  EXPECT_EQ(allowed, 3);  // one second's burst, shared by the host's connections
  EXPECT_TRUE(r.Allow("ipv4:10.0.0.2:5000"));  // another host has its own bucket
  EXPECT_FALSE(r.Allow("ipv4:10.0.0.3:1", 4));  // a batch above the burst
  EXPECT_EQ(RateLimiter::ClientOf("ipv6:[::1]:443"), "ipv6:[::1]");
  EXPECT_EQ(RateLimiter::ClientOf("unix:/tmp/s"), "unix:/tmp/s");
}

}  // namespace
}  // namespace mixserve
