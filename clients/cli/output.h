// How mixserve-cli prints translations and failures.
#pragma once

#include <google/protobuf/message.h>

#include <ostream>
#include <string>

#include "mixserve/v1/translation.pb.h"

namespace mixserve::cli {

// One line of JSON, proto field names kept.
std::string ToJson(const google::protobuf::Message& m);

// "RESOURCE_EXHAUSTED" for 8, ...; "STATUS <n>" for a code outside gRPC's.
std::string StatusCodeName(int code);

// A translation as the translate command prints it: with `json` the whole response on one
// line; with several n-best hypotheses one "text<TAB>score" line each; else the translation.
void PrintTranslation(const v1::TranslateResponse& r, bool json, std::ostream& out);

}  // namespace mixserve::cli
