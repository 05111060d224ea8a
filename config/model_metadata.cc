#include "config/model_metadata.h"

#include "config/json_io.h"
#include "mixserve/v1/records.pb.h"

namespace mixserve {

std::string FormatModelMetadata(const FlatRecord& metadata) {
  v1::ModelMetadata m;
  FillMessage(metadata, "metadata.json", &m);
  return MessageToJson(m, true);
}

void WriteModelMetadata(const std::string& path, const FlatRecord& metadata) {
  v1::ModelMetadata m;
  FillMessage(metadata, path, &m);
  WriteTextFile(path, MessageToJson(m, true));
}

FlatRecord ParseModelMetadata(const std::string& text, const std::string& source) {
  v1::ModelMetadata m;
  JsonToMessage(text, source, &m);
  return FlattenMessage(m);
}

FlatRecord ReadModelMetadata(const std::string& path) {
  return ParseModelMetadata(ReadTextFile(path), path);
}

}  // namespace mixserve
