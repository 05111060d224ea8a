#include "config/vocabulary_json.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "config/json_io.h"

namespace mixserve {

namespace gp = google::protobuf;

namespace {

// JSON numbers print without a trailing ".0" where they are whole.
std::string NumberText(double v) {
  std::string s = std::to_string(v);
  if (s.find('.') != std::string::npos) {
    while (s.back() == '0') s.pop_back();
    if (s.back() == '.') s.pop_back();
  }
  return s;
}

const char* KindName(const gp::Value& v) {
  switch (v.kind_case()) {
    case gp::Value::kNullValue: return "null";
    case gp::Value::kNumberValue: return "a number";
    case gp::Value::kStringValue: return "a string";
    case gp::Value::kBoolValue: return "a boolean";
    case gp::Value::kStructValue: return "an object";
    case gp::Value::kListValue: return "a list";
    default: return "nothing";
  }
}

}  // namespace

bool ReadVocabularyJson(const std::string& path, std::vector<std::string>* pieces,
                        std::string* error) {
  pieces->clear();
  auto fail = [&](const std::string& why) {
    *error = path + ": " + why;
    pieces->clear();
    return false;
  };
  std::string text;
  try {
    text = ReadTextFile(path);
  } catch (const std::exception& e) {
    *error = e.what();
    return false;
  }
  if (text.find_first_not_of(" \t\r\n") == std::string::npos)
    return fail("empty file (expected a JSON object of piece -> id)");
  gp::Struct vocab;
  const auto status = gp::util::JsonStringToMessage(text, &vocab);
  if (!status.ok())
    return fail("not a JSON object of piece -> id: " + std::string(status.message()));
  const auto& fields = vocab.fields();
  const size_t n = fields.size();
  if (n == 0) return fail("the vocabulary is empty");
  if (n > static_cast<size_t>(std::numeric_limits<int>::max()))
    return fail("too many pieces (" + std::to_string(n) + ")");
  // The map's order is unspecified: check the pieces in sorted order, so that the same file
  // always gives the same message.
  std::vector<std::pair<double, const std::string*>> entries;
  entries.reserve(n);
  std::vector<const std::string*> names;
  names.reserve(n);
  for (const auto& field : fields) names.push_back(&field.first);
  std::sort(names.begin(), names.end(),
            [](const std::string* a, const std::string* b) { return *a < *b; });
  for (const std::string* piece : names) {
    const gp::Value& value = fields.at(*piece);
    if (value.kind_case() != gp::Value::kNumberValue)
      return fail("piece '" + *piece + "' has " + KindName(value) + " as its id, not an integer");
    const double id = value.number_value();
    if (!std::isfinite(id) || id != std::floor(id))
      return fail("piece '" + *piece + "' has id " + NumberText(id) + ", not an integer");
    if (id < 0) return fail("piece '" + *piece + "' has a negative id " + NumberText(id));
    entries.emplace_back(id, piece);
  }
  std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first < b.first : *a.second < *b.second;
  });
  for (size_t i = 1; i < n; ++i) {
    if (entries[i].first == entries[i - 1].first)
      return fail("pieces '" + *entries[i - 1].second + "' and '" + *entries[i].second +
                  "' have the same id " + NumberText(entries[i].first));
  }
  // Distinct ids, sorted: the first one that differs from its position is after a gap.
  for (size_t i = 0; i < n; ++i) {
    if (entries[i].first != static_cast<double>(i))
      return fail("no piece has id " + std::to_string(i) + " (the " + std::to_string(n) +
                  " pieces need ids 0.." + std::to_string(n - 1) + "; piece '" +
                  *entries.back().second + "' has id " + NumberText(entries.back().first) + ")");
  }
  pieces->reserve(n);
  for (const auto& entry : entries) pieces->push_back(*entry.second);
  return true;
}

}  // namespace mixserve
