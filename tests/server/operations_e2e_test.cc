// The operator's side of the real binary: --version, --check-config, configuration reload on
// SIGHUP and JSON logs.
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "base/build_info.h"
#include "engine/engine.h"
#include "tests/server/support/server_fixture.h"

namespace mixserve {
namespace {
using namespace mixserve::testing;
namespace fs = std::filesystem;
using grpc::StatusCode;

void Write(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::trunc) << text;
}

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// Waits until the server's log holds `needle` (at most 20 s).
bool WaitForLog(const ServerProcess& server, const std::string& needle) {
  for (int i = 0; i < 200; ++i) {
    if (Contains(server.Log(), needle)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

TEST(VersionE2E, PrintsVersionCommitAndLibTorch) {
  std::string out;
  ASSERT_EQ(RunServerCommand({"--version"}, &out), 0) << out;
  EXPECT_EQ(out, VersionLine("mixserve-server") + "\nLibTorch " + TorchVersion() + "\n");
  EXPECT_TRUE(Contains(out, std::string("(commit ") + GitCommit() + ")")) << out;
}

// The parser every binary shares (base/flags.h): Abseil's error line, exit status 2.
TEST(VersionE2E, UsageErrorsAndHelpAsEveryBinary) {
  std::string out;
  EXPECT_EQ(RunServerCommand({"--bogus=1"}, &out), 2) << out;
  EXPECT_TRUE(Contains(out, "ERROR: Unknown command line flag 'bogus'")) << out;
  EXPECT_EQ(RunServerCommand({"--check-config=maybe"}, &out), 2) << out;
  EXPECT_TRUE(Contains(out, "Illegal value 'maybe' specified for flag 'check-config'")) << out;
  EXPECT_EQ(RunServerCommand({"--help"}, &out), 0) << out;
  EXPECT_TRUE(Contains(out, "--log-level")) << out;
}

class CheckConfigE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    repo_ = StandardRepository();
    config_ = MakeTempDir("check") + "/server.pbtxt";
  }
  int Check(const std::string& text, std::string* out) {
    Write(config_, "model_repository: \"" + repo_ + "\"\n" + text);
    return RunServerCommand({"--check-config", "--config=" + config_}, out);
  }
  std::string ModelFile(const std::string& name) const {
    return repo_ + "/" + name + "/1/model.pbtxt";
  }
  std::string repo_, config_;
};

TEST_F(CheckConfigE2E, GoodConfigurationIsOkAndNothingIsLoaded) {
  // Weights are not read: a corrupt checkpoint passes the check (its load fails later).
  Write(repo_ + "/en-de-alt/1/model.pt", "not a checkpoint");
  std::string out;
  EXPECT_EQ(Check("routes { source_language: \"en\" target_language: \"de\"\n"
                  "  targets { variant { name: \"en-de-base\" } weight: 9 }\n"
                  "  targets { variant { name: \"en-de-alt\" version: 1 } weight: 1 } }\n",
                  &out),
            0)
      << out;
  for (const char* m : {"en-de-base", "en-de-alt", "de-en-base"})
    EXPECT_TRUE(Contains(out, ModelFile(m) + ": ok\n")) << out;
  EXPECT_TRUE(Contains(out, config_ + ": ok\n")) << out;
  EXPECT_TRUE(Contains(out, "configuration ok\n")) << out;
  EXPECT_FALSE(Contains(out, "listening")) << out;
}

TEST_F(CheckConfigE2E, BadServerConfigNamesEveryFieldAndFails) {
  std::string out;
  EXPECT_EQ(Check("models { name: \"en-de-base\" device: \"tpu\" }\n"
                  "limits { max_text_bytes: -1 }\n"
                  "routes { source_language: \"en\" target_language: \"de\"\n"
                  "  targets { variant { name: \"no-such-model\" } weight: 1 }\n"
                  "  shadow { name: \"de-en-base\" } }\n",
                  &out),
            2)
      << out;
  EXPECT_TRUE(Contains(out, config_ + ": models[0].device: unknown device 'tpu'")) << out;
  EXPECT_TRUE(Contains(out, config_ + ": limits.max_text_bytes: must not be negative")) << out;
  EXPECT_TRUE(Contains(out, config_ + ": routes[0].targets[0].variant.name: no model "
                                      "'no-such-model' in " + repo_))
      << out;
  EXPECT_TRUE(Contains(out, config_ + ": routes[0].shadow.name: 'de-en-base' translates de-en, "
                                      "the route is en-de"))
      << out;
  EXPECT_TRUE(Contains(out, "4 problems\n")) << out;
  EXPECT_FALSE(Contains(out, config_ + ": ok")) << out;
  // A file that does not parse: its line and the unknown field.
  EXPECT_EQ(Check("listen_adress: \"0.0.0.0:1\"\n", &out), 2) << out;
  EXPECT_TRUE(Contains(out, config_ + ": line 2:")) << out;
  EXPECT_TRUE(Contains(out, "listen_adress")) << out;
}

TEST_F(CheckConfigE2E, BadModelConfigInTheRepositoryFails) {
  Write(ModelFile("en-de-alt"), "d_model: banana\n");
  fs::remove(repo_ + "/de-en-base/1/model.pt");
  std::string out;
  EXPECT_EQ(Check("", &out), 2) << out;
  EXPECT_TRUE(Contains(out, ModelFile("en-de-alt") + ": model config: line 1:")) << out;
  EXPECT_TRUE(Contains(out, ModelFile("de-en-base") + ": weights_file: no file 'model.pt' in " +
                                repo_ + "/de-en-base/1"))
      << out;
  EXPECT_TRUE(Contains(out, ModelFile("en-de-base") + ": ok\n")) << out;
  EXPECT_TRUE(Contains(out, config_ + ": ok\n")) << out;
  EXPECT_TRUE(Contains(out, "2 problems\n")) << out;
}

class ConfigReloadE2E : public ::testing::Test {
 protected:
  std::string Config(const std::string& extra) const {
    return "model_repository: \"" + repo_ + "\"\n" + extra;
  }
  static std::string Route(const std::string& target) {
    return "routes { source_language: \"en\" target_language: \"de\" targets { variant { name: "
           "\"" + target + "\" } weight: 1 } }\n";
  }
  // The variant that answers a plain en-de request (its status when it fails).
  std::string Answer(const std::string& text = "A dog.") {
    auto stub = server_.Translation();
    grpc::ClientContext c;
    v1::TranslateResponse r;
    grpc::Status s = stub->Translate(&c, Request(text), &r);
    if (!s.ok()) return "error " + std::to_string(s.error_code()) + ": " + s.error_message();
    return r.variant().name();
  }
  std::string repo_ = StandardRepository();
  ServerProcess server_;
};

TEST_F(ConfigReloadE2E, SighupAppliesRoutesLimitsAndTokenAndRefusesABadFile) {
  std::string error;
  ASSERT_TRUE(server_.Start(Config(Route("en-de-base")), {}, &error)) << error;
  for (int i = 0; i < 3; ++i) EXPECT_EQ(Answer(), "en-de-base");
  const std::string long_text = "A man in a red shirt is riding a bike.";
  EXPECT_EQ(Answer(long_text), "en-de-base");

  // New route, a tighter text limit, an admin token and a field that needs a restart.
  const std::string token = MakeTempDir("token") + "/token";
  Write(token, "reload-token\n");
  Write(server_.config_path(),
        Config(Route("en-de-alt") + "limits { max_text_bytes: 20 }\n" +
               "admin_token_file: \"" + token + "\"\nrepository_poll_seconds: 7\n" +
               "log_level: \"debug\"\n"));
  server_.Signal(SIGHUP);
  ASSERT_TRUE(WaitForLog(server_, "configuration reloaded")) << server_.Log();
  // A request line with code=OK is written at debug only.
  EXPECT_FALSE(Contains(server_.Log(), "code=OK sentences=")) << server_.Log();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(Answer(), "en-de-alt");
  EXPECT_TRUE(Contains(Answer(long_text), "error " + std::to_string(StatusCode::INVALID_ARGUMENT)))
      << Answer(long_text);
  EXPECT_TRUE(WaitForLog(server_, "code=OK sentences=")) << server_.Log();
  EXPECT_TRUE(Contains(server_.Log(), "repository_poll_seconds changed; it takes effect at the "
                                      "next start"))
      << server_.Log();
  auto models = server_.Models();
  {
    grpc::ClientContext c;
    v1::GetRoutesResponse routes;
    EXPECT_EQ(models->GetRoutes(&c, {}, &routes).error_code(), StatusCode::UNAUTHENTICATED);
    grpc::ClientContext c2;
    c2.AddMetadata("authorization", "Bearer reload-token");
    ASSERT_TRUE(models->GetRoutes(&c2, {}, &routes).ok());
    ASSERT_EQ(routes.routes_size(), 1);
    EXPECT_EQ(routes.routes(0).targets(0).variant().name(), "en-de-alt");
  }

  // A file that does not validate is refused: everything stays as it was.
  Write(server_.config_path(), Config(Route("en-de-base") + "log_level: \"loud\"\n"));
  server_.Signal(SIGHUP);
  ASSERT_TRUE(WaitForLog(server_, "configuration reload refused")) << server_.Log();
  EXPECT_TRUE(Contains(server_.Log(), "log_level")) << server_.Log();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(Answer(), "en-de-alt");
  EXPECT_TRUE(Contains(Answer(long_text), "error " + std::to_string(StatusCode::INVALID_ARGUMENT)));
  EXPECT_EQ(server_.Stop(SIGTERM), 0);
}

TEST(LogFormatE2E, JsonLogsAreOneObjectPerLine) {
  ServerProcess server;
  std::string error;
  ASSERT_TRUE(server.Start("model_repository: \"" + StandardRepository() + "\"\n",
                           {"--log-format=json", "--log_level=debug"}, &error))
      << error;
  {
    auto stub = server.Translation();
    auto req = Request("A dog.");
    req.set_request_id("json \"quoted\" id");
    grpc::ClientContext c;
    v1::TranslateResponse r;
    ASSERT_TRUE(stub->Translate(&c, req, &r).ok());
  }
  EXPECT_EQ(server.Stop(SIGTERM), 0);
  std::istringstream log(server.Log());
  std::string line;
  int lines = 0;
  bool request_seen = false;
  while (std::getline(log, line)) {
    ++lines;
    google::protobuf::Struct object;
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(line, &object).ok()) << line;
    const auto& f = object.fields();
    ASSERT_TRUE(f.count("time") && f.count("level") && f.count("message")) << line;
    EXPECT_EQ(f.at("time").string_value().size(), std::string("2026-01-01T00:00:00.000Z").size())
        << line;
    if (f.at("message").string_value() == "request" && f.count("id")) {
      request_seen = true;
      EXPECT_EQ(f.at("id").string_value(), "json \"quoted\" id") << line;
      EXPECT_EQ(f.at("method").string_value(), "Translate") << line;
      EXPECT_EQ(f.at("code").string_value(), "OK") << line;
      EXPECT_EQ(f.at("sentences").number_value(), 1) << line;
      EXPECT_EQ(f.at("level").string_value(), "DEBUG") << line;
    }
  }
  EXPECT_GT(lines, 3);
  EXPECT_TRUE(request_seen) << server.Log();
}

}  // namespace
}  // namespace mixserve
