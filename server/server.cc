#include "server/server.h"

#include <google/protobuf/util/message_differencer.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "base/build_info.h"
#include "engine/engine.h"
#include "server/log.h"

namespace mixserve {
namespace {

const char* kServices[] = {"mixserve.v1.TranslationService", "mixserve.v1.ModelService"};

bool ReadFile(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::stringstream ss;
  ss << in.rdbuf();
  *out = ss.str();
  return true;
}

std::string Host(const std::string& address) {
  auto colon = address.rfind(':');
  return colon == std::string::npos ? address : address.substr(0, colon);
}

std::string Trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

// The admin token of admin_token_file ("" when none is configured). Returns "" or the problem.
std::string ReadToken(const v1::ServerConfig& config, std::string* token) {
  token->clear();
  if (config.admin_token_file().empty()) return "";
  if (!ReadFile(config.admin_token_file(), token))
    return "cannot read admin_token_file " + config.admin_token_file();
  *token = Trim(*token);
  if (token->empty()) return "admin_token_file " + config.admin_token_file() + " is empty";
  return "";
}

bool Same(const google::protobuf::Message& a, const google::protobuf::Message& b) {
  return google::protobuf::util::MessageDifferencer::Equals(a, b);
}

}  // namespace

Server::Server(const v1::ServerConfig& config) : config_(config) {}

Server::~Server() {
  if (server_) server_->Shutdown(std::chrono::system_clock::now());
}

std::string Server::Start() {
  std::string token;
  std::string e = ReadToken(config_, &token);
  if (!e.empty()) return e;
  std::shared_ptr<grpc::ServerCredentials> creds = grpc::InsecureServerCredentials();
  if (!config_.tls().cert_file().empty()) {
    grpc::SslServerCredentialsOptions ssl;
    grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
    if (!ReadFile(config_.tls().key_file(), &pair.private_key))
      return "cannot read tls.key_file " + config_.tls().key_file();
    if (!ReadFile(config_.tls().cert_file(), &pair.cert_chain))
      return "cannot read tls.cert_file " + config_.tls().cert_file();
    ssl.pem_key_cert_pairs.push_back(pair);
    if (!config_.tls().client_ca_file().empty()) {
      if (!ReadFile(config_.tls().client_ca_file(), &ssl.pem_root_certs))
        return "cannot read tls.client_ca_file " + config_.tls().client_ca_file();
      ssl.client_certificate_request =
          GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
    }
    creds = grpc::SslServerCredentials(ssl);
  }

  metrics_.SetBuildInfo(Version(), GitCommit(), TorchVersion(), AutoDevice());
  if (config_.metrics_address() == "off") {
    metrics_state_ = "off";
  } else {
    e = metrics_.StartExposer(config_.metrics_address(), &metrics_port_);
    if (!e.empty()) {
      LOG_ERROR(e << "; serving without metrics");
      metrics_state_ = "unavailable";
    }
  }

  repository_ = std::make_unique<ModelRepository>(config_, &metrics_);
  repository_->Sync();
  repository_->StartPolling(config_.repository_poll_seconds());
  router_ = std::make_unique<Router>(
      std::vector<v1::RouteConfig>(config_.routes().begin(), config_.routes().end()));
  translator_ = std::make_unique<Translator>(config_, repository_.get(), router_.get(), &metrics_);
  translation_service_ = std::make_unique<TranslationServiceImpl>(translator_.get(), config_.limits());
  model_service_ = std::make_unique<ModelServiceImpl>(repository_.get(), router_.get(), token);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(config_.listen_address(), creds, &grpc_port_);
  builder.RegisterService(translation_service_.get());
  builder.RegisterService(model_service_.get());
  builder.SetMaxReceiveMessageSize(config_.limits().max_message_bytes());
  builder.SetMaxSendMessageSize(config_.limits().max_message_bytes());
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                             config_.limits().max_concurrent_streams());
  server_ = builder.BuildAndStart();
  if (!server_ || grpc_port_ == 0)
    return "cannot listen on " + config_.listen_address();
  auto* health = server_->GetHealthCheckService();
  health->SetServingStatus(true);
  for (const char* s : kServices) health->SetServingStatus(s, true);
  return "";
}

