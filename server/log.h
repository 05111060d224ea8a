// Minimal structured logging to stderr: "<UTC time> <LEVEL> <message> key=value ...".
#pragma once

#include <sstream>
#include <string>

namespace mixserve {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// Returns false for an unknown name.
bool ParseLogLevel(const std::string& name, LogLevel* level);
void SetLogLevel(LogLevel level);
bool LogEnabled(LogLevel level);
void LogLine(LogLevel level, const std::string& message);

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
