#include "config/hf_json.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <climits>
#include <cmath>
#include <stdexcept>

#include "config/json_io.h"
#include "config/vocabulary_json.h"

namespace mixserve {

namespace gp = google::protobuf;

namespace {

HfJsonValue Convert(const gp::Value& v) {
  HfJsonValue out;
  switch (v.kind_case()) {
    case gp::Value::kNumberValue:
      out.kind = HfJsonValue::Kind::kNumber;
      out.number = v.number_value();
      break;
    case gp::Value::kStringValue:
      out.kind = HfJsonValue::Kind::kString;
      out.string = v.string_value();
      break;
    case gp::Value::kBoolValue:
      out.kind = HfJsonValue::Kind::kBool;
      out.boolean = v.bool_value();
      break;
    case gp::Value::kListValue:
      out.kind = HfJsonValue::Kind::kList;
      for (const auto& e : v.list_value().values()) out.list.push_back(Convert(e));
      break;
    case gp::Value::kStructValue:
      out.kind = HfJsonValue::Kind::kObject;
      for (const auto& [k, e] : v.struct_value().fields()) out.object[k] = Convert(e);
      break;
    default:
      break;  // null
  }
  return out;
}

const char* KindName(HfJsonValue::Kind k) {
  switch (k) {
    case HfJsonValue::Kind::kNull: return "null";
    case HfJsonValue::Kind::kNumber: return "a number";
    case HfJsonValue::Kind::kString: return "a string";
    case HfJsonValue::Kind::kBool: return "a boolean";
    case HfJsonValue::Kind::kList: return "a list";
    case HfJsonValue::Kind::kObject: return "an object";
  }
  return "?";
}

bool IsInt(double x) { return std::floor(x) == x && x >= INT_MIN && x <= INT_MAX; }

}  // namespace

bool HfJsonObject::Has(const std::string& name) const {
  auto it = fields_.find(name);
  return it != fields_.end() && it->second.kind != HfJsonValue::Kind::kNull;
}

const HfJsonValue& HfJsonObject::Get(const std::string& name, HfJsonValue::Kind kind,
                                     const char* expected) const {
  auto it = fields_.find(name);
  if (it == fields_.end() || it->second.kind == HfJsonValue::Kind::kNull)
    throw std::runtime_error(source_ + ": field '" + name + "' is missing");
  if (it->second.kind != kind)
    throw std::runtime_error(source_ + ": field '" + name + "' must be " + expected + ", not " +
                             KindName(it->second.kind));
  return it->second;
}

std::string HfJsonObject::String(const std::string& name) const {
  return Get(name, HfJsonValue::Kind::kString, "a string").string;
}
std::string HfJsonObject::String(const std::string& name, const std::string& fallback) const {
  return Has(name) ? String(name) : fallback;
}

int HfJsonObject::Int(const std::string& name) const {
  const double x = Get(name, HfJsonValue::Kind::kNumber, "an integer").number;
  if (!IsInt(x))
    throw std::runtime_error(source_ + ": field '" + name + "' must be an integer, not " +
                             std::to_string(x));
  return static_cast<int>(x);
}
int HfJsonObject::Int(const std::string& name, int fallback) const {
  return Has(name) ? Int(name) : fallback;
}

double HfJsonObject::Number(const std::string& name) const {
  return Get(name, HfJsonValue::Kind::kNumber, "a number").number;
}
double HfJsonObject::Number(const std::string& name, double fallback) const {
  return Has(name) ? Number(name) : fallback;
}

bool HfJsonObject::Bool(const std::string& name) const {
  return Get(name, HfJsonValue::Kind::kBool, "true or false").boolean;
}
bool HfJsonObject::Bool(const std::string& name, bool fallback) const {
  return Has(name) ? Bool(name) : fallback;
}

std::vector<std::vector<int>> HfJsonObject::IntLists(const std::string& name) const {
  std::vector<std::vector<int>> out;
  if (!Has(name)) return out;
  const char* expected = "a list of lists of integers";
  for (const auto& row : Get(name, HfJsonValue::Kind::kList, expected).list) {
    if (row.kind != HfJsonValue::Kind::kList)
      throw std::runtime_error(source_ + ": field '" + name + "' must be " + expected);
    out.emplace_back();
    for (const auto& x : row.list) {
      if (x.kind != HfJsonValue::Kind::kNumber || !IsInt(x.number))
        throw std::runtime_error(source_ + ": field '" + name + "' must be " + expected);
      out.back().push_back(static_cast<int>(x.number));
    }
  }
  return out;
}

namespace {

gp::Struct ParseStruct(const std::string& text, const std::string& source) {
  gp::Struct s;
  const auto status = gp::util::JsonStringToMessage(text, &s);
  if (!status.ok())
    throw std::runtime_error(source + ": not a JSON object: " + std::string(status.message()));
  return s;
}

}  // namespace

HfJsonObject ParseHfJsonObject(const std::string& text, const std::string& source) {
  const gp::Struct s = ParseStruct(text, source);
  std::map<std::string, HfJsonValue> fields;
  for (const auto& [k, v] : s.fields()) fields[k] = Convert(v);
  return HfJsonObject(source, std::move(fields));
}

HfJsonObject ReadHfJsonObject(const std::string& path) {
  return ParseHfJsonObject(ReadTextFile(path), path);
}

HfVocabularySummary ReadHfVocabularySummary(const std::string& path,
                                            const std::vector<std::string>& pieces) {
  std::vector<std::string> by_id;  // the one reader of vocab.json (config/vocabulary_json.h)
  std::string error;
  if (!ReadVocabularyJson(path, &by_id, &error)) throw std::runtime_error(error);
  HfVocabularySummary out;
  out.entries = by_id.size();
  for (const auto& p : pieces) out.ids[p] = -1;
  for (size_t id = 0; id < by_id.size(); ++id)
    if (out.ids.count(by_id[id])) out.ids[by_id[id]] = static_cast<int>(id);
  return out;
}

}  // namespace mixserve
