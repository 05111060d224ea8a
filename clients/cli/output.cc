#include "clients/cli/output.h"

#include <google/protobuf/util/json_util.h>

namespace mixserve::cli {

std::string ToJson(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions o;
  o.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(m, &out, o);
  return out;
}

std::string StatusCodeName(int code) {
  static const char* kNames[] = {"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT",
                                 "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
                                 "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
                                 "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
                                 "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
                                 "UNAUTHENTICATED"};
  if (code >= 0 && code <= 16) return kNames[code];
  return "STATUS " + std::to_string(code);
}

void PrintTranslation(const v1::TranslateResponse& r, bool json, std::ostream& out) {
  if (json) {
    out << ToJson(r) << "\n";
  } else if (r.n_best_size() > 1) {
    for (const auto& h : r.n_best()) out << h.text() << "\t" << h.score() << "\n";
  } else {
    out << r.translation() << "\n";
  }
}

}  // namespace mixserve::cli
