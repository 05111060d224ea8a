#include "server/model_service.h"

#include <thread>

#include "config/server_config.h"
#include "server/log.h"
#include "server/peer.h"

namespace mixserve {

void ModelServiceImpl::SetToken(std::string token) {
  std::lock_guard<std::mutex> lock(token_mu_);
  token_ = std::move(token);
}

grpc::Status ModelServiceImpl::Authorize(const grpc::CallbackServerContext* ctx) const {
  std::string token;
  {
    std::lock_guard<std::mutex> lock(token_mu_);
    token = token_;
  }
  if (token.empty()) {
    // No token configured: administration stays on this host (fail closed).
    if (IsLocalPeer(ctx->peer())) return grpc::Status::OK;
    LOG_WARNING("admin call refused reason=not-local peer=" << LogQuote(ctx->peer()));
    return {grpc::StatusCode::PERMISSION_DENIED,
            "ModelService answers only callers on the server's own host when no admin token "
            "is configured; to administer it over the network set admin_token_file in "
            "server.pbtxt and send authorization: Bearer <token> (docs/server.md, "
            "Administration access)"};
  }
  const auto& md = ctx->client_metadata();
  auto it = md.find("authorization");
  // Refusals are logged with the caller's address; the presented credential never is.
  if (it == md.end()) {
    LOG_WARNING("admin call refused reason=no-token peer=" << LogQuote(ctx->peer()));
    return {grpc::StatusCode::UNAUTHENTICATED, "ModelService needs authorization: Bearer <token>"};
  }
  std::string value(it->second.data(), it->second.size());
  std::string expected = "Bearer " + token;
  // Constant-time comparison: the token must not leak through timing.
  unsigned diff = value.size() != expected.size();
  for (size_t i = 0; i < value.size() && i < expected.size(); ++i)
    diff |= static_cast<unsigned char>(value[i]) ^ static_cast<unsigned char>(expected[i]);
  if (diff) {
    LOG_WARNING("admin call refused reason=wrong-token peer=" << LogQuote(ctx->peer()));
    return {grpc::StatusCode::UNAUTHENTICATED, "wrong admin token"};
  }
  return grpc::Status::OK;
}

grpc::ServerUnaryReactor* ModelServiceImpl::ListModels(grpc::CallbackServerContext* ctx,
                                                       const v1::ListModelsRequest* request,
                                                       v1::ListModelsResponse* response) {
  auto* reactor = ctx->DefaultReactor();
  grpc::Status s = Authorize(ctx);
  if (s.ok()) *response = repository_->List(request->name());
  reactor->Finish(s);
  return reactor;
}

grpc::ServerUnaryReactor* ModelServiceImpl::LoadModel(grpc::CallbackServerContext* ctx,
                                                      const v1::LoadModelRequest* request,
                                                      v1::LoadModelResponse* response) {
  auto* reactor = ctx->DefaultReactor();
  grpc::Status s = Authorize(ctx);
  if (!s.ok()) {
    reactor->Finish(s);
    return reactor;
  }
  // Loading takes a while: do it off the gRPC callback threads.
  std::string name = request->name();
  int64_t version = request->version();
  std::thread([this, reactor, response, name, version] {
    grpc::Status st = repository_->Load(name, version, response->mutable_status());
    LOG_INFO("admin LoadModel model=" << LogQuote(name) << " version=" << version
                                      << " code=" << static_cast<int>(st.error_code()));
    reactor->Finish(st);
  }).detach();
  return reactor;
}

grpc::ServerUnaryReactor* ModelServiceImpl::UnloadModel(grpc::CallbackServerContext* ctx,
                                                        const v1::UnloadModelRequest* request,
                                                        v1::UnloadModelResponse* /*response*/) {
  auto* reactor = ctx->DefaultReactor();
  grpc::Status s = Authorize(ctx);
  if (s.ok()) {
    s = repository_->Unload(request->name(), request->version());
    LOG_INFO("admin UnloadModel model=" << LogQuote(request->name()) << " version=" << request->version()
                                        << " code=" << static_cast<int>(s.error_code()));
  }
  reactor->Finish(s);
  return reactor;
}

grpc::ServerUnaryReactor* ModelServiceImpl::GetRoutes(grpc::CallbackServerContext* ctx,
                                                      const v1::GetRoutesRequest* /*request*/,
                                                      v1::GetRoutesResponse* response) {
  auto* reactor = ctx->DefaultReactor();
  grpc::Status s = Authorize(ctx);
  if (s.ok())
    for (const auto& r : router_->Routes()) *response->add_routes() = r;
  reactor->Finish(s);
  return reactor;
}

grpc::ServerUnaryReactor* ModelServiceImpl::SetRoute(grpc::CallbackServerContext* ctx,
                                                     const v1::SetRouteRequest* request,
                                                     v1::SetRouteResponse* response) {
  auto* reactor = ctx->DefaultReactor();
  grpc::Status s = Authorize(ctx);
  if (s.ok()) {
    std::string e = ValidateRoute(request->route());
    if (!e.empty()) {
      s = {grpc::StatusCode::INVALID_ARGUMENT, e};
    } else {
      router_->SetRoute(request->route());
      *response->mutable_route() = request->route();
      if (response->route().has_shadow() && response->route().shadow_fraction() == 0)
        response->mutable_route()->set_shadow_fraction(1.0);
      LOG_INFO("admin SetRoute pair=" << request->route().source_language() << "-"
                                      << request->route().target_language()
                                      << " targets=" << request->route().targets_size());
    }
  }
  reactor->Finish(s);
  return reactor;
}

}  // namespace mixserve
