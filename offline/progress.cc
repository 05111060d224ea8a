#include "offline/progress.h"

#include <cstdarg>
#include <cstdio>
#include <filesystem>
#include <stdexcept>

#include "offline/records.h"

namespace mixserve::offline {

MetricsLog::MetricsLog(const std::string& path) : path_(path) {
  if (path.empty()) return;
  const auto parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent);
  out_ = std::make_unique<std::ofstream>(path, std::ios::app);
  if (!*out_) throw std::runtime_error("cannot open metrics log '" + path + "' for writing");
}

MetricsFields& MetricsFields::Set(const std::string& key, double value) {
  record_.numbers[key] = value;
  return *this;
}

MetricsFields& MetricsFields::Set(const std::string& key, int64_t value) {
  record_.numbers[key] = static_cast<double>(value);
  return *this;
}

MetricsFields& MetricsFields::Set(const std::string& key, const std::string& value) {
  record_.strings[key] = value;
  return *this;
}

namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

void MetricsLog::Write(const std::string& event, const MetricsFields& fields) {
  if (!out_) return;
  Append(MetricsEventJson(event, Now(), fields.record()));
}

void MetricsLog::WriteConfig(const std::map<std::string, std::string>& flags) {
  if (!out_) return;
  Append(MetricsEventJson("config", Now(), {}, flags));
}

void MetricsLog::Append(const std::string& line) {
  *out_ << line << "\n";
  out_->flush();
  if (!*out_) throw std::runtime_error("cannot write metrics log '" + path_ + "'");
}

std::string FormatDuration(double s) {
  if (s < 0) s = 0;
  const long t = static_cast<long>(s + 0.5);
  char buf[32];
  if (t >= 3600) std::snprintf(buf, sizeof(buf), "%ldh%02ldm", t / 3600, (t % 3600) / 60);
  else if (t >= 60) std::snprintf(buf, sizeof(buf), "%ldm%02lds", t / 60, t % 60);
  else std::snprintf(buf, sizeof(buf), "%lds", t);
  return buf;
}

double Stopwatch::Seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

std::string Stopwatch::Eta(double done, double total) const {
  if (done <= 0) return "?";
  return FormatDuration(Seconds() / done * (total - done));
}

void Print(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::vprintf(fmt, ap);
  va_end(ap);
  std::fflush(stdout);
}

}  // namespace mixserve::offline
