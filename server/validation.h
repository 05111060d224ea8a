// Checks on request fields that need no model: text, languages, decoding options, batch
// shape. Each failure is a grpc::Status whose message names the problem.
#pragma once

#include <grpcpp/support/status.h>

#include <string>

#include "base/utf8.h"
#include "mixserve/v1/config.pb.h"
#include "mixserve/v1/translation.pb.h"

namespace mixserve {

constexpr int kMaxBeamSize = 16;
// Client strings that are echoed in answers and logs stay short.
constexpr size_t kMaxLanguageBytes = 35;   // the longest practical BCP 47 tag
constexpr size_t kMaxRequestIdBytes = 128;

// InvalidUtf8Offset (the first byte that is not part of valid UTF-8): base/utf8.h.

// `what` names the field in messages, e.g. "text" or "texts[3]".
grpc::Status CheckText(const std::string& text, const std::string& what,
                       const v1::LimitsConfig& limits);
grpc::Status CheckOptions(const v1::DecodingOptions& options);
// Languages are required unless an explicit variant is named; each is a language tag of
// letters, digits, '-' and '_' (e.g. "en", "pt-BR"), at most kMaxLanguageBytes long.
grpc::Status CheckLanguages(const std::string& source, const std::string& target,
                            const v1::VariantRef& variant);
grpc::Status CheckVariantRef(const v1::VariantRef& variant);
// At most kMaxRequestIdBytes, no control characters.
grpc::Status CheckRequestId(const std::string& request_id);
// Parses a request message from its wire bytes. gRPC itself answers a message it cannot parse
// with a bare UNIMPLEMENTED; this names the cause instead, as INVALID_ARGUMENT: the string
// field that is not valid UTF-8 (e.g. "text", "texts[2]", "variant.name") with the byte
// offset, or malformed wire data.
grpc::Status ParseRequestBytes(const std::string& bytes, google::protobuf::Message* message);

grpc::Status CheckRequest(const v1::TranslateRequest& request, const v1::LimitsConfig& limits);
grpc::Status CheckBatchRequest(const v1::TranslateBatchRequest& request,
                               const v1::LimitsConfig& limits);
// TranslateDocument: the text against limits.max_document_bytes (the sentence budget is
// checked once the text is split), and the same fields as Translate; n_best is refused.
grpc::Status CheckDocumentRequest(const v1::TranslateDocumentRequest& request,
                                  const v1::LimitsConfig& limits);

}  // namespace mixserve
