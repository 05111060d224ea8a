#include "config/safetensors_header.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace mixserve {

namespace gp = google::protobuf;

namespace {

// Integers up to 2^53 are exact in JSON's doubles (Struct numbers): far beyond any file.
constexpr double kMaxExact = 9007199254740992.0;

bool NonNegativeInt(const gp::Value& v) {
  return v.kind_case() == gp::Value::kNumberValue && v.number_value() >= 0 &&
         v.number_value() <= kMaxExact && std::floor(v.number_value()) == v.number_value();
}

}  // namespace

SafetensorsHeader ParseSafetensorsHeader(const std::string& json, const std::string& source) {
  gp::Struct s;
  const auto status = gp::util::JsonStringToMessage(json, &s);
  if (!status.ok())
    throw std::runtime_error(source + ": the safetensors header is not a JSON object: " +
                             std::string(status.message()));
  SafetensorsHeader out;
  for (const auto& [name, v] : s.fields()) {
    if (name == "__metadata__") {
      if (v.kind_case() != gp::Value::kStructValue)
        throw std::runtime_error(source + ": __metadata__ must be an object of strings");
      for (const auto& [k, m] : v.struct_value().fields()) {
        if (m.kind_case() != gp::Value::kStringValue)
          throw std::runtime_error(source + ": __metadata__ '" + k + "' must be a string");
        out.metadata[k] = m.string_value();
      }
      continue;
    }
    const std::string what = source + ": tensor '" + name + "'";
    if (v.kind_case() != gp::Value::kStructValue)
      throw std::runtime_error(what + ": the header entry must be an object");
    const auto& f = v.struct_value().fields();
    for (const auto& [k, unused] : f)
      if (k != "dtype" && k != "shape" && k != "data_offsets")
        throw std::runtime_error(what + ": unknown key '" + k +
                                 "' (dtype, shape, data_offsets)");
    SafetensorsEntry e;
    e.name = name;
    auto dtype = f.find("dtype");
    if (dtype == f.end() || dtype->second.kind_case() != gp::Value::kStringValue)
      throw std::runtime_error(what + ": 'dtype' must be a string");
    e.dtype = dtype->second.string_value();
    auto shape = f.find("shape");
    if (shape == f.end() || shape->second.kind_case() != gp::Value::kListValue)
      throw std::runtime_error(what + ": 'shape' must be a list of sizes");
    for (const auto& d : shape->second.list_value().values()) {
      if (!NonNegativeInt(d))
        throw std::runtime_error(what + ": 'shape' must be a list of non-negative integers");
      e.shape.push_back(static_cast<int64_t>(d.number_value()));
    }
    auto offsets = f.find("data_offsets");
    if (offsets == f.end() || offsets->second.kind_case() != gp::Value::kListValue ||
        offsets->second.list_value().values_size() != 2 ||
        !NonNegativeInt(offsets->second.list_value().values(0)) ||
        !NonNegativeInt(offsets->second.list_value().values(1)))
      throw std::runtime_error(what + ": 'data_offsets' must be two non-negative integers");
    e.begin = static_cast<uint64_t>(offsets->second.list_value().values(0).number_value());
    e.end = static_cast<uint64_t>(offsets->second.list_value().values(1).number_value());
    if (e.end < e.begin)
      throw std::runtime_error(what + ": data_offsets [" + std::to_string(e.begin) + ", " +
                               std::to_string(e.end) + "] end before they begin");
    out.tensors.push_back(std::move(e));
  }
  std::sort(out.tensors.begin(), out.tensors.end(),
            [](const SafetensorsEntry& a, const SafetensorsEntry& b) {
              return a.begin != b.begin ? a.begin < b.begin : a.name < b.name;
            });
  return out;
}

std::string FormatSafetensorsHeader(const SafetensorsHeader& header) {
  gp::Struct s;
  if (!header.metadata.empty()) {
    auto* m = (*s.mutable_fields())["__metadata__"].mutable_struct_value();
    for (const auto& [k, v] : header.metadata) (*m->mutable_fields())[k].set_string_value(v);
  }
  for (const auto& e : header.tensors) {
    auto* t = (*s.mutable_fields())[e.name].mutable_struct_value()->mutable_fields();
    (*t)["dtype"].set_string_value(e.dtype);
    auto* shape = (*t)["shape"].mutable_list_value();
    for (int64_t d : e.shape) shape->add_values()->set_number_value(static_cast<double>(d));
    auto* off = (*t)["data_offsets"].mutable_list_value();
    off->add_values()->set_number_value(static_cast<double>(e.begin));
    off->add_values()->set_number_value(static_cast<double>(e.end));
  }
  std::string out;
  const auto status = gp::util::MessageToJsonString(s, &out);
  if (!status.ok())
    throw std::runtime_error("cannot write a safetensors header: " +
                             std::string(status.message()));
  return out;
}

}  // namespace mixserve
