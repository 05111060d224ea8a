// A self-contained SVG of the latency histograms of a run: one panel per variant, sharing a
// logarithmic latency axis, with the p50 and p99 marked.
#pragma once

#include <string>

#include "clients/loadgen/report.h"

namespace mixserve::loadgen {

// `bins` bins per panel. Variants without a successful request get an empty panel.
std::string LatencyHistogramSvg(const Report& report, int bins = 40);

}  // namespace mixserve::loadgen
