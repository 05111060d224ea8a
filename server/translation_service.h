// TranslationService over the gRPC callback API: no thread blocks per request; the
// scheduler's completion callback finishes the call.
#pragma once

#include "mixserve/v1/translation.grpc.pb.h"
#include "server/rate_limiter.h"
#include "server/translator.h"

namespace mixserve {

class TranslationServiceImpl final : public v1::TranslationService::CallbackService {
 public:
  TranslationServiceImpl(Translator* translator, const v1::LimitsConfig& limits)
      : translator_(translator), limits_(limits), rate_(limits.rate_limit_rps()) {}

  grpc::ServerUnaryReactor* Translate(grpc::CallbackServerContext* context,
                                      const v1::TranslateRequest* request,
                                      v1::TranslateResponse* response) override;
  grpc::ServerUnaryReactor* TranslateBatch(grpc::CallbackServerContext* context,
                                           const v1::TranslateBatchRequest* request,
                                           v1::TranslateBatchResponse* response) override;
  grpc::ServerBidiReactor<v1::TranslateRequest, v1::TranslateResponse>* TranslateStream(
      grpc::CallbackServerContext* context) override;

 private:
  Translator* translator_;
  v1::LimitsConfig limits_;
  RateLimiter rate_;
};

// RESOURCE_EXHAUSTED when the client is over limits.rate_limit_rps (`cost`: sentences).
grpc::Status CheckRate(RateLimiter* rate, const grpc::CallbackServerContext* ctx, double cost);

}  // namespace mixserve
