// The assembled server: model repository, router, translator, gRPC services (translation,
// administration, health, reflection) and the metrics endpoint.
#pragma once

#include <grpcpp/server.h>

#include <memory>
#include <string>

#include "mixserve/v1/config.pb.h"
#include "server/metrics.h"
#include "server/model_repository.h"
#include "server/model_service.h"
#include "server/router.h"
#include "server/translation_service.h"
#include "server/translator.h"

namespace mixserve {

class Server {
 public:
  explicit Server(const v1::ServerConfig& config);
  ~Server();

  // Loads the models, starts the metrics endpoint (a failure there is logged and the server
  // goes on without metrics) and the gRPC server. Returns "" or a message naming the problem.
  std::string Start();
  // "mixserve-server listening on HOST:PORT metrics HOST:PORT" ("metrics off" /
  // "metrics unavailable" when not served).
  std::string ReadyLine() const;
  // Applies a new configuration (SIGHUP) where that needs no restart: routes (they replace
  // every route, those set through ModelService included), limits other than
  // max_message_bytes and max_concurrent_streams, log level and format, the admin token
  // (admin_token_file is read again) and drain_grace_seconds. Each other field that differs
  // is logged as waiting for a restart. Returns "" or the problem; nothing is applied then.
  std::string Reload(const v1::ServerConfig& config);
  // Health turns NOT_SERVING, new calls get UNAVAILABLE, accepted calls complete within the
  // grace period, then the server stops.
  void Drain();

  int grpc_port() const { return grpc_port_; }
  int metrics_port() const { return metrics_port_; }

 private:
  v1::ServerConfig config_;
  Metrics metrics_;
  std::unique_ptr<ModelRepository> repository_;
  std::unique_ptr<Router> router_;
  std::unique_ptr<Translator> translator_;
  std::unique_ptr<TranslationServiceImpl> translation_service_;
  std::unique_ptr<ModelServiceImpl> model_service_;
  std::unique_ptr<grpc::Server> server_;
  int grpc_port_ = 0;
  int metrics_port_ = 0;
  std::string metrics_state_;  // "", "off", "unavailable"
};

}  // namespace mixserve
