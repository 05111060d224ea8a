// Progress lines on stdout and metrics as JSON lines (--log).
#pragma once

#include <chrono>
#include <cstdint>
#include <fstream>
#include <memory>
#include <string>

#include "offline/json.h"

namespace mixserve::offline {

// Appends one JSON object per line to a file; a no-op when the path is empty. Each line gets
// "time" (seconds since the Unix epoch) and "event" fields.
class MetricsLog {
 public:
  explicit MetricsLog(const std::string& path);
  void Write(const std::string& event, JsonObject fields);
  const std::string& path() const { return path_; }

 private:
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
