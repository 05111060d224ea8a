// ModelService: repository and routing administration. With admin_token_file configured every
// call needs "authorization: Bearer <token>"; without it only callers on the local host
// (loopback, Unix socket) are answered and the others get PERMISSION_DENIED.
#pragma once

#include <mutex>
#include <string>

#include "mixserve/v1/model_service.grpc.pb.h"
#include "server/model_repository.h"
#include "server/router.h"

namespace mixserve {

class ModelServiceImpl final : public v1::ModelService::CallbackService {
 public:
  // `token` empty: local callers only.
  ModelServiceImpl(ModelRepository* repository, Router* router, std::string token)
      : repository_(repository), router_(router), token_(std::move(token)) {}

  // A new token (configuration reloaded); "" returns to local callers only.
  void SetToken(std::string token);

  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* ctx,
                                       const v1::ListModelsRequest* request,
                                       v1::ListModelsResponse* response) override;
  grpc::ServerUnaryReactor* LoadModel(grpc::CallbackServerContext* ctx,
                                      const v1::LoadModelRequest* request,
                                      v1::LoadModelResponse* response) override;
  grpc::ServerUnaryReactor* UnloadModel(grpc::CallbackServerContext* ctx,
                                        const v1::UnloadModelRequest* request,
                                        v1::UnloadModelResponse* response) override;
  grpc::ServerUnaryReactor* GetRoutes(grpc::CallbackServerContext* ctx,
                                      const v1::GetRoutesRequest* request,
                                      v1::GetRoutesResponse* response) override;
  grpc::ServerUnaryReactor* SetRoute(grpc::CallbackServerContext* ctx,
                                     const v1::SetRouteRequest* request,
                                     v1::SetRouteResponse* response) override;

 private:
  grpc::Status Authorize(const grpc::CallbackServerContext* ctx) const;

  ModelRepository* repository_;
  Router* router_;
  mutable std::mutex token_mu_;
  std::string token_;  // guarded by token_mu_
};

}  // namespace mixserve
