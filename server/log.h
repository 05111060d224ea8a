// Minimal structured logging to stderr, one line per event: text,
//   <UTC time> <LEVEL> <message> key=value ...
// or JSON (one object per line), with the key=value fields as members:
//   {"time":"<UTC time>","level":"<LEVEL>","message":"<message>","key":"value",...}
#pragma once

#include <sstream>
#include <string>

namespace mixserve {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };
enum class LogFormat { kText, kJson };

// Return false for an unknown name.
bool ParseLogLevel(const std::string& name, LogLevel* level);
bool ParseLogFormat(const std::string& name, LogFormat* format);  // "text", "json"
void SetLogLevel(LogLevel level);
void SetLogFormat(LogFormat format);
bool LogEnabled(LogLevel level);
void LogLine(LogLevel level, const std::string& message);

// One line as LogLine writes it, without the newline. In JSON the message's trailing run of
// key=value fields (values as LogQuote writes them) become members, numbers as JSON numbers;
// a field named time, level or message is written as field_time (and so on); invalid UTF-8
// becomes U+FFFD.
std::string FormatLogLine(LogFormat format, const std::string& time, LogLevel level,
                          const std::string& message);

// Quotes a value for a key=value log field when it holds spaces, quotes, '=' or '\\', and
// writes control characters as \xNN (\n as \\n): client-supplied values cannot forge lines.
std::string LogQuote(const std::string& value);

}  // namespace mixserve

#define MIXSERVE_LOG(level, expr)                              \
  do {                                                         \
    if (::mixserve::LogEnabled(level)) {                       \
      std::ostringstream mixserve_log_os_;                     \
      mixserve_log_os_ << expr;                                \
      ::mixserve::LogLine(level, mixserve_log_os_.str());      \
    }                                                          \
  } while (0)
#define LOG_DEBUG(expr) MIXSERVE_LOG(::mixserve::LogLevel::kDebug, expr)
#define LOG_INFO(expr) MIXSERVE_LOG(::mixserve::LogLevel::kInfo, expr)
#define LOG_WARNING(expr) MIXSERVE_LOG(::mixserve::LogLevel::kWarning, expr)
#define LOG_ERROR(expr) MIXSERVE_LOG(::mixserve::LogLevel::kError, expr)
