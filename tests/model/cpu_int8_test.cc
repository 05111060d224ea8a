// The int8 products (CpuLinear with CpuPrecision::kInt8, model/kernels/int8_gemm.h): against a
// reference written here with LibTorch operators from the quantization's definition (per-column
// weight scales, per-row input scales, round half to even); the VNNI kernel against the portable
// one on the same bytes; the error against fp32; and a model switched to int8 as a whole.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>

#include "model/cpu_linear.h"
#include "model/kernels/int8_gemm.h"
#include "model/transformer.h"
#include "tests/model/linear_cases.h"
#include "tests/model/model_test_util.h"

namespace mixserve::model {
namespace {

// y = float(q_x . q_w) * (s_x * s_w) + b, with the integer sums exact (doubles).
torch::Tensor Reference(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b) {
  const auto sw = std::get<0>(w.abs().max(1)) / 127.0f;                       // [out]
  const auto qw = (w / sw.clamp_min(1e-38f).unsqueeze(1)).round().clamp(-127, 127);
  const auto m = std::get<0>(x.abs().max(1));                                 // [rows]
  const auto inv = torch::where(m > 0, 127.0f / m, torch::zeros_like(m));
  const auto qx = (x * inv.unsqueeze(1)).clamp(-127, 127).round();
  const auto sums = torch::mm(qx.to(torch::kDouble), qw.to(torch::kDouble).t()).to(torch::kFloat);
  auto y = sums * ((m / 127.0f).unsqueeze(1) * sw.unsqueeze(0));
  return b.defined() ? y + b : y;
}

using Case = testing::LinearCase;

class Int8Product : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    torch::manual_seed(5);
    const Case c = GetParam();
    w_ = torch::randn({c.out, c.in});
    if (c.bias) b_ = torch::randn({c.out});
    x_ = torch::randn({c.rows, c.in});
  }
  torch::Tensor w_, b_, x_;
};

void ExpectNear(const torch::Tensor& got, const torch::Tensor& want, double tol) {
  ASSERT_EQ(got.sizes(), want.sizes());
  if (got.numel() == 0) return;
  EXPECT_TRUE(torch::allclose(got, want, tol, tol))
      << "max difference " << (got - want).abs().max().item<float>();
}

TEST_P(Int8Product, MatchesTheQuantizedReference) {
  torch::NoGradGuard no_grad;
  const CpuLinear l(w_, b_, CpuPrecision::kInt8);
  EXPECT_EQ(l.precision(), CpuPrecision::kInt8);
  const auto want = Reference(x_, w_, b_);
  ExpectNear(l(x_), want, 1e-5);
  ExpectNear(l(x_, /*relu=*/true), want.relu(), 1e-5);
  auto y = torch::randn({GetParam().rows, GetParam().out});
  const auto acc = y + want;
  l.AddTo(y, x_);
  ExpectNear(y, acc, 1e-5);
}

TEST_P(Int8Product, StaysWithinTheQuantizationErrorOfFp32) {
  torch::NoGradGuard no_grad;
  const Case c = GetParam();
  if (c.rows == 0 || c.in < 16) GTEST_SKIP() << "too few inputs for a statistical bound";
  const CpuLinear q(w_, b_, CpuPrecision::kInt8), f(w_, b_);
  const auto exact = f(x_);
  // Each product's error against its size: about sqrt(in) * |x|max |w|max / 127 / sqrt(3) at
  // most; 2% of the outputs' spread is far above what rounding to 255 levels gives here.
  const auto products = b_.defined() ? exact - b_ : exact;
  const double rel = ((q(x_) - exact).norm() / products.norm()).item<double>();
  EXPECT_LT(rel, 0.02) << "relative error " << rel;
}

TEST_P(Int8Product, SameOnOneThread) {
  torch::NoGradGuard no_grad;
  const CpuLinear l(w_, b_, CpuPrecision::kInt8);
  const int threads = torch::get_num_threads();
  torch::set_num_threads(1);
  auto one = l(x_);
  torch::set_num_threads(threads);
  EXPECT_TRUE(torch::equal(one, l(x_)));
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, Int8Product,
    ::testing::Values(Case{1, 128, 384, true}, Case{1, 128, 4000, true},
                      Case{1, 512, 128, false}, Case{2, 7, 5, true}, Case{3, 16, 16, false},
                      Case{4, 33, 17, true}, Case{5, 64, 130, true}, Case{9, 128, 31, true},
                      Case{48, 128, 512, true}, Case{49, 512, 130, true},
                      Case{200, 128, 384, true}, Case{97, 1, 3, true}, Case{0, 16, 16, true}),
    testing::LinearCaseName);

TEST(CpuInt8, ZeroRowsAndZeroWeightsGiveTheBias) {
  torch::NoGradGuard no_grad;
  auto w = torch::randn({20, 8});
  w[3].zero_();
  const auto b = torch::randn({20});
  const CpuLinear l(w, b, CpuPrecision::kInt8);
  auto x = torch::randn({3, 8});
  x[1].zero_();
  const auto y = l(x);
  EXPECT_TRUE(torch::equal(y[1], b));
  EXPECT_EQ(y[0][3].item<float>(), b[3].item<float>());
  EXPECT_TRUE(torch::isfinite(y).all().item<bool>());
}

