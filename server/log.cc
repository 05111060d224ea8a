#include "server/log.h"

#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <vector>

namespace mixserve {
namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
std::atomic<int> g_format{static_cast<int>(LogFormat::kText)};
std::mutex g_mu;
const char* Name(LogLevel l) {
  switch (l) {
    case LogLevel::kDebug: return "DEBUG";
    case LogLevel::kInfo: return "INFO";
    case LogLevel::kWarning: return "WARNING";
    default: return "ERROR";
  }
}

// Appends `s` as a JSON string (quotes included); bytes that are not UTF-8 become U+FFFD.
void AppendJsonString(const std::string& s, std::string* out) {
  *out += '"';
  char buf[8];
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if (c == '"' || c == '\\') {
        *out += '\\';
        *out += static_cast<char>(c);
      } else if (c == '\n') {
        *out += "\\n";
      } else if (c == '\t') {
        *out += "\\t";
      } else if (c < 0x20 || c == 0x7F) {
        std::snprintf(buf, sizeof buf, "\\u%04x", c);
        *out += buf;
      } else {
        *out += static_cast<char>(c);
      }
      ++i;
      continue;
    }
    // A UTF-8 sequence: its length from the lead byte, then continuation bytes 10xxxxxx,
    // no overlong forms, no surrogates, nothing above U+10FFFF.
    size_t n = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c <= 0xDF ? 2 : 0;
    bool valid = n > 0 && i + n <= s.size();
    for (size_t k = 1; valid && k < n; ++k)
      valid = (static_cast<unsigned char>(s[i + k]) & 0xC0) == 0x80;
    if (valid && n >= 3) {
      unsigned char c1 = static_cast<unsigned char>(s[i + 1]);
      if (c == 0xE0 && c1 < 0xA0) valid = false;  // overlong
      if (c == 0xED && c1 >= 0xA0) valid = false;  // surrogates
      if (c == 0xF0 && c1 < 0x90) valid = false;  // overlong
      if (c == 0xF4 && c1 >= 0x90) valid = false;  // above U+10FFFF
    }
    if (valid) {
      out->append(s, i, n);
      i += n;
    } else {
      *out += "\\ufffd";
      ++i;
    }
  }
  *out += '"';
}

bool IsHex(char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; }

