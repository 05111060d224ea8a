// Attention of one query per row over a key/value cache, on the CPU in fp32, as one loop over
// raw memory: what a decoding step of mha computes (and, with rows sharing keys and values,
// a full forward over a sequence). LibTorch needs about twenty operators for
// it (head views, a broadcast product and sum for the scores, the mask, softmax, a second
// product and sum, the cache write), each a dispatch of a microsecond or more, while the
// arithmetic for a d_model 128 row is a few thousand multiply-adds: on the CPU a step is
// dispatch time (docs/performance.md, "Against CTranslate2 (CPU)").
#pragma once

#include <cstdint>

namespace mixserve::model {

struct CacheAttention {
  int64_t rows = 0, heads = 0, head_dim = 0;
  // Queries: row b, head h at q[b * q_stride + h * head_dim], already divided by sqrt(dh).
  const float* q = nullptr;
  int64_t q_stride = 0;
  // Keys and values: for row b, head h, slot s the key at kv + (b / rows_per_kv) * kv_stride +
  // h * head_stride + s * slot_stride, the value head_dim further. By default (strides 0) a
  // cache [rows, heads, slots, 2 * head_dim], contiguous. The rows of a full forward over
  // T positions share their sequence's keys and values: rows_per_kv T, and the strides of
  // the projection's output (e.g. [B, T, 3D] with q first and per head key and value after).
  const float* kv = nullptr;
  int64_t slots = 0;
  int64_t rows_per_kv = 1;
  int64_t kv_stride = 0, head_stride = 0, slot_stride = 0;
  // Additive mask over the slots (0 or a large negative number), row b's at
  // bias + (b / rows_per_kv) * bias_stride, or null.
  const float* bias = nullptr;
  int64_t bias_stride = 0;
  // Slots each row attends to: [0, limit[b]) (null: all `slots`).
  const int64_t* limit = nullptr;
  // Output: row b, head h at out[b * out_stride + h * head_dim] (the heads merged).
  float* out = nullptr;
  int64_t out_stride = 0;
};

// softmax(q k^T + bias) v per row and head, scores and softmax in fp32 (as mha's Attend).
// Rows and heads are spread over LibTorch's intra-op threads where there are enough of them.
void AttendCache(const CacheAttention& a);

}  // namespace mixserve::model
