#include "server/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

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

}  // namespace

Server::Server(const v1::ServerConfig& config) : config_(config) {}

Server::~Server() {
  if (server_) server_->Shutdown(std::chrono::system_clock::now());
}

std::string Server::Start() {
  std::string token;
  if (!config_.admin_token_file().empty()) {
    if (!ReadFile(config_.admin_token_file(), &token))
      return "cannot read admin_token_file " + config_.admin_token_file();
    token = Trim(token);
    if (token.empty()) return "admin_token_file " + config_.admin_token_file() + " is empty";
  }
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

  if (config_.metrics_address() == "off") {
    metrics_state_ = "off";
  } else {
    std::string e = metrics_.StartExposer(config_.metrics_address(), &metrics_port_);
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
