// ModelService: repository and routing administration, guarded by a bearer token when the
// server is configured with admin_token_file.
#pragma once

#include <string>

#include "mixserve/v1/model_service.grpc.pb.h"
#include "server/model_repository.h"
#include "server/router.h"

namespace mixserve {

class ModelServiceImpl final : public v1::ModelService::CallbackService {
 public:
  // `token` empty: no authentication.
  ModelServiceImpl(ModelRepository* repository, Router* router, std::string token)
      : repository_(repository), router_(router), token_(std::move(token)) {}

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
  std::string token_;
};

}  // namespace mixserve
