// Micro-benchmarks of every registered mixer at every site it supports (CPU or CUDA):
//   Forward/<mixer>/<site>/B/T   full-sequence forward of one mixer, batch B, length T
//   Step/<mixer>/<site>/B/T      one incremental decode step at position T-1 (decoder sites)
// The model shape is the study's baseline (d_model 128, 8 heads, max_len 50). Each mixer uses
// its default options (feed-forward families: size given by --size, default "s").
//
//   mixer_bench [--size xs|s|m|l] [--device cpu|cuda] [--dtype fp32|fp16|bf16]
//               [--benchmark_filter=...] [other Google Benchmark flags]
// On CUDA every timed iteration ends with a device synchronisation, so the times are what a
// caller waits for, launch overhead included.
#include <benchmark/benchmark.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "bench/bench_target.h"
#include "model/token_mixer.h"

namespace {

using mixserve::ModelSpec;
using mixserve::MixerSpec;
using mixserve::Site;
using mixserve::model::MixerContext;
using mixserve::model::MixerRegistry;
using mixserve::model::TokenMixer;

ModelSpec& BenchSpec() {
  static ModelSpec spec = [] {
    ModelSpec s = mixserve::UniformSpec(128, 512, 8, 1, 1, 8000);
    s.max_len = 50;
    s.dropout = 0;
    return s;
  }();
  return spec;
}

std::string g_size = "s";
mixserve::bench::BenchTarget g_target;

torch::TensorOptions Opt() { return g_target.Options(); }
void Sync() { g_target.Sync(); }

std::shared_ptr<TokenMixer> Make(const std::string& name, Site site) {
  const std::vector<MixerSpec> tries = {MixerSpec{name, g_size, 0, 0, 0},
                                        MixerSpec{name, "", 0, 0, 0},
                                        MixerSpec{name, g_size, 0, 4, 0}};
  for (const auto& t : tries) {
    try {
      auto m = MixerRegistry::Get().Create(MixerContext{&BenchSpec(), site, 0, t});
      m->eval();
      m->to(g_target.device, g_target.dtype);
      return m;
    } catch (const std::invalid_argument&) {
    }
  }
  return nullptr;
}

void Forward(benchmark::State& state, std::string name, Site site) {
  torch::NoGradGuard ng;
  auto m = Make(name, site);
  if (!m) {
    state.SkipWithError("mixer cannot be built with default options");
    return;
  }
  const int64_t b = state.range(0), t = state.range(1), d = BenchSpec().d_model;
  mixserve::model::MixerInput in;
  in.x = torch::randn({b, t, d}, Opt());
  in.mask = torch::ones({b, t}, Opt().dtype(torch::kBool));
  in.memory = torch::randn({b, t, d}, Opt());
  in.memory_mask = torch::ones({b, t}, Opt().dtype(torch::kBool));
  for (int i = 0; i < 3; ++i) m->Forward(in);  // warm-up (CUDA kernels, allocator)
  Sync();
  for (auto _ : state) {
    benchmark::DoNotOptimize(m->Forward(in));
    Sync();
  }
  state.SetItemsProcessed(state.iterations() * b * t);
}

void Step(benchmark::State& state, std::string name, Site site) {
  torch::NoGradGuard ng;
  auto m = Make(name, site);
  if (!m) {
    state.SkipWithError("mixer cannot be built with default options");
    return;
  }
  const int64_t b = state.range(0), t = state.range(1), d = BenchSpec().d_model;
  auto memory = torch::randn({b, t, d}, Opt());
  auto memory_mask = torch::ones({b, t}, Opt().dtype(torch::kBool));
  auto x = torch::randn({b, d}, Opt());
  const auto pos = Opt().dtype(torch::kLong);
  // States cannot be copied through the generic interface: each timed step at position t-1
  // runs on a state refilled (untimed) with positions 0 .. t-2.
  auto fresh = [&] {
    auto s = m->InitState(memory, memory_mask, b);
    for (int64_t p = 0; p + 1 < t; ++p) m->Step(x, torch::full({b}, p, pos), *s);
    Sync();
    return s;
  };
  auto last = torch::full({b}, t - 1, pos);
  {
    auto s = fresh();  // warm-up
    m->Step(x, last, *s);
  }
  for (auto _ : state) {
    state.PauseTiming();
    auto s = fresh();
    state.ResumeTiming();
    benchmark::DoNotOptimize(m->Step(x, last, *s));
    Sync();
  }
  state.SetItemsProcessed(state.iterations() * b);
}

void RegisterAll() {
  for (const auto& name : MixerRegistry::Get().Names()) {
    for (Site site : MixerRegistry::Get().Sites(name)) {
      const std::string tag = name + "/" + mixserve::SiteName(site);
      auto* f = benchmark::RegisterBenchmark(("Forward/" + tag).c_str(), Forward, name, site);
      f->ArgNames({"B", "T"})->MinTime(0.05)->Unit(benchmark::kMicrosecond);
      for (int b : {1, 16})
        for (int t : {8, 24, 48}) f->Args({b, t});
      if (site == Site::kEncoderSelf) continue;
      auto* s = benchmark::RegisterBenchmark(("Step/" + tag).c_str(), Step, name, site);
      s->ArgNames({"B", "T"})->Iterations(20)->Unit(benchmark::kMicrosecond);
      for (int b : {1, 16})
        for (int t : {8, 48}) s->Args({b, t});
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    if (std::strcmp(argv[i], "--size") == 0 && i + 1 < argc) {
      g_size = argv[++i];
      continue;
    }
    if (mixserve::bench::ParseTargetFlag("mixer_bench", argc, argv, &i, &g_target)) continue;
    rest.push_back(argv[i]);
  }
  if (g_target.dtype != torch::kFloat && !g_target.device.is_cuda()) {
    std::fprintf(stderr, "mixer_bench: --dtype fp16 or bf16 needs --device cuda\n");
    return 2;
  }
  int n = static_cast<int>(rest.size());
  torch::set_num_threads(1);
  RegisterAll();
  benchmark::Initialize(&n, rest.data());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
