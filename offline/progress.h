// Progress lines on stdout and metrics as JSON lines (--log).
#pragma once

#include <chrono>
#include <cstdint>
#include <fstream>
#include <map>
#include <memory>
#include <string>

#include "config/flat_record.h"

namespace mixserve::offline {

// The fields of one metrics event, by mixserve.v1.MetricsEvent field name.
class MetricsFields {
 public:
  MetricsFields& Set(const std::string& key, double value);
  MetricsFields& Set(const std::string& key, int64_t value);
  MetricsFields& Set(const std::string& key, int value) { return Set(key, static_cast<int64_t>(value)); }
  MetricsFields& Set(const std::string& key, const std::string& value);
  MetricsFields& Set(const std::string& key, const char* value) { return Set(key, std::string(value)); }
  const FlatRecord& record() const { return record_; }

 private:
  FlatRecord record_;
};

// Appends one mixserve.v1.MetricsEvent (proto/mixserve/v1/records.proto) per line to a file
// as JSON; a no-op when the path is empty. Each line gets "time" (seconds since the Unix
// epoch) and "event". A field name the message lacks is std::invalid_argument.
class MetricsLog {
 public:
  explicit MetricsLog(const std::string& path);
  void Write(const std::string& event, const MetricsFields& fields);
  void WriteConfig(const std::map<std::string, std::string>& flags);  // event "config"
  const std::string& path() const { return path_; }

 private:
  void Append(const std::string& line);
  std::string path_;
  std::unique_ptr<std::ofstream> out_;
};

std::string FormatDuration(double seconds);  // "1h02m", "3m07s", "12s"

// Wall clock since construction and ETA for a known total amount of work.
class Stopwatch {
 public:
  Stopwatch() : start_(std::chrono::steady_clock::now()) {}
  double Seconds() const;
  // ETA for `done` of `total` units.
  std::string Eta(double done, double total) const;

 private:
  std::chrono::steady_clock::time_point start_;
};

// printf to stdout, flushed (progress lines must show up at once in logs and pipes).
void Print(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

}  // namespace mixserve::offline
