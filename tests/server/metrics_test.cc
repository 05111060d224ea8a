#include <gtest/gtest.h>
#include <netinet/in.h>
#include <prometheus/text_serializer.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "server/metrics.h"

namespace mixserve {
namespace {

TEST(Metrics, ExpositionPassesPromtool) {
  Metrics m;
  VariantMetrics* v = m.ForVariant("en-de-base", 1, "en", "de", "cpu");
  v->input_tokens->Increment(5);
  v->batch_size->Observe(3);
  BleuStats s;
  s.matches = {3, 2, 1, 0};
  s.totals = {4, 3, 2, 1};
  s.hyp_len = 4;
  s.ref_len = 5;
  v->AddBleu(s);
  m.ForShadow("en-de-base", 1, "en-de-aft", 1)->Add(s);
  m.CountRequest("Translate", "en-de-base", 1, "en", "de", "OK", 0.01);
  m.CountRequest("Translate", "", 0, "", "", "INVALID_ARGUMENT", 0.0001);
  m.SetModelState("en-de-base", 1, "ready");
  m.CountLoadFailure("broken");
  std::string text = prometheus::TextSerializer().Serialize(m.registry()->Collect());
  EXPECT_NE(text.find("mixserve_bleu_matching_ngrams_total{model=\"en-de-base\",order=\"2\""),
            std::string::npos)
      << text;
  std::string path = ::testing::TempDir() + "/metrics.txt";
  std::ofstream(path) << text;
  if (access("/usr/bin/promtool", X_OK) != 0) GTEST_SKIP() << "promtool not installed";
  std::string cmd = "/usr/bin/promtool check metrics < " + path + " 2>&1";
  FILE* f = popen(cmd.c_str(), "r");
  ASSERT_NE(f, nullptr);
  std::string out;
  char buf[512];
  while (fgets(buf, sizeof buf, f)) out += buf;
  int rc = pclose(f);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_EQ(out, "") << out;
}

TEST(Metrics, ExposerFailureIsReported) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  std::string address = "127.0.0.1:" + std::to_string(ntohs(a.sin_port));
  Metrics m;
  int port = -1;
  std::string error = m.StartExposer(address, &port);
  EXPECT_FALSE(error.empty());
  EXPECT_NE(error.find(address), std::string::npos) << error;
  EXPECT_FALSE(m.exposing());
  close(fd);
}

TEST(Metrics, ExposerOnPortZeroReportsItsPort) {
  Metrics m;
  int port = 0;
  std::string error = m.StartExposer("127.0.0.1:0", &port);
  ASSERT_EQ(error, "");
  EXPECT_GT(port, 0);
}

}  // namespace
}  // namespace mixserve
