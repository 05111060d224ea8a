// Token-based batching of sentence pairs: pairs are sorted by length so that a batch holds
// sentences of similar length, batches are filled up to --max_tokens (padded tokens of the
// longer side), and the batch order is shuffled every epoch.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mixserve::offline {

struct TokenPair {
  std::vector<int> src;  // without BOS/EOS
  std::vector<int> tgt;  // without BOS/EOS
  int index = 0;         // line number in the corpus
};

// Keeps pairs whose source fits max_len with EOS and whose target fits with BOS and EOS
// (the model's max_len counts both); `dropped` receives the number filtered out. Empty
// sides are dropped too.
std::vector<TokenPair> FilterByLength(std::vector<TokenPair> pairs, int max_len, size_t* dropped);

// Batches as lists of indices into `pairs`. Each batch's padded size
// rows * max(longest src + 1, longest tgt + 1) stays within max_tokens (a single pair longer
// than that still gets its own batch). With shuffle, pairs of equal length are permuted and
// the batch order is shuffled with `seed`; without, batches are in length order.
std::vector<std::vector<int>> MakeBatches(const std::vector<TokenPair>& pairs, int max_tokens,
                                          bool shuffle, uint64_t seed);

// Fixed-size batches in corpus order (decoding: results come back in order).
std::vector<std::vector<int>> ChunkIndices(size_t n, int batch_size);

}  // namespace mixserve::offline
