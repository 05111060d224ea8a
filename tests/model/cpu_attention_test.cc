// AttendCache (model/mixers/cpu_attention.h) against the same attention written with LibTorch
// operators: masks, per-row limits, head sizes that are not a multiple of the vectorised
// lanes, rows with nothing to attend to, and enough rows to be split over threads.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <ostream>
#include <string>
#include <vector>

#include "model/mixers/cpu_attention.h"

namespace mixserve::model {
namespace {

struct Case {
  int64_t rows, heads, head_dim, slots;
  bool bias, limit;
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << c.rows << " rows, " << c.heads << " heads of " << c.head_dim << ", " << c.slots
      << " slots" << (c.bias ? ", bias" : "") << (c.limit ? ", limits" : "");
}

class CpuAttention : public ::testing::TestWithParam<Case> {};

TEST_P(CpuAttention, MatchesLibTorch) {
  const Case c = GetParam();
  torch::manual_seed(7);
  const int64_t d = c.heads * c.head_dim, width = c.slots + 5;  // a bias row wider than slots
  auto q = torch::randn({c.rows, 3 * d});  // queries in the first d columns, as a self step
  auto kv = torch::randn({c.rows, c.heads, c.slots, 2 * c.head_dim});
  auto bias = torch::zeros({c.rows, width});
  if (c.bias) bias.masked_fill_(torch::rand({c.rows, width}) < 0.3, -1e9);
  std::vector<int64_t> limit(static_cast<size_t>(c.rows));
  for (int64_t r = 0; r < c.rows; ++r) limit[r] = c.limit ? r % (c.slots + 2) : c.slots;
  auto out = torch::full({c.rows, d}, 123.0f);

  CacheAttention a;
  a.rows = c.rows;
  a.heads = c.heads;
  a.head_dim = c.head_dim;
  a.q = q.data_ptr<float>();
  a.q_stride = 3 * d;
  a.kv = kv.data_ptr<float>();
  a.slots = c.slots;
  a.bias = c.bias ? bias.data_ptr<float>() : nullptr;
  a.bias_stride = width;
  a.limit = c.limit ? limit.data() : nullptr;
  a.out = out.data_ptr<float>();
  a.out_stride = d;
  AttendCache(a);

  for (int64_t r = 0; r < c.rows; ++r) {
    const int64_t n = std::min(limit[r], c.slots);
    for (int64_t h = 0; h < c.heads; ++h) {
      auto got = out[r].narrow(0, h * c.head_dim, c.head_dim);
      if (n == 0) {  // nothing to attend to: zeros
        EXPECT_TRUE(torch::equal(got, torch::zeros({c.head_dim}))) << "row " << r;
        continue;
      }
      auto qh = q[r].narrow(0, h * c.head_dim, c.head_dim);
      auto k = kv[r][h].narrow(0, 0, n).narrow(1, 0, c.head_dim);
      auto v = kv[r][h].narrow(0, 0, n).narrow(1, c.head_dim, c.head_dim);
      auto scores = torch::mv(k, qh);
      if (c.bias) scores = scores + bias[r].narrow(0, 0, n);
      auto want = torch::mv(v.t(), torch::softmax(scores, 0));
      EXPECT_TRUE(torch::allclose(got, want, 1e-5, 1e-5))
          << "row " << r << " head " << h << "\n" << got << "\n" << want;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, CpuAttention,
    ::testing::Values(Case{1, 4, 32, 10, false, false}, Case{3, 2, 5, 7, true, false},
                      Case{6, 3, 13, 9, true, true}, Case{64, 8, 64, 40, true, true},
                      Case{2, 1, 8, 1, false, true}),
    [](const ::testing::TestParamInfo<Case>& i) {
      const Case& c = i.param;
      return "rows" + std::to_string(c.rows) + "_heads" + std::to_string(c.heads) + "_dh" +
             std::to_string(c.head_dim) + "_slots" + std::to_string(c.slots) +
             (c.bias ? "_bias" : "") + (c.limit ? "_limits" : "");
    });

// A full forward's layout (mha's CPU forward): the rows are the T positions of B sequences,
// each reading its sequence's keys and values straight from the projection's output
// [B, T, 3D] (q, then per head key and value), with a key padding mask per sequence and a
// causal limit per position; against LibTorch's attention over the same tensors.
TEST(CpuAttentionShared, RowsShareTheirSequencesKeysAndValues) {
  torch::manual_seed(3);
  const int64_t b = 3, t = 5, heads = 2, dh = 6, d = heads * dh;
  auto qkv = torch::randn({b, t, 3 * d});
  auto mask = torch::ones({b, t}, torch::kBool);
  mask[1][4] = false;
  mask[2][3] = false;
  mask[2][4] = false;
  auto bias = torch::zeros({b, t}).masked_fill_(mask.logical_not(), -1e9);
  std::vector<int64_t> limit(static_cast<size_t>(b * t));
  for (int64_t r = 0; r < b * t; ++r) limit[static_cast<size_t>(r)] = r % t + 1;
  for (bool causal : {false, true}) {
    auto out = torch::full({b, t, d}, 7.0f);
    CacheAttention a;
    a.rows = b * t;
    a.heads = heads;
    a.head_dim = dh;
    a.q = qkv.data_ptr<float>();
    a.q_stride = 3 * d;
    a.kv = qkv.data_ptr<float>() + d;
    a.slots = t;
    a.rows_per_kv = t;
    a.kv_stride = t * 3 * d;
    a.head_stride = 2 * dh;
    a.slot_stride = 3 * d;
    a.bias = bias.data_ptr<float>();
    a.bias_stride = t;
    a.limit = causal ? limit.data() : nullptr;
    a.out = out.data_ptr<float>();
    a.out_stride = d;
    AttendCache(a);
    // [B, T, H, 2 dh] -> keys and values [B, H, T, dh]
    auto kv = qkv.narrow(2, d, 2 * d).view({b, t, heads, 2 * dh}).transpose(1, 2);
    auto q = qkv.narrow(2, 0, d).view({b, t, heads, dh}).transpose(1, 2);
    auto scores = torch::matmul(q, kv.narrow(3, 0, dh).transpose(2, 3)) +
                  bias.view({b, 1, 1, t});
    if (causal)
      scores = scores.masked_fill(torch::ones({t, t}, torch::kBool).triu(1), -INFINITY);
    auto want = torch::matmul(torch::softmax(scores, -1), kv.narrow(3, dh, dh))
                    .transpose(1, 2)
                    .reshape({b, t, d});
    EXPECT_TRUE(torch::allclose(out, want, 1e-5, 1e-5)) << (causal ? "causal" : "full") << "\n"
                                                        << (out - want).abs().max();
  }
}

}  // namespace
}  // namespace mixserve::model
