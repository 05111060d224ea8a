#include <gtest/gtest.h>

#include "config/server_config.h"

namespace mixserve {
namespace {

TEST(ServerConfig, DefaultsApplied) {
  v1::ServerConfig c;
  std::string error;
  ASSERT_TRUE(ParseServerConfig("models { name: \"en-de-base\" }", &c, &error)) << error;
  EXPECT_EQ(c.listen_address(), "0.0.0.0:8500");
  EXPECT_EQ(c.metrics_address(), "0.0.0.0:9500");
  EXPECT_EQ(c.drain_grace_seconds(), 20);
  EXPECT_EQ(c.limits().max_text_bytes(), 65536);
  EXPECT_EQ(c.limits().max_document_bytes(), 1 << 20);
  EXPECT_EQ(c.limits().max_document_sentences(), 10000);
  const auto& m = c.models(0);
  EXPECT_EQ(m.max_sentence_tokens(), 0);
  EXPECT_EQ(m.version_policy().latest(), 1);
  EXPECT_EQ(m.batching().max_batch_sentences(), 0);  // by device, at load
  EXPECT_EQ(m.batching().max_queue_size(), 1024);
  EXPECT_TRUE(m.batching().continuous());
  EXPECT_EQ(m.default_beam_size(), 1);
}

TEST(ServerConfig, MaxSentenceTokensIsNotNegative) {
  v1::ServerConfig c;
  std::string error;
  EXPECT_TRUE(ParseServerConfig("models { name: \"a\" max_sentence_tokens: 510 }", &c, &error));
  EXPECT_EQ(c.models(0).max_sentence_tokens(), 510);
  EXPECT_FALSE(ParseServerConfig("models { name: \"a\" max_sentence_tokens: -1 }", &c, &error));
  EXPECT_NE(error.find("max_sentence_tokens"), std::string::npos) << error;
  EXPECT_FALSE(ParseServerConfig("limits { max_document_sentences: -1 }", &c, &error));
}

TEST(ServerConfig, ExplicitContinuousFalseKept) {
  v1::ServerConfig c;
  std::string error;
  ASSERT_TRUE(ParseServerConfig(
      "models { name: \"a\" batching { continuous: false max_queue_size: 3 } }", &c, &error))
      << error;
  EXPECT_FALSE(c.models(0).batching().continuous());
  EXPECT_EQ(c.models(0).batching().max_queue_size(), 3);
}

TEST(ServerConfig, QueueDelayDefaultFollowsTheBatchingMode) {
  v1::ServerConfig c;
  std::string error;
  ASSERT_TRUE(ParseServerConfig(
      "models { name: \"a\" }\n"
      "models { name: \"b\" batching { continuous: false } }\n"
      "models { name: \"c\" batching { continuous: false max_queue_delay_us: 0 } }\n"
      "models { name: \"d\" batching { max_queue_delay_us: 500 } }\n",
      &c, &error))
      << error;
  EXPECT_EQ(c.models(0).batching().max_queue_delay_us(), 0);     // continuous: join next step
  EXPECT_EQ(c.models(1).batching().max_queue_delay_us(), 2000);  // static batches fill first
  EXPECT_EQ(c.models(2).batching().max_queue_delay_us(), 0);     // an explicit 0 is kept
  EXPECT_EQ(c.models(3).batching().max_queue_delay_us(), 500);
}

// Limits left unset take the device's defaults at load; set ones stay as they are.
TEST(ServerConfig, BatchingDefaultsByDevice) {
  v1::ServerConfig c;
  std::string error;
  ASSERT_TRUE(ParseServerConfig(
      "models { name: \"a\" }\n"
      "models { name: \"b\" batching { max_batch_sentences: 8 join_min_sentences: 1 "
      "decode_workers: 3 } }\n",
      &c, &error))
      << error;
  for (bool cuda : {false, true}) {
    auto a = c.models(0).batching(), b = c.models(1).batching();
    ResolveBatchingForDevice(&a, cuda, 2);
    ResolveBatchingForDevice(&b, cuda, 2);
    EXPECT_EQ(a.max_batch_sentences(), cuda ? 256 : 64);
    EXPECT_EQ(a.max_batch_tokens(), cuda ? 16384 : 4096);
    EXPECT_EQ(a.join_min_sentences(), cuda ? 16 : 1);
    EXPECT_EQ(a.max_join_delay_us(), cuda ? 5000 : 0);
    EXPECT_EQ(b.max_batch_sentences(), 8);
    EXPECT_EQ(b.max_batch_tokens(), cuda ? 16384 : 4096);
    EXPECT_EQ(b.join_min_sentences(), 1);
    EXPECT_EQ(b.max_join_delay_us(), 0);
    EXPECT_EQ(a.decode_workers(), cuda ? 1 : 2);  // one loop per core on the CPU
    EXPECT_EQ(b.decode_workers(), 3);
  }
  auto many = c.models(0).batching();
  ResolveBatchingForDevice(&many, false, 96);
  EXPECT_EQ(many.decode_workers(), 8);
  auto none = c.models(0).batching();
  ResolveBatchingForDevice(&none, false, 0);  // hardware_concurrency() may not know
  EXPECT_EQ(none.decode_workers(), 1);
  EXPECT_FALSE(ParseServerConfig("models { name: \"a\" batching { decode_workers: -1 } }", &c,
                                 &error));
  EXPECT_NE(error.find("decode_workers"), std::string::npos) << error;
  EXPECT_FALSE(ParseServerConfig("models { name: \"a\" batching { max_batch_sentences: -1 } }",
                                 &c, &error));
  EXPECT_NE(error.find("max_batch_sentences"), std::string::npos) << error;
}

TEST(ServerConfig, JoinGroupDefaultsAndChecks) {
  v1::ServerConfig c;
  std::string error;
  ASSERT_TRUE(ParseServerConfig(
      "models { name: \"a\" }\n"
      "models { name: \"b\" batching { join_min_sentences: 16 } }\n"
      "models { name: \"c\" batching { join_min_sentences: 16 max_join_delay_us: 800 } }\n",
      &c, &error))
      << error;
  for (auto& m : *c.mutable_models()) ResolveBatchingForDevice(m.mutable_batching(), false, 2);
  EXPECT_EQ(c.models(0).batching().join_min_sentences(), 1);
  EXPECT_EQ(c.models(0).batching().max_join_delay_us(), 0);
  EXPECT_EQ(c.models(1).batching().max_join_delay_us(), 5000);
  EXPECT_EQ(c.models(2).batching().max_join_delay_us(), 800);
  EXPECT_FALSE(ParseServerConfig(
      "models { name: \"a\" batching { join_min_sentences: -2 } }", &c, &error));
  EXPECT_NE(error.find("join_min_sentences"), std::string::npos) << error;
  EXPECT_FALSE(ParseServerConfig(
      "models { name: \"a\" batching { max_join_delay_us: -1 } }", &c, &error));
  EXPECT_NE(error.find("max_join_delay_us"), std::string::npos) << error;
}

TEST(ServerConfig, Int8OnTheCpuIsAccepted) {
  for (const char* device : {"cpu", "auto", ""}) {
    v1::ServerConfig c;
    std::string error;
    const std::string text =
        std::string("models { name: \"a\" dtype: \"int8\" device: \"") + device + "\" }";
    EXPECT_TRUE(ParseServerConfig(text, &c, &error)) << text << " -> " << error;
  }
}

TEST(ServerConfig, ParseErrorNamesLine) {
  v1::ServerConfig c;
  std::string error;
  EXPECT_FALSE(ParseServerConfig("listen_address: \"x:1\"\nbogus_field: 3\n", &c, &error));
  EXPECT_NE(error.find("line 2"), std::string::npos) << error;
}

TEST(ServerConfig, RejectsBadValues) {
  struct Case {
    const char* text;
    const char* needle;
  } cases[] = {
      {"models { name: \"../etc\" }", "bad model name"},
      {"models { name: \"a\" } models { name: \"a\" }", "twice"},
      {"models { name: \"a\" version_policy { latest: -1 } }", "latest must be positive"},
      {"models { name: \"a\" version_policy { specific { versions: 0 } } }", "positive"},
      {"models { name: \"a\" device: \"tpu\" }", "unknown device"},
      {"models { name: \"a\" dtype: \"int4\" }", "unknown dtype"},
      {"models { name: \"a\" device: \"cuda:0\" dtype: \"int8\" }", "CPU only"},
      {"models { name: \"a\" default_beam_size: 40 }", "default_beam_size"},
      {"routes { source_language: \"en\" target_language: \"de\" targets { variant { name: "
       "\"a\" } weight: -1 } }",
       "weight"},
      {"routes { source_language: \"en\" target_language: \"de\" targets { variant { name: "
       "\"a\" } weight: 0 } }",
       "sum to zero"},
      {"routes { source_language: \"en\" target_language: \"de\" targets { variant { name: "
       "\"a\" } weight: 1 } } routes { source_language: \"en\" target_language: \"de\" "
       "targets { variant { name: \"b\" } weight: 1 } }",
       "two routes"},
      {"log_level: \"loud\"", "log_level"},
      {"log_format: \"xml\"", "log_format"},
      {"listen_address: \"nocolon\"", "host:port"},
      {"tls { cert_file: \"c.pem\" }", "key_file"},
  };
  for (const auto& k : cases) {
    v1::ServerConfig c;
    std::string error;
    EXPECT_FALSE(ParseServerConfig(k.text, &c, &error)) << k.text;
    EXPECT_NE(error.find(k.needle), std::string::npos) << k.text << " -> " << error;
  }
}

TEST(ServerConfig, SafeModelNames) {
  EXPECT_TRUE(IsSafeModelName("en-de-base"));
  EXPECT_TRUE(IsSafeModelName("m1.v_2"));
  EXPECT_FALSE(IsSafeModelName(""));
  EXPECT_FALSE(IsSafeModelName(".."));
  EXPECT_FALSE(IsSafeModelName("a/b"));
  EXPECT_FALSE(IsSafeModelName("a..b"));
  EXPECT_FALSE(IsSafeModelName(".hidden"));
  EXPECT_FALSE(IsSafeModelName("-x"));
  EXPECT_FALSE(IsSafeModelName(std::string(129, 'a')));
}

TEST(ServerConfig, ReadMissingFileNamesPath) {
  v1::ServerConfig c;
  std::string error;
  EXPECT_FALSE(ReadServerConfig("/nonexistent/server.pbtxt", &c, &error));
  EXPECT_NE(error.find("/nonexistent/server.pbtxt"), std::string::npos);
}

TEST(ServerConfig, ExampleDeployConfigIsValid) {
  v1::ServerConfig c;
  std::string error;
  EXPECT_TRUE(ReadServerConfig(std::string(MIXSERVE_SOURCE_DIR) + "/deploy/server.pbtxt", &c,
                               &error))
      << error;
}

}  // namespace
}  // namespace mixserve