// Undoes LogQuote: "a \"b\"\\n" -> a "b"<newline>; an unquoted value is returned as is.
std::string Unquote(const std::string& v) {
  if (v.size() < 2 || v.front() != '"' || v.back() != '"') return v;
  std::string out;
  for (size_t i = 1; i + 1 < v.size(); ++i) {
    if (v[i] != '\\' || i + 2 >= v.size()) {
      out += v[i];
      continue;
    }
    char e = v[++i];
    if (e == 'n') {
      out += '\n';
    } else if (e == 'x' && i + 2 < v.size() - 1 && IsHex(v[i + 1]) && IsHex(v[i + 2])) {
      out += static_cast<char>(std::stoi(v.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += e;
    }
  }
  return out;
}

bool IsJsonNumber(const std::string& v) {
  size_t i = v[0] == '-' ? 1 : 0;
  if (i >= v.size() || v[i] < '0' || v[i] > '9') return false;
  if (v[i] == '0' && i + 1 < v.size() && v[i + 1] != '.') return false;  // no leading zeros
  bool dot = false, digit_after_dot = true;
  for (++i; i < v.size(); ++i) {
    if (v[i] == '.' && !dot) {
      dot = true;
      digit_after_dot = false;
    } else if (v[i] >= '0' && v[i] <= '9') {
      digit_after_dot = true;
    } else {
      return false;
    }
  }
  return digit_after_dot && v.size() <= 20;
}

// "key=value" with key [A-Za-z_][A-Za-z0-9_.-]*: the position of '=', else npos.
size_t FieldEquals(const std::string& token) {
  auto eq = token.find('=');
  if (eq == std::string::npos || eq == 0) return std::string::npos;
  for (size_t i = 0; i < eq; ++i) {
    char c = token[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
              (i > 0 && ((c >= '0' && c <= '9') || c == '.' || c == '-'));
    if (!ok) return std::string::npos;
  }
  return eq;
}

struct Token {
  size_t begin;
  std::string text;
};

// Splits on spaces outside double quotes (backslash escapes inside quotes). False when a quote
// is left open: the message is then not split into fields.
bool Tokenize(const std::string& m, std::vector<Token>* tokens) {
  bool quoted = false;
  for (size_t i = 0; i < m.size(); ++i) {
    if (!quoted && m[i] == ' ') continue;
    Token t{i, ""};
    for (; i < m.size() && (quoted || m[i] != ' '); ++i) {
      if (quoted && m[i] == '\\' && i + 1 < m.size()) {
        t.text += m[i];
        t.text += m[++i];
        continue;
      }
      if (m[i] == '"') quoted = !quoted;
      t.text += m[i];
    }
    tokens->push_back(t);
  }
  return !quoted;
}

std::string JsonLine(const std::string& time, LogLevel level, const std::string& message) {
  std::vector<Token> tokens;
  size_t first_field = std::string::npos;  // index of the first token of the trailing fields
  if (Tokenize(message, &tokens)) {
    first_field = tokens.size();
    while (first_field > 0 && FieldEquals(tokens[first_field - 1].text) != std::string::npos)
      --first_field;
  }
  std::string text = message;
  if (first_field != std::string::npos && first_field < tokens.size()) {
    text = message.substr(0, tokens[first_field].begin);
    while (!text.empty() && text.back() == ' ') text.pop_back();
  } else {
    first_field = tokens.size();
  }
  std::string out = "{\"time\":";
  AppendJsonString(time, &out);
  out += ",\"level\":";
  AppendJsonString(Name(level), &out);
  out += ",\"message\":";
  AppendJsonString(text, &out);
  for (size_t k = first_field; k < tokens.size(); ++k) {
    const std::string& t = tokens[k].text;
    size_t eq = FieldEquals(t);
    std::string key = t.substr(0, eq), value = Unquote(t.substr(eq + 1));
    if (key == "time" || key == "level" || key == "message") key = "field_" + key;
    out += ',';
    AppendJsonString(key, &out);
    out += ':';
    if (!value.empty() && IsJsonNumber(value))
      out += value;
    else
      AppendJsonString(value, &out);
  }
  return out + "}";
}

}  // namespace

std::string FormatLogLine(LogFormat format, const std::string& time, LogLevel level,
                          const std::string& message) {
  if (format == LogFormat::kJson) return JsonLine(time, level, message);
  return time + " " + Name(level) + " " + message;
}

bool ParseLogFormat(const std::string& name, LogFormat* format) {
  if (name == "text") *format = LogFormat::kText;
  else if (name == "json") *format = LogFormat::kJson;
  else return false;
  return true;
}

void SetLogFormat(LogFormat format) { g_format = static_cast<int>(format); }

bool ParseLogLevel(const std::string& name, LogLevel* level) {
  if (name == "debug") *level = LogLevel::kDebug;
  else if (name == "info") *level = LogLevel::kInfo;
  else if (name == "warning") *level = LogLevel::kWarning;
  else if (name == "error") *level = LogLevel::kError;
  else return false;
  return true;
}

void SetLogLevel(LogLevel level) { g_level = static_cast<int>(level); }
bool LogEnabled(LogLevel level) { return static_cast<int>(level) >= g_level.load(); }

void LogLine(LogLevel level, const std::string& message) {
  auto now = std::chrono::system_clock::now();
  std::time_t t = std::chrono::system_clock::to_time_t(now);
  int ms = static_cast<int>(
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() %
      1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char ts[32], time[40];
  std::strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(time, sizeof time, "%s.%03dZ", ts, ms);
  std::string line =
      FormatLogLine(static_cast<LogFormat>(g_format.load()), time, level, message) + "\n";
  std::lock_guard<std::mutex> lock(g_mu);
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

std::string LogQuote(const std::string& v) {
  // Values often come from clients: control characters (newlines, carriage returns, terminal
  // escapes) are written as \xNN so that no value can forge or garble a log line.
  bool plain = !v.empty();
  for (unsigned char c : v)
    if (c <= 0x20 || c == 0x7F || c == '"' || c == '=' || c == '\\') plain = false;
  if (plain) return v;
  std::string out = "\"";
  char buf[8];
  for (unsigned char c : v) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c < 0x20 || c == 0x7F) {
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

}  // namespace mixserve
