// Minimal JSON for metrics lines, results and metadata: an ordered object builder and a
// reader of one object's top-level members.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace mixserve::offline {

std::string JsonQuote(const std::string& s);
std::string JsonNumber(double v);  // finite numbers; NaN/inf as null

class JsonObject {
 public:
  JsonObject& Set(const std::string& key, const std::string& value);
  JsonObject& Set(const std::string& key, const char* value);
  JsonObject& Set(const std::string& key, double value);
  JsonObject& Set(const std::string& key, int64_t value);
  JsonObject& Set(const std::string& key, int value) { return Set(key, static_cast<int64_t>(value)); }
  JsonObject& Set(const std::string& key, bool value);
  JsonObject& Set(const std::string& key, const JsonObject& value);
  JsonObject& SetRaw(const std::string& key, const std::string& json);
  std::string Dump(int indent = -1) const;  // -1: one line
  bool empty() const { return items_.empty(); }

 private:
  std::vector<std::pair<std::string, std::string>> items_;  // key, JSON text
};

// Top-level members of a JSON object: strings unescaped, anything else as its JSON text.
// Throws std::runtime_error on malformed input.
std::map<std::string, std::string> ParseJsonObject(const std::string& text);

}  // namespace mixserve::offline
