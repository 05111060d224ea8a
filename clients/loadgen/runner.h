// The load driver of mixserve-loadgen: sends the test set's sentences through gRPC's callback
// API (no client thread waits on a call, so the number of requests in flight is bounded only
// by the closed loop's concurrency or the open loop's --max-inflight) and records each answer.
#pragma once

#include <grpcpp/grpcpp.h>

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "clients/loadgen/options.h"
#include "clients/loadgen/report.h"

namespace mixserve::loadgen {

struct RunResult {
  std::vector<Record> records;
  std::size_t dispatched = 0;  // sentences sent (each to every target)
  std::size_t dropped = 0;     // open loop: arrivals dropped at the in-flight limit
  double wall_s = 0;           // first dispatch to last completion
};

// Runs the load described by `options` over `sources` (the test set's source side), spreading
// calls round-robin over `channels`. Blocks until every request has finished.
RunResult RunLoad(const Options& options, const std::vector<std::string>& sources,
                  const std::vector<std::shared_ptr<grpc::Channel>>& channels);

}  // namespace mixserve::loadgen
