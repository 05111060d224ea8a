// JSON files through protobuf's JSON mapping (proto/mixserve/v1/records.proto). For
// protobuf-using translation units only; Torch targets use the plain interfaces
// (config/model_metadata.h, offline/records.h).
#pragma once

#include <google/protobuf/message.h>

#include <string>
#include <vector>

#include "config/flat_record.h"

namespace mixserve {

// The message as JSON with the proto field names as keys; `pretty`: indented, one field a
// line, with a final newline; else one line without a newline. Fields without presence that
// hold their default (0, "", empty list or map) are written unless `skip_defaults`.
std::string MessageToJson(const google::protobuf::Message& message, bool pretty,
                          bool skip_defaults = false);

// Parses one JSON object into *message (cleared first). Unknown fields are errors.
// Throws std::runtime_error "<source>: <problem>".
void JsonToMessage(const std::string& text, const std::string& source,
                   google::protobuf::Message* message);

// Parses every non-empty line of a JSON-lines text as a `Message`; errors name
// "<source>:<line>".
template <typename Message>
std::vector<Message> ParseJsonLines(const std::string& text, const std::string& source) {
  std::vector<Message> out;
  std::size_t start = 0, line = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    ++line;
    const std::string row = text.substr(start, end - start);
    if (row.find_first_not_of(" \t\r") != std::string::npos) {
      out.emplace_back();
      JsonToMessage(row, source + ":" + std::to_string(line), &out.back());
    }
    start = end + 1;
  }
  return out;
}

// Sets the scalar fields of *message named in `record`: strings into string fields, numbers
// into double or int32 fields (integers only); non-finite numbers are left unset. Throws
// std::invalid_argument "<what>: ..." for a name the message lacks or a value of the wrong
// type.
void FillMessage(const FlatRecord& record, const std::string& what,
                 google::protobuf::Message* message);

// The scalar string and number fields of `message` that are set (proto3 `optional` fields
// with presence; others when not zero/empty).
FlatRecord FlattenMessage(const google::protobuf::Message& message);

// Whole files. Throw std::runtime_error naming the path.
std::string ReadTextFile(const std::string& path);
void WriteTextFile(const std::string& path, const std::string& text);

}  // namespace mixserve
