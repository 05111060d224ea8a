#include "offline/svg_plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <sstream>

namespace mixserve::offline {

namespace {

std::string Esc(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string Num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f", v);
  return buf;
}

std::string TickText(double v) {
  char buf[32];
  const double a = std::fabs(v);
  if (a >= 1e9) std::snprintf(buf, sizeof(buf), "%gG", v / 1e9);
  else if (a >= 1e6) std::snprintf(buf, sizeof(buf), "%gM", v / 1e6);
  else if (a >= 1e3) std::snprintf(buf, sizeof(buf), "%gk", v / 1e3);
  else std::snprintf(buf, sizeof(buf), "%g", v);
  return buf;
}

// "Nice" linear ticks covering [lo, hi].
std::vector<double> LinearTicks(double lo, double hi) {
  const double span = hi - lo;
  const double raw = span / 5;
  const double mag = std::pow(10, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    step = m * mag;
    if (raw <= step) break;
  }
  std::vector<double> t;
  for (double v = std::ceil(lo / step) * step; v <= hi + 1e-9 * span; v += step) t.push_back(v);
  return t;
}

const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                         "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

}  // namespace

std::string RenderScatterSvg(const std::vector<PlotPoint>& all, const PlotOptions& o) {
  std::vector<PlotPoint> pts;
  for (const auto& p : all)
    if (std::isfinite(p.x) && std::isfinite(p.y) && (!o.log_x || p.x > 0)) pts.push_back(p);

  const double left = 70, right = 170, top = 40, bottom = 55;
  const double pw = o.width - left - right, ph = o.height - top - bottom;
  auto fx = [&](double x) { return o.log_x ? std::log10(x) : x; };

  double x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  if (!pts.empty()) {
    x0 = x1 = fx(pts[0].x);
    y0 = y1 = pts[0].y;
    for (const auto& p : pts) {
      x0 = std::min(x0, fx(p.x));
      x1 = std::max(x1, fx(p.x));
      y0 = std::min(y0, p.y);
      y1 = std::max(y1, p.y);
    }
  }
  // Margins so that points are not on the frame; degenerate ranges get a unit span.
  if (x1 - x0 < 1e-12) { x0 -= 0.5; x1 += 0.5; }
  if (y1 - y0 < 1e-12) { y0 -= 0.5; y1 += 0.5; }
  const double dx = (x1 - x0) * 0.08, dy = (y1 - y0) * 0.1;
  x0 -= dx; x1 += dx; y0 -= dy; y1 += dy;
  if (y0 < 0 && std::all_of(pts.begin(), pts.end(), [](const PlotPoint& p) { return p.y >= 0; })) y0 = 0;

  auto sx = [&](double x) { return left + (fx(x) - x0) / (x1 - x0) * pw; };
  auto sxr = [&](double v) { return left + (v - x0) / (x1 - x0) * pw; };  // v already on axis scale
  auto sy = [&](double y) { return top + (1 - (y - y0) / (y1 - y0)) * ph; };

  std::ostringstream s;
  s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << o.width << "\" height=\""
    << o.height << "\" viewBox=\"0 0 " << o.width << " " << o.height
    << "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  s << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  s << "<text x=\"" << o.width / 2 << "\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">"
    << Esc(o.title) << "</text>\n";
  s << "<rect x=\"" << left << "\" y=\"" << top << "\" width=\"" << pw << "\" height=\"" << ph
    << "\" fill=\"none\" stroke=\"black\"/>\n";

  // x ticks: decades on a log axis (with 2x and 5x when the span is short), else nice steps.
  std::vector<double> xt;  // on axis scale
  if (o.log_x) {
    for (int d = static_cast<int>(std::floor(x0)); d <= static_cast<int>(std::ceil(x1)); ++d) {
      for (double m : {1.0, 2.0, 5.0}) {
        if (m != 1.0 && x1 - x0 > 3) continue;
        const double v = d + std::log10(m);
        if (v >= x0 && v <= x1) xt.push_back(v);
      }
    }
  } else {
    xt = LinearTicks(x0, x1);
  }
  for (double v : xt) {
    const double X = sxr(v);
    s << "<line x1=\"" << Num(X) << "\" y1=\"" << top + ph << "\" x2=\"" << Num(X) << "\" y2=\""
      << top << "\" stroke=\"#ddd\"/>\n";
    s << "<text x=\"" << Num(X) << "\" y=\"" << top + ph + 16 << "\" text-anchor=\"middle\">"
      << TickText(o.log_x ? std::pow(10, v) : v) << "</text>\n";
  }
  for (double v : LinearTicks(y0, y1)) {
    const double Y = sy(v);
    s << "<line x1=\"" << left << "\" y1=\"" << Num(Y) << "\" x2=\"" << left + pw << "\" y2=\""
      << Num(Y) << "\" stroke=\"#ddd\"/>\n";
    s << "<text x=\"" << left - 6 << "\" y=\"" << Num(Y + 4) << "\" text-anchor=\"end\">"
      << TickText(v) << "</text>\n";
  }
  s << "<text x=\"" << left + pw / 2 << "\" y=\"" << o.height - 12
    << "\" text-anchor=\"middle\">" << Esc(o.x_label) << (o.log_x ? " (log scale)" : "")
    << "</text>\n";
  s << "<text transform=\"translate(18," << top + ph / 2
    << ") rotate(-90)\" text-anchor=\"middle\">" << Esc(o.y_label) << "</text>\n";

  std::map<std::string, int> color;
  std::vector<std::string> order;
  for (const auto& p : pts) {
    if (!color.count(p.series)) {
      color[p.series] = static_cast<int>(order.size()) % 10;
      order.push_back(p.series);
    }
  }
  for (const auto& p : pts) {
    const char* c = kColors[color[p.series]];
    s << "<circle cx=\"" << Num(sx(p.x)) << "\" cy=\"" << Num(sy(p.y)) << "\" r=\"4.5\" fill=\""
      << c << "\" stroke=\"black\" stroke-width=\"0.5\"><title>" << Esc(p.series + " " + p.label)
      << "</title></circle>\n";
    if (!p.label.empty())
      s << "<text x=\"" << Num(sx(p.x) + 6) << "\" y=\"" << Num(sy(p.y) - 6)
        << "\" font-size=\"10\" fill=\"#333\">" << Esc(p.label) << "</text>\n";
  }
  for (size_t i = 0; i < order.size(); ++i) {
    const double Y = top + 10 + 18 * i;
    s << "<circle cx=\"" << left + pw + 18 << "\" cy=\"" << Y << "\" r=\"4.5\" fill=\""
      << kColors[color[order[i]]] << "\"/>\n";
    s << "<text x=\"" << left + pw + 28 << "\" y=\"" << Y + 4 << "\">" << Esc(order[i])
      << "</text>\n";
  }
  s << "</svg>\n";
  return s.str();
}

}  // namespace mixserve::offline
