// Mixed precision of the training loops (offline/precision.h): flag parsing, autocast scopes
// and the optimizer step with fp16 loss scaling (skip on overflow, scale halving and growth).
#include "offline/precision.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace mixserve::offline {
namespace {

TEST(Precision, ParsesFlagsAndRefusesFp16OnCpu) {
  const torch::Device cpu(torch::kCPU);
  EXPECT_EQ(ParsePrecision("fp32", cpu), Precision::kFp32);
  EXPECT_EQ(ParsePrecision("bf16", cpu), Precision::kBf16);
  EXPECT_EQ(ParsePrecision("auto", cpu), Precision::kFp32);
  try {
    ParsePrecision("fp16", cpu);
    FAIL() << "fp16 on CPU accepted";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("needs a CUDA device"), std::string::npos) << e.what();
  }
  try {
    ParsePrecision("fp8", cpu);
    FAIL() << "unknown precision accepted";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("'fp8'"), std::string::npos) << e.what();
  }
  if (torch::cuda::is_available()) {
    const torch::Device cuda(torch::kCUDA, 0);
    EXPECT_EQ(ParsePrecision("auto", cuda), Precision::kBf16);
    EXPECT_EQ(ParsePrecision("fp16", cuda), Precision::kFp16);
  }
  EXPECT_STREQ(PrecisionName(Precision::kFp16), "fp16");
}

void ExpectAutocast(const torch::Device& device, Precision p, torch::ScalarType low) {
  torch::NoGradGuard ng;
  torch::nn::Linear lin(8, 4);
  lin->to(device);
  auto x = torch::randn({3, 8}, torch::TensorOptions().device(device));
  {
    AutocastScope outer(p, device);
    EXPECT_EQ(lin(x).scalar_type(), low);
    {
      AutocastScope inner(Precision::kFp32, device);  // fp32: leaves the outer scope on
      EXPECT_EQ(lin(x).scalar_type(), low);
    }
    {
      AutocastScope inner(p, device);
      EXPECT_EQ(lin(x).scalar_type(), low);
    }
    EXPECT_EQ(lin(x).scalar_type(), low);  // the inner scope restored, not switched off
  }
  EXPECT_EQ(lin(x).scalar_type(), torch::kFloat);
  EXPECT_EQ(lin->weight.scalar_type(), torch::kFloat);
}

TEST(Precision, AutocastScopeRunsMatmulsInLowPrecisionAndRestores) {
  ExpectAutocast(torch::Device(torch::kCPU), Precision::kBf16, torch::kBFloat16);
  if (torch::cuda::is_available()) {
    ExpectAutocast(torch::Device(torch::kCUDA, 0), Precision::kBf16, torch::kBFloat16);
    ExpectAutocast(torch::Device(torch::kCUDA, 0), Precision::kFp16, torch::kHalf);
  }
}

// w -> loss = sum(w * x): the gradient is x.
struct Toy {
  torch::Tensor w = torch::ones({4}).set_requires_grad(true);
  std::vector<torch::Tensor> params{w};
  torch::optim::SGD opt{params, torch::optim::SGDOptions(0.5)};
  torch::Tensor Loss(const torch::Tensor& x) const { return (w * x).sum(); }
};

TEST(Precision, Fp32StepIsPlainBackwardClipStep) {
  Toy t;
  OptimizerStep step(Precision::kFp32);
  EXPECT_EQ(step.scale(), 1.0);
  EXPECT_TRUE(step.Apply(t.Loss(torch::tensor({3.0f, 4.0f, 0.0f, 0.0f})), t.opt, t.params, 1.0));
  // Gradient (3, 4, 0, 0) has norm 5, clipped to 1: (0.6, 0.8); lr 0.5.
  EXPECT_TRUE(torch::allclose(t.w, torch::tensor({0.7f, 0.6f, 1.0f, 1.0f}), 1e-5, 1e-5)) << t.w;
}

TEST(Precision, Fp16StepUnscalesGradientsBeforeClippingAndStepping) {
  Toy a, b;
  OptimizerStep plain(Precision::kFp32), scaled(Precision::kFp16, 1024.0, 2000);
  const auto x = torch::tensor({0.3f, -0.2f, 0.1f, 0.05f});
  ASSERT_TRUE(plain.Apply(a.Loss(x), a.opt, a.params, 1.0));
  ASSERT_TRUE(scaled.Apply(b.Loss(x), b.opt, b.params, 1.0));
  EXPECT_TRUE(torch::allclose(a.w, b.w, 1e-6, 1e-6)) << a.w << b.w;
  EXPECT_EQ(scaled.scale(), 1024.0);
  EXPECT_EQ(scaled.skipped(), 0);
}

TEST(Precision, Fp16StepSkipsOverflowHalvesScaleAndGrowsAgain) {
  Toy t;
  OptimizerStep step(Precision::kFp16, 1024.0, /*growth_interval=*/3);
  const auto before = t.w.clone();
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_FALSE(step.Apply(t.Loss(torch::tensor({1.0f, inf, 0.0f, 0.0f})), t.opt, t.params, 1.0));
  EXPECT_TRUE(torch::equal(t.w, before)) << "an overflowing update must not touch the weights";
  EXPECT_EQ(step.scale(), 512.0);
  EXPECT_EQ(step.skipped(), 1);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  EXPECT_FALSE(step.Apply(t.Loss(torch::tensor({nan, 0.0f, 0.0f, 0.0f})), t.opt, t.params, 0.0));
  EXPECT_EQ(step.scale(), 256.0);
  for (int i = 0; i < 3; ++i)
    EXPECT_TRUE(step.Apply(t.Loss(torch::tensor({0.1f, 0.1f, 0.1f, 0.1f})), t.opt, t.params, 0.0));
  EXPECT_EQ(step.scale(), 512.0);  // doubled after 3 clean updates
  EXPECT_EQ(step.skipped(), 2);
  EXPECT_TRUE(torch::allclose(t.w, before - 3 * 0.5 * 0.1, 1e-5, 1e-5)) << t.w;
}

TEST(Precision, Fp16StepGivesUpAfterTooManyOverflowsInARow) {
  Toy t;
  OptimizerStep step(Precision::kFp16, 1024.0, 2000);
  const float inf = std::numeric_limits<float>::infinity();
  const auto x = torch::tensor({inf, 0.0f, 0.0f, 0.0f});
  for (int64_t i = 1; i < OptimizerStep::kMaxSkippedInARow; ++i)
    ASSERT_FALSE(step.Apply(t.Loss(x), t.opt, t.params, 1.0)) << i;
  EXPECT_TRUE(step.Apply(t.Loss(torch::tensor({0.1f, 0.0f, 0.0f, 0.0f})), t.opt, t.params, 1.0));
  for (int64_t i = 1; i < OptimizerStep::kMaxSkippedInARow; ++i)  // a clean update resets the count
    ASSERT_FALSE(step.Apply(t.Loss(x), t.opt, t.params, 1.0)) << i;
  try {
    step.Apply(t.Loss(x), t.opt, t.params, 1.0);
    FAIL() << "no error after " << OptimizerStep::kMaxSkippedInARow << " overflows in a row";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("use --precision=bf16"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace mixserve::offline
