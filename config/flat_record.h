// A record of named strings and numbers: the plain C++ face of the JSON files whose schema is
// a protobuf message with scalar fields (proto/mixserve/v1/records.proto), for code that may
// not include protobuf headers (Torch targets, docs/build.md).
#pragma once

#include <map>
#include <string>

namespace mixserve {

struct FlatRecord {
  std::map<std::string, std::string> strings;  // string fields, by field name
  std::map<std::string, double> numbers;       // number fields (double or integer), by name
};

}  // namespace mixserve
