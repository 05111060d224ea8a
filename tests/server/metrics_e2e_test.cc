// /metrics of the real server checked against the traffic sent, including online BLEU
// statistics that reproduce the corpus BLEU of the same sentences computed offline.
#include <gtest/gtest.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <thread>

#include "base/build_info.h"
#include "engine/engine.h"
#include "tests/server/support/server_fixture.h"
#include "text/bleu.h"

namespace mixserve {
namespace {
using namespace mixserve::testing;

TEST(MetricsE2E, CountersMatchTrafficAndBleuReproducesCorpusBleu) {
  std::string repo = StandardRepository();
  ServerProcess server;
  std::string error;
  ASSERT_TRUE(server.Start("model_repository: \"" + repo + "\"\n", {}, &error)) << error;
  auto stub = server.Translation();
  auto src = Sentences("en", 20, 100);
  auto refs = Sentences("de", 20, 100);
  ASSERT_EQ(src.size(), refs.size());
  std::vector<std::string> hyps;
  double in_tokens = 0, out_tokens = 0;
  for (size_t i = 0; i < src.size(); ++i) {
    auto req = Request(src[i]);
    req.mutable_variant()->set_name("en-de-base");
    req.set_reference(refs[i]);
    v1::TranslateResponse r;
    grpc::ClientContext c;
    grpc::Status s = stub->Translate(&c, req, &r);
    ASSERT_TRUE(s.ok()) << i << ": " << s.error_code() << ": " << s.error_message();
    hyps.push_back(r.translation());
    in_tokens += r.input_tokens();
    out_tokens += r.output_tokens();
  }
  // A batch without references, and two bad requests.
  v1::TranslateBatchRequest b;
  b.set_source_language("de");
  b.set_target_language("en");
  for (int i = 0; i < 3; ++i) b.add_texts(refs[i]);
  b.mutable_options()->set_max_output_tokens(5);
  v1::TranslateBatchResponse br;
  grpc::ClientContext cb;
  grpc::Status bs = stub->TranslateBatch(&cb, b, &br);
  ASSERT_TRUE(bs.ok()) << bs.error_code() << ": " << bs.error_message();
  for (int i = 0; i < 2; ++i) {
    v1::TranslateResponse r;
    grpc::ClientContext c;
    EXPECT_FALSE(stub->Translate(&c, Request(""), &r).ok());
  }

  std::string m = HttpGet(server.metrics_port(), "/metrics");
  ASSERT_FALSE(m.empty());
  std::map<std::string, std::string> base = {{"model", "en-de-base"}, {"version", "1"}};
  auto with = [&](std::map<std::string, std::string> l,
                  std::map<std::string, std::string> more) {
    l.insert(more.begin(), more.end());
    return l;
  };
  EXPECT_EQ(MetricSum(m, "mixserve_requests_total",
                      with(base, {{"method", "Translate"}, {"code", "OK"},
                                  {"source_language", "en"}, {"target_language", "de"}})),
            src.size());
  EXPECT_EQ(MetricSum(m, "mixserve_requests_total",
                      {{"method", "TranslateBatch"}, {"model", "de-en-base"}, {"code", "OK"}}),
            1);
  EXPECT_EQ(MetricSum(m, "mixserve_requests_total",
                      {{"method", "Translate"}, {"code", "INVALID_ARGUMENT"}}),
            2);
  EXPECT_EQ(MetricSum(m, "mixserve_request_duration_seconds_count",
                      with(base, {{"method", "Translate"}})),
            src.size());
  EXPECT_EQ(MetricSum(m, "mixserve_input_tokens_total", base), in_tokens);
  EXPECT_EQ(MetricSum(m, "mixserve_output_tokens_total", base), out_tokens);
  EXPECT_EQ(MetricSum(m, "mixserve_sentences_total", {{"model", "de-en-base"}}), 3);
  EXPECT_EQ(MetricSum(m, "mixserve_queue_duration_seconds_count", base), src.size());
  EXPECT_EQ(MetricSum(m, "mixserve_compute_duration_seconds_count", base), src.size());
  EXPECT_GE(MetricSum(m, "mixserve_batch_size_count", base), 1);
  // Scheduler phases: one "step" per decoding step (as many as batch sizes observed), and
  // between one and one-per-sentence admissions and answering phases.
  auto phase = [&](const char* p, const char* what) {
    return MetricSum(m, std::string("mixserve_scheduler_phase_duration_seconds_") + what,
                     with(base, {{"phase", p}}));
  };
  EXPECT_EQ(phase("step", "count"), MetricSum(m, "mixserve_batch_size_count", base));
  EXPECT_GT(phase("step", "sum"), 0);
  for (const char* p : {"admit", "finish"}) {
    EXPECT_GE(phase(p, "count"), 1) << p;
    EXPECT_LE(phase(p, "count"), src.size()) << p;
  }
  EXPECT_EQ(MetricSum(m, "mixserve_queue_depth", base), 0);
  EXPECT_EQ(MetricSum(m, "mixserve_inflight_sentences", base), 0);
  EXPECT_EQ(MetricSum(m, "mixserve_model_state", with(base, {{"state", "ready"}})), 1);
  // "auto" device: the CPU, or the first GPU where there is one.
  EXPECT_TRUE(MetricExists(m, "mixserve_device_memory_bytes", with(base, {{"device", "cpu"}})) ||
              MetricExists(m, "mixserve_device_memory_bytes", with(base, {{"device", "cuda:0"}})));

  // Online BLEU: the counters equal the summed sentence statistics, and corpus BLEU of the
  // counters equals corpus BLEU of the same hypotheses and references.
  BleuStats offline;
  for (size_t i = 0; i < hyps.size(); ++i) offline += SentenceStats(hyps[i], {refs[i]});
  BleuStats online;
  for (int n = 0; n < kBleuOrder; ++n) {
    auto l = with(base, {{"order", std::to_string(n + 1)}});
    online.matches[n] = MetricSum(m, "mixserve_bleu_matching_ngrams_total", l);
    online.totals[n] = MetricSum(m, "mixserve_bleu_hypothesis_ngrams_total", l);
    EXPECT_DOUBLE_EQ(online.matches[n], offline.matches[n]) << n;
    EXPECT_DOUBLE_EQ(online.totals[n], offline.totals[n]) << n;
  }
  online.hyp_len = MetricSum(m, "mixserve_bleu_hypothesis_length_total", base);
  online.ref_len = MetricSum(m, "mixserve_bleu_reference_length_total", base);
  EXPECT_DOUBLE_EQ(online.hyp_len, offline.hyp_len);
  EXPECT_DOUBLE_EQ(online.ref_len, offline.ref_len);
  EXPECT_EQ(MetricSum(m, "mixserve_bleu_sentences_total", base), src.size());
  EXPECT_NEAR(CorpusBleu(online).score, CorpusBleu(hyps, refs).score, 1e-9);

  // The exposition passes promtool's checks.
  if (access("/usr/bin/promtool", X_OK) == 0) {
    std::string path = MakeTempDir("prom") + "/metrics.txt";
    std::ofstream(path) << m;
    FILE* f = popen(("/usr/bin/promtool check metrics < " + path + " 2>&1").c_str(), "r");
    std::string out;
    char buf[512];
    while (fgets(buf, sizeof buf, f)) out += buf;
    EXPECT_EQ(pclose(f), 0) << out;
    EXPECT_EQ(out, "");
  }
}

TEST(MetricsE2E, BuildInfoGaugeNamesVersionCommitTorchAndDevice) {
  ServerProcess server;
  std::string error;
  ASSERT_TRUE(server.Start("model_repository: \"" + StandardRepository() + "\"\n", {}, &error))
      << error;
  const std::string m = HttpGet(server.metrics_port(), "/metrics");
  const std::map<std::string, std::string> labels = {
      {"version", Version()}, {"commit", GitCommit()}, {"torch", TorchVersion()},
      {"device", AutoDevice()}};
  EXPECT_EQ(MetricSum(m, "mixserve_build_info", labels), 1) << m;
  EXPECT_EQ(MetricSum(m, "mixserve_build_info"), 1) << m;  // one series
}

TEST(MetricsE2E, BusyMetricsPortIsReportedAndServingGoesOn) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  std::string busy = "127.0.0.1:" + std::to_string(ntohs(a.sin_port));
  std::string repo = StandardRepository();
  ServerProcess server;
  std::string error;
  ASSERT_TRUE(server.Start("model_repository: \"" + repo + "\"\n", {"--metrics=" + busy}, &error))
      << error;
  EXPECT_NE(server.ready_line().find("metrics unavailable"), std::string::npos)
      << server.ready_line();
  // The log names the cause, quoting civetweb's own error log (its exception says little).
  std::string log = server.Log();
  auto at = log.find("cannot serve metrics on " + busy);
  ASSERT_NE(at, std::string::npos) << log;
  std::string line = log.substr(at, log.find('\n', at) - at);
  EXPECT_NE(line.find("Address already in use"), std::string::npos) << line;
  v1::TranslateResponse r;
  grpc::ClientContext c;
  EXPECT_TRUE(server.Translation()->Translate(&c, Request("A dog."), &r).ok());
  close(fd);
}

}  // namespace
}  // namespace mixserve
