// mixserve-server: the gRPC translation server. Flags override server.pbtxt fields.
#include <absl/flags/flag.h>
#include <absl/flags/parse.h>
#include <absl/flags/usage.h>
#include <absl/flags/usage_config.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>

#include "base/build_info.h"
#include "config/server_config.h"
#include "engine/engine.h"
#include "server/config_check.h"
#include "server/log.h"
#include "server/server.h"

ABSL_FLAG(std::string, config, "", "server.pbtxt (text-format mixserve.v1.ServerConfig)");
ABSL_FLAG(std::string, listen, "", "gRPC address host:port (port 0: any free port)");
ABSL_FLAG(std::string, metrics, "", "metrics address host:port, or \"off\"");
ABSL_FLAG(std::string, models, "", "model repository directory");
ABSL_FLAG(std::string, log_level, "", "debug, info, warning or error");
ABSL_FLAG(std::string, log_format, "", "text (default) or json: one JSON object per line");
ABSL_FLAG(bool, check_config, false,
          "check the configuration and every model.pbtxt of the repository without loading "
          "anything, print each problem, exit (0: ok, 2: problems)");

namespace {

// Flags may be spelt with '-' or '_' (--check-config, --log-level): Abseil knows the names
// with '_' only, so the names (not the values) are rewritten before parsing.
void AcceptDashedFlagNames(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    char* a = argv[i];
    if (std::strcmp(a, "--") == 0) return;
    if (a[0] != '-') continue;
    char* name = a + (a[1] == '-' ? 2 : 1);
    for (char* c = name; *c && *c != '='; ++c)
      if (*c == '-' && c != name) *c = '_';
  }
}

// The command line's overrides of server.pbtxt fields.
void ApplyFlags(mixserve::v1::ServerConfig* config) {
  if (!absl::GetFlag(FLAGS_listen).empty()) config->set_listen_address(absl::GetFlag(FLAGS_listen));
  if (!absl::GetFlag(FLAGS_metrics).empty())
    config->set_metrics_address(absl::GetFlag(FLAGS_metrics));
  if (!absl::GetFlag(FLAGS_models).empty())
    config->set_model_repository(absl::GetFlag(FLAGS_models));
  if (!absl::GetFlag(FLAGS_log_level).empty())
    config->set_log_level(absl::GetFlag(FLAGS_log_level));
  if (!absl::GetFlag(FLAGS_log_format).empty())
    config->set_log_format(absl::GetFlag(FLAGS_log_format));
}

// --config (when given) with the flags and the defaults applied, validated. Returns "" or
// the problem.
std::string LoadConfig(mixserve::v1::ServerConfig* config) {
  std::string error;
  const std::string path = absl::GetFlag(FLAGS_config);
  if (!path.empty() && !mixserve::ReadServerConfig(path, config, &error)) return error;
  ApplyFlags(config);
  mixserve::ApplyServerDefaults(config);
  return mixserve::ValidateServerConfig(*config);
}

void ApplyLogSettings(const mixserve::v1::ServerConfig& config) {
  mixserve::LogLevel level;
  mixserve::LogFormat format;
  if (mixserve::ParseLogLevel(config.log_level(), &level)) mixserve::SetLogLevel(level);
  if (mixserve::ParseLogFormat(config.log_format(), &format)) mixserve::SetLogFormat(format);
}

// SIGHUP: --config is read again; a configuration that does not parse or validate is
// refused and the running one stays.
void Reload(mixserve::Server* server) {
  const std::string path = absl::GetFlag(FLAGS_config);
  if (path.empty()) {
    LOG_WARNING("SIGHUP: the server was started without --config; nothing to reload");
    return;
  }
  LOG_INFO("SIGHUP: reading " << path);
  mixserve::v1::ServerConfig next;
  std::string error = LoadConfig(&next);
  if (error.empty()) error = server->Reload(next);
  if (!error.empty())
    LOG_ERROR("configuration reload refused, the running configuration stays: " << error);
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "mixserve-server --config server.pbtxt [--listen host:port] [--metrics host:port|off] "
      "[--models dir] [--log_level level] [--log_format text|json] [--check-config] "
      "[--version]");
  absl::FlagsUsageConfig usage;
  usage.version_string = [] {
    return mixserve::VersionLine("mixserve-server") + "\nLibTorch " + mixserve::TorchVersion() +
           "\n";
  };
  absl::SetFlagsUsageConfig(usage);
  AcceptDashedFlagNames(argc, argv);
  absl::ParseCommandLine(argc, argv);

  if (absl::GetFlag(FLAGS_check_config)) {
    int problems = mixserve::CheckConfig(absl::GetFlag(FLAGS_config), ApplyFlags, std::cout);
    return problems == 0 ? 0 : 2;
  }

  // SIGTERM/SIGINT (drain) and SIGHUP (reload) are taken by sigwait below; block them before
  // any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  mixserve::v1::ServerConfig config;
  std::string error = LoadConfig(&config);
  if (!error.empty()) {
    std::cerr << "mixserve-server: " << error << "\n";
    return 2;
  }
  ApplyLogSettings(config);

  mixserve::Server server(config);
  error = server.Start();
  if (!error.empty()) {
    LOG_ERROR("start-up failed: " << error);
    return 1;
  }
  std::printf("%s\n", server.ReadyLine().c_str());
  std::fflush(stdout);
  LOG_INFO(server.ReadyLine());

  int sig = 0;
  for (;;) {
    sigwait(&signals, &sig);
    if (sig != SIGHUP) break;
    Reload(&server);
  }
  LOG_INFO("signal " << sig << " received");
  server.Drain();
  return 0;
}
