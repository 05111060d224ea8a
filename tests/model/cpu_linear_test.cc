// CpuLinear (model/cpu_linear.h) against torch::addmm: row counts around the kernels' tiles
// (6 rows under AVX-512, 3 under AVX2), output widths around the 16-column panels, with and
// without bias, with the fused ReLU, accumulating in place, inputs that are views, one thread
// and several; and the CPU's packed kernel chosen where the CPU has one.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>

#include "model/cpu_linear.h"
#include "model/kernels/packed_gemm.h"
#include "tests/model/linear_cases.h"

namespace mixserve::model {
namespace {

using Case = testing::LinearCase;

class CpuLinearProduct : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    torch::manual_seed(11);
    const Case c = GetParam();
    w_ = torch::randn({c.out, c.in});
    if (c.bias) b_ = torch::randn({c.out});
    x_ = torch::randn({c.rows, c.in});
  }
  torch::Tensor Reference(const torch::Tensor& x) const {
    auto y = torch::mm(x, w_.t());
    return b_.defined() ? y + b_ : y;
  }
  torch::Tensor w_, b_, x_;
};

// Products over many inputs round differently from BLAS (FMA, another order of the sum).
void ExpectClose(const torch::Tensor& got, const torch::Tensor& want) {
  ASSERT_EQ(got.sizes(), want.sizes());
  EXPECT_TRUE(torch::allclose(got, want, 1e-4, 1e-4))
      << "max difference " << (got - want).abs().max().item<float>();
}

TEST_P(CpuLinearProduct, MatchesAddmm) {
  torch::NoGradGuard no_grad;
  const CpuLinear l(w_, b_);
  EXPECT_EQ(l.in(), GetParam().in);
  EXPECT_EQ(l.out(), GetParam().out);
  ExpectClose(l(x_), Reference(x_));
  ExpectClose(l(x_, /*relu=*/true), Reference(x_).relu());
}

TEST_P(CpuLinearProduct, AddsInPlace) {
  torch::NoGradGuard no_grad;
  const CpuLinear l(w_, b_);
  auto y = torch::randn({GetParam().rows, GetParam().out});
  const auto want = y + Reference(x_);
  l.AddTo(y, x_);
  ExpectClose(y, want);
}

TEST_P(CpuLinearProduct, TakesViewsAndMoreDimensions) {
  torch::NoGradGuard no_grad;
  const Case c = GetParam();
  const CpuLinear l(w_, b_);
  // Every other column of a wider tensor: not contiguous.
  auto wide = torch::randn({c.rows, 2 * c.in});
  auto view = wide.view({c.rows, c.in, 2}).select(2, 0);
  ExpectClose(l(view), Reference(view));
  // [2, rows, in]
  auto x3 = torch::stack({x_, x_ * 2});
  ExpectClose(l(x3), torch::stack({Reference(x_), Reference(x_ * 2)}));
}

TEST_P(CpuLinearProduct, SameOnOneThread) {
  torch::NoGradGuard no_grad;
  const CpuLinear l(w_, b_);
  const int threads = torch::get_num_threads();
  torch::set_num_threads(1);
  auto one = l(x_);
  torch::set_num_threads(threads);
  ExpectClose(one, Reference(x_));
  // The split between threads changes which rows and panels run together, not the sums.
  EXPECT_TRUE(torch::equal(one, l(x_)));
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, CpuLinearProduct,
    ::testing::Values(Case{1, 128, 384, true}, Case{1, 128, 4000, true},
                      Case{1, 512, 128, false}, Case{2, 7, 5, true}, Case{3, 16, 16, false},
                      Case{5, 33, 17, true}, Case{6, 128, 31, true}, Case{7, 64, 48, true},
                      Case{13, 100, 129, false}, Case{48, 128, 512, true},
                      Case{49, 512, 130, true}, Case{200, 128, 384, true},
                      Case{97, 1, 3, true}, Case{0, 16, 16, true}),
    testing::LinearCaseName);

TEST(CpuLinear, RejectsWrongShapes) {
  torch::NoGradGuard no_grad;
  EXPECT_THROW(CpuLinear(torch::randn({4}), torch::Tensor()), std::invalid_argument);
  EXPECT_THROW(CpuLinear(torch::randn({4, 3}), torch::randn({3})), std::invalid_argument);
  const CpuLinear l(torch::randn({4, 3}), torch::randn({4}));
  EXPECT_THROW(l(torch::randn({2, 4})), std::invalid_argument);
  auto y = torch::zeros({2, 3});
  EXPECT_THROW(l.AddTo(y, torch::randn({2, 3})), std::invalid_argument);
}

TEST(CpuLinear, AppliesOnlyToFp32WithoutGradients) {
  auto x = torch::randn({2, 3});
  {
    torch::NoGradGuard no_grad;
    EXPECT_TRUE(CpuLinear::Applies(x));
    EXPECT_FALSE(CpuLinear::Applies(x.to(torch::kDouble)));
  }
  EXPECT_FALSE(CpuLinear::Applies(x));  // gradient mode
}

TEST(CpuLinear, UsesThePackedKernelWhereTheCpuHasOne) {
#if defined(__x86_64__)
  __builtin_cpu_init();
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  EXPECT_STREQ(CpuLinear::Kernel(), avx512 ? "avx512" : avx2 ? "avx2" : "blas");
#else
  EXPECT_STREQ(CpuLinear::Kernel(), "blas");
#endif
}

// The other instruction set's kernel, where this CPU runs it too (an AVX-512 CPU runs the
// AVX2 kernel): the same products.
TEST(CpuLinear, Avx2KernelMatchesWhereItRuns) {
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma"))
    GTEST_SKIP() << "no AVX2 on this CPU";
  torch::manual_seed(3);
  for (int64_t rows : {1, 2, 3, 4, 7}) {
    auto x = torch::randn({rows, 40}), w = torch::randn({37, 40}), b = torch::randn({37});
    auto p = CpuLinear::Pack(w);
    const int64_t panels = p.size(0);
    auto y = torch::full({rows, 37}, 1.0f);
    kernels::PackedGemmArgs a;
    a.x = x.data_ptr<float>();
    a.ldx = 40;
    a.in = 40;
    a.panels = p.data_ptr<float>();
    a.out = 37;
    a.bias = b.data_ptr<float>();
    a.y = y.data_ptr<float>();
    a.ldy = 37;
    a.accumulate = true;
    kernels::PackedGemmAvx2(a, 0, rows, 0, panels);
    ExpectClose(y, 1 + torch::addmm(b, x, w.t()));
  }
#else
  GTEST_SKIP() << "x86-64 only";
#endif
}

}  // namespace
}  // namespace mixserve::model