TEST(CpuInt8, KernelIsVnniWhereTheCpuHasIt) {
#if defined(__x86_64__)
  __builtin_cpu_init();
  const bool vnni = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                    __builtin_cpu_supports("avx512vnni");
  EXPECT_STREQ(CpuLinear::Kernel(CpuPrecision::kInt8), vnni ? "avx512vnni" : "portable");
#else
  EXPECT_STREQ(CpuLinear::Kernel(CpuPrecision::kInt8), "portable");
#endif
  EXPECT_STREQ(CpuPrecisionName(CpuPrecision::kInt8), "int8");
  EXPECT_STREQ(CpuPrecisionName(CpuPrecision::kFp32), "fp32");
}

// The chosen kernel (VNNI where the CPU has it) and the portable one: the same results from the
// same bytes, over tiles, tails and partial panels, with every epilogue option.
TEST(CpuInt8, ChosenKernelMatchesThePortableOne) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(9);
  for (int64_t rows : {1, 2, 3, 4, 5, 8, 11}) {
    for (int64_t out : {5, 16, 17, 40, 130}) {
      for (int64_t in : {3, 4, 9, 64}) {
        auto w = torch::randn({out, in}), b = torch::randn({out}), x = torch::randn({rows, in});
        const auto q = CpuLinear::QuantizeInt8(w);
        const int64_t quads = q[0].size(1), ldq = quads * kernels::kInt8Quad + 4;
        std::vector<uint8_t> xq(rows * ldq);
        std::vector<float> xs(rows);
        kernels::QuantizeRows(x.data_ptr<float>(), in, rows, in, xq.data(), ldq, xs.data());
        for (int flags = 0; flags < 8; ++flags) {
          auto y0 = torch::randn({rows, out}), y1 = y0.clone();
          kernels::Int8GemmArgs a;
          a.x = xq.data();
          a.ldx = ldq;
          a.x_scale = xs.data();
          a.quads = quads;
          a.panels = q[0].data_ptr<int8_t>();
          a.shift = q[1].data_ptr<int32_t>();
          a.w_scale = q[2].data_ptr<float>();
          a.out = out;
          a.bias = flags & 1 ? b.data_ptr<float>() : nullptr;
          a.accumulate = flags & 2;
          a.relu = flags & 4;
          a.ldy = out;
          a.y = y0.data_ptr<float>();
          kernels::Int8GemmPortable(a, 0, rows, 0, q[0].size(0));
          a.y = y1.data_ptr<float>();
          kernels::Int8GemmKernel()(a, 0, rows, 0, q[0].size(0));
          ASSERT_TRUE(torch::equal(y0, y1))
              << rows << " rows, " << in << " -> " << out << ", flags " << flags
              << ": max difference " << (y0 - y1).abs().max().item<float>();
        }
      }
    }
  }
}

// A model switched to int8: every product changes (the logits differ from fp32 but stay close),
// and switching back gives fp32's logits exactly; a mixer put in later follows the model.
TEST(CpuInt8, ModelSwitchesAsAWhole) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(2);
  Transformer m(testing::TinySpec());
  m->eval();
  const auto src = testing::Pad({testing::RandomTokens(7, true), testing::RandomTokens(4, true)});
  const auto tgt = testing::Pad({testing::WithBos(testing::RandomTokens(5, false)),
                                 testing::WithBos(testing::RandomTokens(3, false))});
  const auto fp32 = m->Forward(src, tgt);
  m->SetCpuPrecision(CpuPrecision::kInt8);
  EXPECT_EQ(m->cpu_precision(), CpuPrecision::kInt8);
  const auto int8 = m->Forward(src, tgt);
  EXPECT_FALSE(torch::equal(int8, fp32));
  const double rel = ((int8 - fp32).norm() / fp32.norm()).item<double>();
  EXPECT_LT(rel, 0.05) << "relative error of the logits " << rel;
  // Every module with products follows the model.
  int users = 0;
  for (const auto& mod : m->modules(/*include_self=*/false))
    if (auto* u = dynamic_cast<CpuPrecisionUser*>(mod.get())) {
      ++users;
      EXPECT_EQ(u->cpu_precision(), CpuPrecision::kInt8);
    }
  // ffn and self of each encoder layer; ffn, self and cross of each decoder layer
  EXPECT_GE(users, 2 * 2 + 3 * 2);
  // A mixer put in later takes the model's precision.
  const auto spec = testing::DefaultMixerSpec("mha", Site::kDecoderSelf);
  const ModelSpec model_spec = testing::TinySpec();
  auto fresh = MixerRegistry::Get().Create(MixerContext{&model_spec, Site::kDecoderSelf, 0, spec});
  m->ReplaceMixer(Site::kDecoderSelf, 0, fresh, spec);
  auto* u = dynamic_cast<CpuPrecisionUser*>(m->mixer(Site::kDecoderSelf, 0).get());
  ASSERT_NE(u, nullptr);
  EXPECT_EQ(u->cpu_precision(), CpuPrecision::kInt8);
  // Back to fp32: the same logits as before the switch, bit for bit.
  torch::manual_seed(2);
  Transformer again(testing::TinySpec());
  again->eval();
  const auto want = again->Forward(src, tgt);
  again->SetCpuPrecision(CpuPrecision::kInt8);
  again->Forward(src, tgt);
  again->SetCpuPrecision(CpuPrecision::kFp32);
  EXPECT_TRUE(torch::equal(again->Forward(src, tgt), want));
}

}  // namespace
}  // namespace mixserve::model
