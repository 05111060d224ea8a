#include "model/mixers/cpu_attention.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace mixserve::model {
namespace {

// A dot product in eight independent lanes, so that the compiler vectorises it without
// reassociating a single running sum.
inline float Dot(const float* a, const float* b, int64_t n) {
  float lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) lane[j] += a[i + j] * b[i + j];
  float s = ((lane[0] + lane[4]) + (lane[1] + lane[5])) + ((lane[2] + lane[6]) + (lane[3] + lane[7]));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

// One row and head: scores over slots [0, n), softmax, weighted sum of the values.
void AttendOne(const CacheAttention& a, int64_t b, int64_t h, std::vector<float>& p) {
  const int64_t dh = a.head_dim;
  const int64_t n = a.limit ? std::min(a.limit[b], a.slots) : a.slots;
  const int64_t seq = b / a.rows_per_kv;
  const int64_t slot_stride = a.slot_stride ? a.slot_stride : 2 * dh;
  const int64_t head_stride = a.head_stride ? a.head_stride : a.slots * 2 * dh;
  const int64_t kv_stride = a.kv_stride ? a.kv_stride : a.heads * a.slots * 2 * dh;
  const float* q = a.q + b * a.q_stride + h * dh;
  const float* kv = a.kv + seq * kv_stride + h * head_stride;
  const float* bias = a.bias ? a.bias + seq * a.bias_stride : nullptr;
  float* out = a.out + b * a.out_stride + h * dh;
  p.resize(static_cast<size_t>(std::max<int64_t>(n, 1)));
  float top = -INFINITY;
  for (int64_t s = 0; s < n; ++s) {
    p[s] = Dot(q, kv + s * slot_stride, dh) + (bias ? bias[s] : 0.0f);
    top = std::max(top, p[s]);
  }
  std::fill(out, out + dh, 0.0f);
  if (n == 0) return;
  float total = 0;
  for (int64_t s = 0; s < n; ++s) total += (p[s] = std::exp(p[s] - top));
  const float inv = 1.0f / total;
  for (int64_t s = 0; s < n; ++s) {
    const float w = p[s] * inv;
    const float* v = kv + s * slot_stride + dh;
    for (int64_t i = 0; i < dh; ++i) out[i] += w * v[i];
  }
}

}  // namespace

void AttendCache(const CacheAttention& a) {
  const int64_t units = a.rows * a.heads;
  // Work per unit is about slots * 2 * head_dim multiply-adds: keep small steps on one thread.
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, a.slots * a.head_dim));
  at::parallel_for(0, units, grain, [&](int64_t begin, int64_t end) {
    std::vector<float> p;
    for (int64_t u = begin; u < end; ++u) AttendOne(a, u / a.heads, u % a.heads, p);
  });
}

}  // namespace mixserve::model
