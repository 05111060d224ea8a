// mixserve-server: the gRPC translation server. Flags override server.pbtxt fields.
#include <absl/flags/flag.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>

#include "base/build_info.h"
#include "base/flags.h"
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

// The command line: the flags above, through the parser every mixserve binary shares
// (base/flags.h: '-' or '_' in names, Abseil's error lines, exit status 2 on usage errors).
const mixserve::flags::Program& ServerProgram() {
  static const mixserve::flags::Program kProgram = [] {
    mixserve::flags::Program p;
    p.name = "mixserve-server";
    p.usage =
        "usage: mixserve-server --config=server.pbtxt [flags]\n"
        "The gRPC translation server (docs/server.md). Flags override server.pbtxt fields.\n"
        "Exit status: 0 after a drain, 1 when start-up fails, 2 on usage and configuration "
        "errors.\n";
    p.flags = {"config", "listen", "metrics", "models", "log_level", "log_format", "check_config"};
    p.separator = '-';
    p.version_details = "LibTorch " + mixserve::TorchVersion() + "\n";
    return p;
  }();
  return kProgram;
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
  mixserve::flags::Invocation invocation;
  const int status = mixserve::flags::Parse(ServerProgram(), argc, argv, &invocation);
  if (status >= 0) return status;

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
