#include "clients/loadgen/svg_histogram.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>
#include <tuple>
#include <vector>

namespace mixserve::loadgen {
namespace {

constexpr double kWidth = 820, kPanelHeight = 170, kLeft = 70, kRight = 30, kTop = 40,
                 kGap = 30, kBottom = 50;
const char* const kColors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
                               "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"};

std::string Escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string F(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

std::string Ms(double v) {
  char buf[32];
  if (v >= 100)
    std::snprintf(buf, sizeof buf, "%.0f", v);
  else if (v >= 1)
    std::snprintf(buf, sizeof buf, "%.3g", v);
  else
    std::snprintf(buf, sizeof buf, "%.2g", v);
  return buf;
}

}  // namespace

std::string LatencyHistogramSvg(const Report& report, int bins) {
  // The shared axis: from the smallest to the largest latency of any variant, widened to
  // whole "nice" values (1, 2, 5 times a power of ten) on a log scale.
  double lo = 0, hi = 0;
  for (const auto& v : report.variants)
    for (double x : v.latencies_ms) {
      if (x <= 0) continue;
      lo = lo == 0 ? x : std::min(lo, x);
      hi = std::max(hi, x);
    }
  if (lo <= 0) lo = 1, hi = 10;
  auto nice_down = [](double x) {
    const double p = std::pow(10.0, std::floor(std::log10(x)));
    for (double m : {5.0, 2.0, 1.0})
      if (m * p <= x) return m * p;
    return p;
  };
  auto nice_up = [](double x) {
    const double p = std::pow(10.0, std::floor(std::log10(x)));
    for (double m : {1.0, 2.0, 5.0, 10.0})
      if (m * p >= x) return m * p;
    return 10 * p;
  };
  lo = nice_down(lo);
  hi = nice_up(hi * 1.0001);
  if (hi <= lo) hi = lo * 10;
  const double plot_w = kWidth - kLeft - kRight;
  auto xpos = [&](double ms) {
    const double f = (std::log(std::max(ms, lo)) - std::log(lo)) / (std::log(hi) - std::log(lo));
    return kLeft + std::clamp(f, 0.0, 1.0) * plot_w;
  };

  const std::size_t panels = std::max<std::size_t>(report.variants.size(), 1);
  const double height = kTop + panels * kPanelHeight + (panels - 1) * kGap + kBottom;
  std::ostringstream svg;
  svg << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << kWidth << "\" height=\""
      << F(height) << "\" viewBox=\"0 0 " << kWidth << " " << F(height)
      << "\" font-family=\"sans-serif\" font-size=\"12\">\n"
      << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      << "<text x=\"" << kWidth / 2 << "\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">"
      << "Latency per variant (" << Escape(report.run.mode) << " loop)</text>\n";

  // Tick values: 1, 2, 5 times powers of ten inside [lo, hi].
  std::vector<double> ticks;
  for (double p = std::pow(10.0, std::floor(std::log10(lo))); p <= hi; p *= 10)
    for (double m : {1.0, 2.0, 5.0})
      if (m * p >= lo * 0.9999 && m * p <= hi * 1.0001) ticks.push_back(m * p);

  for (std::size_t k = 0; k < report.variants.size(); ++k) {
    const VariantReport& v = report.variants[k];
    const char* color = kColors[k % (sizeof kColors / sizeof kColors[0])];
    const double top = kTop + k * (kPanelHeight + kGap);
    const double bottom = top + kPanelHeight - 20;  // 20 px for the panel title
    const double title_y = top + 12;
    svg << "<g>\n<text x=\"" << kLeft << "\" y=\"" << F(title_y) << "\" font-weight=\"bold\">"
        << Escape(v.label) << "</text>"
        << "<text x=\"" << kWidth - kRight << "\" y=\"" << F(title_y) << "\" text-anchor=\"end\">"
        << "n = " << v.latency.count << "   p50 " << Ms(v.latency.p50) << " ms   p99 "
        << Ms(v.latency.p99) << " ms   max " << Ms(v.latency.max) << " ms</text>\n";
    const double plot_top = top + 20;
    svg << "<rect x=\"" << kLeft << "\" y=\"" << F(plot_top) << "\" width=\"" << plot_w
        << "\" height=\"" << F(bottom - plot_top) << "\" fill=\"none\" stroke=\"#999\"/>\n";
    if (!v.latencies_ms.empty()) {
      const Histogram h = LogHistogram(v.latencies_ms, lo, hi, bins);
      const std::size_t peak = *std::max_element(h.counts.begin(), h.counts.end());
      for (std::size_t i = 0; i < h.counts.size(); ++i) {
        if (!h.counts[i]) continue;
        const double x0 = xpos(h.edges[i]), x1 = xpos(h.edges[i + 1]);
        const double bh = (bottom - plot_top - 4) * h.counts[i] / static_cast<double>(peak);
        svg << "<rect x=\"" << F(x0 + 0.5) << "\" y=\"" << F(bottom - bh) << "\" width=\""
            << F(std::max(x1 - x0 - 1, 1.0)) << "\" height=\"" << F(bh) << "\" fill=\""
            << color << "\"><title>" << Ms(h.edges[i]) << "-" << Ms(h.edges[i + 1])
            << " ms: " << h.counts[i] << "</title></rect>\n";
      }
      // The y axis: the peak count.
      svg << "<text x=\"" << kLeft - 6 << "\" y=\"" << F(plot_top + 10)
          << "\" text-anchor=\"end\" fill=\"#555\">" << peak << "</text>"
          << "<text x=\"" << kLeft - 6 << "\" y=\"" << F(bottom)
          << "\" text-anchor=\"end\" fill=\"#555\">0</text>\n";
      for (auto [q, dash, name] : {std::make_tuple(v.latency.p50, "", "p50"),
                                   std::make_tuple(v.latency.p99, "5,3", "p99")}) {
        const double x = xpos(q);
        svg << "<line x1=\"" << F(x) << "\" y1=\"" << F(plot_top) << "\" x2=\"" << F(x)
            << "\" y2=\"" << F(bottom) << "\" stroke=\"black\""
            << (*dash ? std::string(" stroke-dasharray=\"") + dash + "\"" : std::string())
            << "/><text x=\"" << F(x + 3) << "\" y=\"" << F(plot_top + 12) << "\">" << name
            << "</text>\n";
      }
    } else {
      svg << "<text x=\"" << F(kLeft + plot_w / 2) << "\" y=\"" << F((plot_top + bottom) / 2)
          << "\" text-anchor=\"middle\" fill=\"#555\">no successful request</text>\n";
    }
    // x ticks under every panel.
    for (double t : ticks) {
      const double x = xpos(t);
      svg << "<line x1=\"" << F(x) << "\" y1=\"" << F(bottom) << "\" x2=\"" << F(x)
          << "\" y2=\"" << F(bottom + 4) << "\" stroke=\"#999\"/><text x=\"" << F(x)
          << "\" y=\"" << F(bottom + 16) << "\" text-anchor=\"middle\" fill=\"#555\">" << Ms(t)
          << "</text>\n";
    }
    svg << "</g>\n";
  }
  svg << "<text x=\"" << F(kLeft + plot_w / 2) << "\" y=\"" << F(height - 12)
      << "\" text-anchor=\"middle\">latency (ms, log scale; bar height: requests)</text>\n"
      << "</svg>\n";
  return svg.str();
}

}  // namespace mixserve::loadgen