std::string Server::Reload(const v1::ServerConfig& next) {
  if (!server_) return "the server is not running";
  std::string token;
  std::string e = ReadToken(next, &token);
  if (!e.empty()) return e;
  LogLevel level;
  LogFormat format;
  if (!ParseLogLevel(next.log_level(), &level)) return "log_level '" + next.log_level() + "'";
  if (!ParseLogFormat(next.log_format(), &format)) return "log_format '" + next.log_format() + "'";

  // Fields fixed when the server started: reported, not applied.
  v1::LimitsConfig fixed_now, fixed_next;
  fixed_now.set_max_message_bytes(config_.limits().max_message_bytes());
  fixed_now.set_max_concurrent_streams(config_.limits().max_concurrent_streams());
  fixed_next.set_max_message_bytes(next.limits().max_message_bytes());
  fixed_next.set_max_concurrent_streams(next.limits().max_concurrent_streams());
  std::vector<std::string> restart;
  if (config_.listen_address() != next.listen_address()) restart.push_back("listen_address");
  if (config_.metrics_address() != next.metrics_address()) restart.push_back("metrics_address");
  if (config_.model_repository() != next.model_repository())
    restart.push_back("model_repository");
  if (config_.models_size() != next.models_size() ||
      !std::equal(config_.models().begin(), config_.models().end(), next.models().begin(),
                  [](const auto& a, const auto& b) { return Same(a, b); }))
    restart.push_back("models");
  if (config_.repository_poll_seconds() != next.repository_poll_seconds())
    restart.push_back("repository_poll_seconds");
  if (!Same(config_.tls(), next.tls())) restart.push_back("tls");
  if (config_.compute_threads() != next.compute_threads()) restart.push_back("compute_threads");
  if (!Same(fixed_now, fixed_next))
    restart.push_back("limits.max_message_bytes/max_concurrent_streams");
  for (const auto& field : restart)
    LOG_WARNING("configuration reload: " << field << " changed; it takes effect at the next start");

  router_->ReplaceRoutes(std::vector<v1::RouteConfig>(next.routes().begin(), next.routes().end()));
  v1::LimitsConfig limits = next.limits();
  limits.set_max_message_bytes(config_.limits().max_message_bytes());
  limits.set_max_concurrent_streams(config_.limits().max_concurrent_streams());
  translation_service_->SetLimits(limits);
  model_service_->SetToken(token);
  SetLogLevel(level);
  SetLogFormat(format);
  *config_.mutable_routes() = next.routes();
  *config_.mutable_limits() = limits;
  config_.set_admin_token_file(next.admin_token_file());
  config_.set_log_level(next.log_level());
  config_.set_log_format(next.log_format());
  config_.set_drain_grace_seconds(next.drain_grace_seconds());
  LOG_INFO("configuration reloaded routes=" << next.routes_size()
                                            << " admin=" << (token.empty() ? "local" : "token")
                                            << " log_level=" << next.log_level());
  return "";
}

std::string Server::ReadyLine() const {
  std::string line = "mixserve-server listening on " + Host(config_.listen_address()) + ":" +
                     std::to_string(grpc_port_) + " metrics ";
  if (!metrics_state_.empty()) return line + metrics_state_;
  return line + Host(config_.metrics_address()) + ":" + std::to_string(metrics_port_);
}

void Server::Drain() {
  if (!server_) return;
  auto* health = server_->GetHealthCheckService();
  health->SetServingStatus(false);
  for (const char* s : kServices) health->SetServingStatus(s, false);
  translator_->SetDraining();
  LOG_INFO("draining: " << translator_->in_flight() << " calls in flight, grace "
                        << config_.drain_grace_seconds() << " s");
  auto until = std::chrono::steady_clock::now() +
               std::chrono::seconds(config_.drain_grace_seconds());
  while (translator_->in_flight() > 0 && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  if (translator_->in_flight() > 0)
    LOG_ERROR("drain grace period over with " << translator_->in_flight()
                                              << " calls unanswered");
  // Streams still open get cancelled; everything accepted has been answered.
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(500));
  server_->Wait();
  repository_.reset();
  server_.reset();
  LOG_INFO("stopped");
}

}  // namespace mixserve
