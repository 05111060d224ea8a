// mixserve-server: the gRPC translation server. Flags override server.pbtxt fields.
#include <absl/flags/flag.h>
#include <absl/flags/parse.h>
#include <absl/flags/usage.h>

#include <csignal>
#include <cstdio>
#include <iostream>
#include <string>

#include "config/server_config.h"
#include "server/log.h"
#include "server/server.h"

ABSL_FLAG(std::string, config, "", "server.pbtxt (text-format mixserve.v1.ServerConfig)");
ABSL_FLAG(std::string, listen, "", "gRPC address host:port (port 0: any free port)");
ABSL_FLAG(std::string, metrics, "", "metrics address host:port, or \"off\"");
ABSL_FLAG(std::string, models, "", "model repository directory");
ABSL_FLAG(std::string, log_level, "", "debug, info, warning or error");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("mixserve-server --config server.pbtxt [--listen host:port] "
                               "[--metrics host:port|off] [--models dir] [--log_level level]");
  absl::ParseCommandLine(argc, argv);

  // SIGTERM/SIGINT are taken by sigwait below; block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  mixserve::v1::ServerConfig config;
  std::string error;
  std::string path = absl::GetFlag(FLAGS_config);
  if (!path.empty() && !mixserve::ReadServerConfig(path, &config, &error)) {
    std::cerr << "mixserve-server: " << error << "\n";
    return 2;
  }
  if (!absl::GetFlag(FLAGS_listen).empty()) config.set_listen_address(absl::GetFlag(FLAGS_listen));
  if (!absl::GetFlag(FLAGS_metrics).empty())
    config.set_metrics_address(absl::GetFlag(FLAGS_metrics));
  if (!absl::GetFlag(FLAGS_models).empty())
    config.set_model_repository(absl::GetFlag(FLAGS_models));
  if (!absl::GetFlag(FLAGS_log_level).empty()) config.set_log_level(absl::GetFlag(FLAGS_log_level));
  mixserve::ApplyServerDefaults(&config);
  error = mixserve::ValidateServerConfig(config);
  if (!error.empty()) {
    std::cerr << "mixserve-server: " << error << "\n";
    return 2;
  }
  mixserve::LogLevel level;
  mixserve::ParseLogLevel(config.log_level(), &level);
  mixserve::SetLogLevel(level);

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
  sigwait(&signals, &sig);
  LOG_INFO("signal " << sig << " received");
  server.Drain();
  return 0;
}
