#include "offline/progress.h"

#include <cstdarg>
#include <cstdio>
#include <filesystem>
#include <stdexcept>

namespace mixserve::offline {

MetricsLog::MetricsLog(const std::string& path) : path_(path) {
  if (path.empty()) return;
  const auto parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent);
  out_ = std::make_unique<std::ofstream>(path, std::ios::app);
  if (!*out_) throw std::runtime_error("cannot open metrics log '" + path + "' for writing");
}

void MetricsLog::Write(const std::string& event, JsonObject fields) {
  if (!out_) return;
  const double now = std::chrono::duration<double>(
                         std::chrono::system_clock::now().time_since_epoch()).count();
  JsonObject line;
  line.Set("time", now).Set("event", event);
  *out_ << line.Dump().substr(0, line.Dump().size() - 1)
        << (fields.empty() ? "" : ", ") << fields.Dump().substr(1) << "\n";
  out_->flush();
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
