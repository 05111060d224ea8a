#include <gtest/gtest.h>
#include <netinet/in.h>
#include <prometheus/text_serializer.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

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

// Sends `request` to 127.0.0.1:port as is and returns everything the server sent back.
std::string Exchange(int port, const std::string& request, bool half_close = true) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return "connect failed";
  }
  send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  if (half_close) shutdown(fd, SHUT_WR);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = recv(fd, buf, sizeof buf, 0)) > 0) out.append(buf, static_cast<size_t>(n));
  close(fd);
  return out;
}

TEST(MetricsHttp, AnswersGetHeadAndRefusesTheRest) {
  Metrics m;
  m.CountLoadFailure("broken");
  int port = 0;
  ASSERT_EQ(m.StartExposer("127.0.0.1:0", &port), "");
  ASSERT_TRUE(m.exposing());

  std::string r = Exchange(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(r.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << r;
  EXPECT_NE(r.find("Content-Type: text/plain; version=0.0.4"), std::string::npos) << r;
  EXPECT_NE(r.find("mixserve_model_load_failures_total{model=\"broken\"} 1"), std::string::npos) << r;
  const auto body_at = r.find("\r\n\r\n") + 4;
  const auto length_at = r.find("Content-Length: ") + 16;
  EXPECT_EQ(std::stoul(r.substr(length_at)), r.size() - body_at);

  // A query string is ignored; HEAD gets the headers alone.
  EXPECT_EQ(Exchange(port, "GET /metrics?x=1 HTTP/1.0\r\n\r\n").rfind("HTTP/1.1 200", 0), 0u);
  r = Exchange(port, "HEAD /metrics HTTP/1.1\r\n\r\n");
  EXPECT_EQ(r.rfind("HTTP/1.1 200", 0), 0u) << r;
  EXPECT_EQ(r.find("# HELP"), std::string::npos) << r;

  r = Exchange(port, "GET / HTTP/1.1\r\n\r\n");
  EXPECT_EQ(r.rfind("HTTP/1.1 404", 0), 0u) << r;
  EXPECT_NE(r.find("metrics are at /metrics"), std::string::npos) << r;
  r = Exchange(port, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(r.rfind("HTTP/1.1 405", 0), 0u) << r;
  EXPECT_NE(r.find("Allow: GET, HEAD"), std::string::npos) << r;
  EXPECT_EQ(Exchange(port, "\x01\x02garbage\r\n\r\n").rfind("HTTP/1.1 400", 0), 0u);
  EXPECT_EQ(Exchange(port, "GET /metrics HTTP/1.1\r\nX: " + std::string(20000, 'a') + "\r\n\r\n")
                .rfind("HTTP/1.1 431", 0),
            0u);
  // A client that closes before a whole request leaves the server answering the next one.
  EXPECT_EQ(Exchange(port, "GET /met"), "");
  EXPECT_EQ(Exchange(port, "GET /metrics HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 200", 0), 0u);
}

TEST(MetricsHttp, SilentClientsAreLimitedAndTimedOut) {
  MetricsHttpServer http;
  auto registry = std::make_shared<prometheus::Registry>();
  int port = 0;
  ASSERT_EQ(http.Start("127.0.0.1:0", registry, &port), "");
  // Connections that send nothing hold the connection slots until their read times out;
  // beyond the limit a connection is answered 503 at once.
  std::vector<int> idle;
  for (int i = 0; i < MetricsHttpServer::kMaxConnections; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    idle.push_back(fd);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // let the server accept them
  EXPECT_EQ(Exchange(port, "GET /metrics HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 503", 0), 0u);
  // Stop waits for the silent connections to time out, not forever.
  const auto t0 = std::chrono::steady_clock::now();
  http.Stop();
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LE(waited, MetricsHttpServer::kIoTimeoutSeconds + 3.0);
  for (int fd : idle) close(fd);
  EXPECT_EQ(Exchange(port, "GET /metrics HTTP/1.1\r\n\r\n"), "connect failed");
}

TEST(MetricsHttp, BadAddressesAreReported) {
  Metrics m;
  int port = 0;
  EXPECT_NE(m.StartExposer("no-port", &port).find("is not host:port"), std::string::npos);
  EXPECT_NE(m.StartExposer("127.0.0.1:http", &port).find("cannot resolve '127.0.0.1:http'"), std::string::npos);
  EXPECT_FALSE(m.exposing());
}

}  // namespace
}  // namespace mixserve
