// TranslationService over the gRPC callback API: no thread blocks per request; the
// scheduler's completion callback finishes the call.
//
// The methods are registered raw (request and response as bytes) and messages are parsed
// here: gRPC answers a request it cannot parse itself (e.g. a string field that is not valid
// UTF-8, which proto3 refuses) with a bare UNIMPLEMENTED, and in a stream it ends the reads
// silently. Parsed here, such a request gets INVALID_ARGUMENT naming the field
// (ParseRequestBytes), and a stream answers that message and goes on.
#pragma once

#include <grpcpp/support/byte_buffer.h>

#include "mixserve/v1/translation.grpc.pb.h"
#include "server/live_limits.h"
#include "server/rate_limiter.h"
#include "server/translator.h"

namespace mixserve {

using TranslationServiceBase = v1::TranslationService::WithRawCallbackMethod_Translate<
    v1::TranslationService::WithRawCallbackMethod_TranslateBatch<
        v1::TranslationService::WithRawCallbackMethod_TranslateStream<
            v1::TranslationService::WithRawCallbackMethod_TranslateDocument<
                v1::TranslationService::Service>>>>;

class TranslationServiceImpl final : public TranslationServiceBase {
 public:
  TranslationServiceImpl(Translator* translator, const v1::LimitsConfig& limits)
      : translator_(translator), limits_(limits), rate_(limits.rate_limit_rps()) {}

  // New limits for calls that start from now on (configuration reload); open streams keep
  // the limits they started with.
  void SetLimits(const v1::LimitsConfig& limits) {
    limits_.Set(limits);
    rate_.SetRate(limits.rate_limit_rps());
  }

  // Request: a serialized TranslateRequest; response: a serialized TranslateResponse.
  grpc::ServerUnaryReactor* Translate(grpc::CallbackServerContext* context,
                                      const grpc::ByteBuffer* request,
                                      grpc::ByteBuffer* response) override;
  // TranslateBatchRequest in, TranslateBatchResponse out.
  grpc::ServerUnaryReactor* TranslateBatch(grpc::CallbackServerContext* context,
                                           const grpc::ByteBuffer* request,
                                           grpc::ByteBuffer* response) override;
  // TranslateRequest messages in, TranslateResponse messages out. The next message is read
  // only once the last one is queued on its variant: a full queue holds the stream (gRPC's
  // flow control then holds the client) instead of failing its requests.
  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* TranslateStream(
      grpc::CallbackServerContext* context) override;
  // TranslateDocumentRequest in, TranslateDocumentResponse out: the text is split into
  // sentences (text/sentences.h), which are translated as one call that waits for room in
  // the variant's queue, and put back together.
  grpc::ServerUnaryReactor* TranslateDocument(grpc::CallbackServerContext* context,
                                              const grpc::ByteBuffer* request,
                                              grpc::ByteBuffer* response) override;

 private:
  Translator* translator_;
  LiveLimits limits_;
  RateLimiter rate_;
};

// RESOURCE_EXHAUSTED when the client is over limits.rate_limit_rps (`cost`: sentences).
grpc::Status CheckRate(RateLimiter* rate, const grpc::CallbackServerContext* ctx, double cost);

}  // namespace mixserve
