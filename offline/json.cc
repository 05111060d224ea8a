#include "offline/json.h"

#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace mixserve::offline {

std::string JsonQuote(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

std::string JsonNumber(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.10g", v);
  return buf;
}

JsonObject& JsonObject::Set(const std::string& k, const std::string& v) { return SetRaw(k, JsonQuote(v)); }
JsonObject& JsonObject::Set(const std::string& k, const char* v) { return SetRaw(k, JsonQuote(v)); }
JsonObject& JsonObject::Set(const std::string& k, double v) { return SetRaw(k, JsonNumber(v)); }
JsonObject& JsonObject::Set(const std::string& k, int64_t v) { return SetRaw(k, std::to_string(v)); }
JsonObject& JsonObject::Set(const std::string& k, bool v) { return SetRaw(k, v ? "true" : "false"); }
JsonObject& JsonObject::Set(const std::string& k, const JsonObject& v) { return SetRaw(k, v.Dump()); }

JsonObject& JsonObject::SetRaw(const std::string& k, const std::string& json) {
  for (auto& kv : items_) {
    if (kv.first == k) {
      kv.second = json;
      return *this;
    }
  }
  items_.emplace_back(k, json);
  return *this;
}

std::string JsonObject::Dump(int indent) const {
  std::string out = "{";
  const std::string pad = indent >= 0 ? "\n" + std::string(indent, ' ') : "";
  for (size_t i = 0; i < items_.size(); ++i) {
    if (i) out += indent >= 0 ? "," : ", ";
    out += pad + JsonQuote(items_[i].first) + ": " + items_[i].second;
  }
  if (indent >= 0 && !items_.empty()) out += "\n";
  return out + "}";
}

namespace {

struct Reader {
  const std::string& s;
  size_t i = 0;
  [[noreturn]] void Fail(const std::string& what) const {
    throw std::runtime_error("malformed JSON at offset " + std::to_string(i) + ": " + what);
  }
  void Ws() {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r')) ++i;
  }
  std::string String() {
    if (i >= s.size() || s[i] != '"') Fail("expected a string");
    ++i;
    std::string out;
    while (i < s.size() && s[i] != '"') {
      char c = s[i++];
      if (c == '\\') {
        if (i >= s.size()) Fail("bad escape");
        char e = s[i++];
        switch (e) {
          case 'n': out += '\n'; break;
          case 't': out += '\t'; break;
          case 'r': out += '\r'; break;
          case 'b': out += '\b'; break;
          case 'f': out += '\f'; break;
          case 'u': {
            if (i + 4 > s.size()) Fail("bad \\u escape");
            const unsigned cp = std::stoul(s.substr(i, 4), nullptr, 16);
            i += 4;
            if (cp < 0x80) out += static_cast<char>(cp);
            else if (cp < 0x800) {
              out += static_cast<char>(0xC0 | (cp >> 6));
              out += static_cast<char>(0x80 | (cp & 0x3F));
            } else {
              out += static_cast<char>(0xE0 | (cp >> 12));
              out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
              out += static_cast<char>(0x80 | (cp & 0x3F));
            }
            break;
          }
          default: out += e;
        }
      } else {
        out += c;
      }
    }
    if (i >= s.size()) Fail("unterminated string");
    ++i;
    return out;
  }
  // Skips one value and returns its text.
  std::string Raw() {
    const size_t start = i;
    int depth = 0;
    while (i < s.size()) {
      const char c = s[i];
      if (c == '"') {
        String();
        if (depth == 0) break;
        continue;
      }
      if (c == '{' || c == '[') ++depth;
      if (c == '}' || c == ']') {
        if (depth == 0) break;
        --depth;
        ++i;
        if (depth == 0) break;
        continue;
      }
      if (depth == 0 && (c == ',' || c == ' ' || c == '\n' || c == '\r' || c == '\t')) break;
      ++i;
    }
    if (i == start) Fail("expected a value");
    return s.substr(start, i - start);
  }
};

}  // namespace

std::map<std::string, std::string> ParseJsonObject(const std::string& text) {
  Reader r{text};
  std::map<std::string, std::string> out;
  r.Ws();
  if (r.i >= text.size() || text[r.i] != '{') r.Fail("expected '{'");
  ++r.i;
  r.Ws();
  if (r.i < text.size() && text[r.i] == '}') return out;
  while (true) {
    r.Ws();
    std::string key = r.String();
    r.Ws();
    if (r.i >= text.size() || text[r.i] != ':') r.Fail("expected ':'");
    ++r.i;
    r.Ws();
    if (r.i < text.size() && text[r.i] == '"') out[key] = r.String();
    else out[key] = r.Raw();
    r.Ws();
    if (r.i < text.size() && text[r.i] == ',') {
      ++r.i;
      continue;
    }
    if (r.i < text.size() && text[r.i] == '}') break;
    r.Fail("expected ',' or '}'");
  }
  return out;
}

}  // namespace mixserve::offline