namespace mixserve {
namespace {

TEST(ServerConfig, ProblemsListsEveryBadFieldWithItsPath) {
  v1::ServerConfig c;
  std::string error;
  ASSERT_TRUE(ParseServerConfigText(
      "models { name: \"a\" device: \"tpu\" batching { max_queue_size: -1 } }\n"
      "models { name: \"b\" default_beam_size: 40 }\n"
      "limits { max_text_bytes: -5 }\nlog_level: \"loud\"\n",
      &c, &error))
      << error;
  ApplyServerDefaults(&c);
  std::vector<ConfigProblem> problems = ServerConfigProblems(c);
  std::vector<std::string> fields;
  for (const auto& p : problems) fields.push_back(p.field);
  EXPECT_EQ(fields, (std::vector<std::string>{
                        "models[0].device", "models[0].batching.max_queue_size",
                        "models[1].default_beam_size", "limits.max_text_bytes", "log_level"}));
  EXPECT_EQ(ValidateServerConfig(c),
            "models[0].device: unknown device 'tpu' (auto, cpu, cuda, cuda:N)");
  v1::ServerConfig good;
  ApplyServerDefaults(&good);
  EXPECT_TRUE(ServerConfigProblems(good).empty());
}

TEST(ServerConfig, TextParseErrorNamesLineAndField) {
  v1::ServerConfig c;
  std::string error;
  EXPECT_FALSE(ParseServerConfigText("listen_address: \"x:1\"\n  listen_adress: \"y\"\n", &c,
                                     &error));
  EXPECT_EQ(error.rfind("line 2:", 0), 0u) << error;
  EXPECT_NE(error.find("listen_adress"), std::string::npos) << error;
}

}  // namespace
}  // namespace mixserve
