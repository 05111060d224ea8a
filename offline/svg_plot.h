// A scatter plot written as a standalone SVG file (no plotting dependency): points grouped
// into coloured series with a legend, linear or log10 x axis, labelled ticks.
#pragma once

#include <string>
#include <vector>

namespace mixserve::offline {

struct PlotPoint {
  double x = 0, y = 0;
  std::string series;  // legend entry / colour
  std::string label;   // short text next to the point (may be empty)
};

struct PlotOptions {
  std::string title;
  std::string x_label, y_label;
  bool log_x = false;  // points with x <= 0 are skipped on a log axis
  int width = 720, height = 480;
};

std::string RenderScatterSvg(const std::vector<PlotPoint>& points, const PlotOptions& options);

}  // namespace mixserve::offline
