#include "offline/batching.h"

#include <algorithm>
#include <numeric>
#include <random>

namespace mixserve::offline {

std::vector<TokenPair> FilterByLength(std::vector<TokenPair> pairs, int max_len, size_t* dropped) {
  std::vector<TokenPair> kept;
  kept.reserve(pairs.size());
  size_t n = 0;
  for (auto& p : pairs) {
    const bool ok = !p.src.empty() && !p.tgt.empty() &&
                    static_cast<int>(p.src.size()) + 1 <= max_len &&
                    static_cast<int>(p.tgt.size()) + 2 <= max_len;
    if (ok) kept.push_back(std::move(p));
    else ++n;
  }
  if (dropped) *dropped = n;
  return kept;
}

std::vector<std::vector<int>> MakeBatches(const std::vector<TokenPair>& pairs, int max_tokens,
                                          bool shuffle, uint64_t seed) {
  std::vector<int> order(pairs.size());
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(seed);
  if (shuffle) std::shuffle(order.begin(), order.end(), rng);
  // Stable sort keeps the shuffled order among pairs of equal length.
  auto width = [&](int i) {
    return static_cast<int>(std::max(pairs[i].src.size(), pairs[i].tgt.size())) + 1;
  };
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
    if (pairs[a].tgt.size() != pairs[b].tgt.size()) return pairs[a].tgt.size() < pairs[b].tgt.size();
    return pairs[a].src.size() < pairs[b].src.size();
  });
  std::vector<std::vector<int>> batches;
  std::vector<int> cur;
  int cur_width = 0;
  for (int i : order) {
    const int w = std::max(cur_width, width(i));
    if (!cur.empty() && static_cast<int64_t>(w) * static_cast<int64_t>(cur.size() + 1) > max_tokens) {
      batches.push_back(std::move(cur));
      cur.clear();
      cur_width = 0;
    }
    cur.push_back(i);
    cur_width = std::max(cur_width, width(i));
  }
  if (!cur.empty()) batches.push_back(std::move(cur));
  if (shuffle) std::shuffle(batches.begin(), batches.end(), rng);
  return batches;
}

std::vector<std::vector<int>> ChunkIndices(size_t n, int batch_size) {
  std::vector<std::vector<int>> out;
  for (size_t i = 0; i < n; i += batch_size) {
    std::vector<int> b;
    for (size_t j = i; j < std::min(n, i + batch_size); ++j) b.push_back(static_cast<int>(j));
    out.push_back(std::move(b));
  }
  return out;
}

}  // namespace mixserve::offline
