// One incremental decoding step of a whole Transformer decoder (random weights), the unit of
// work of greedy and beam search and of the server's continuous batching:
//   Step/<shape>/<decoder_self mixer>/B    batch B, every row at position 10, source of 16
//   Admit/<shape>/<decoder_self mixer>/B   B sources of 16 tokens joining an empty decoder
// Shapes: "d128x3" (the shipped models: d_model 128, 3+3 layers, 4 heads, ffn 512, 4k vocab)
// and "d512x6" (the serving comparison's: d_model 512, 6+6 layers, 8 heads, ffn 2048, 8k vocab).
//
// On CUDA the same steps also run replayed from captured CUDA graphs,
//   Step/<shape>/<decoder_self mixer>/graph/B   (model/step_graphs.h; B also 256),
// with the launches of a step reduced to a few copies and one graph launch.
//
// Besides time, each benchmark counts the ATen operators a step dispatches: "ops" are the
// calls made by the model code itself (outermost), "all_ops" includes the operators those
// call in turn. At small batches on a GPU a step costs about one kernel launch per operator,
// so these counts, not the arithmetic, set the latency there (docs/performance.md).
// --kernels prints, per benchmark, the device kernels of one step as the profiler (Kineto)
// sees them: count and time per kernel name, the largest first, and their sum, the step's
// GPU time without launch gaps.
//
// --dtype int8 (CPU): the model's products in int8 (model/cpu_linear.h).
//
//   decode_bench [--device cpu|cuda] [--dtype fp32|fp16|bf16|int8] [--list_ops[=all]] [--kernels]
//                [--benchmark_filter=...] [other Google Benchmark flags]
// On CUDA every timed step ends with a device synchronisation.
#include <ATen/record_function.h>
#include <benchmark/benchmark.h>
#include <c10/core/InferenceMode.h>
#include <torch/csrc/autograd/profiler_kineto.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "bench/bench_target.h"
#include "model/transformer.h"

namespace {

using mixserve::MixerSpec;
using mixserve::ModelSpec;

mixserve::bench::BenchTarget g_target;

// Operator counting through a global RecordFunction callback, enabled only while counting.
thread_local int t_depth = 0;
std::atomic<bool> g_counting{false};
std::atomic<int64_t> g_outer{0}, g_all{0};
// --list_ops: print the outermost operators of one step (--list_ops=all: every operator),
// as counts per operator name.
int g_list_ops = 0;  // 0 no, 1 outermost, 2 all
std::mutex g_names_mu;
std::map<std::string, int> g_names;

void InstallCounter() {
  static bool installed = false;
  if (installed) return;
  installed = true;
  at::addGlobalCallback(
      at::RecordFunctionCallback(
          [](const at::RecordFunction& fn) -> std::unique_ptr<at::ObserverContext> {
            if (g_counting) {
              if (t_depth == 0) ++g_outer;
              ++g_all;
              if (g_list_ops == 2 || (g_list_ops == 1 && t_depth == 0)) {
                std::lock_guard<std::mutex> lock(g_names_mu);
                ++g_names[fn.name()];
              }
            }
            ++t_depth;
            return nullptr;
          },
          [](const at::RecordFunction&, at::ObserverContext*) { --t_depth; })
          .scopes({at::RecordScope::FUNCTION}));
}

// --kernels
bool g_kernels = false;

// A profiler event's duration in microseconds (LibTorch 2 counts nanoseconds, 1.x micro).
template <typename E>
auto DurationUs(const E& e, int) -> decltype(e.durationNs(), double()) {
  return static_cast<double>(e.durationNs()) / 1000.0;
}
template <typename E>
double DurationUs(const E& e, long) {
  return static_cast<double>(e.durationUs());
}

// Runs `step` under the profiler and prints its device kernels by name, once per title
// (Google Benchmark calls a benchmark's function more than once).
void PrintKernels(const std::string& title, const std::function<void()>& step) {
  namespace prof = torch::autograd::profiler;
  namespace impl = torch::profiler::impl;
  static std::set<std::string> printed;
  if (!printed.insert(title).second) return;
  std::printf("%s: device kernels of one step\n", title.c_str());
  if (!g_target.device.is_cuda()) {
    std::printf("  (no CUDA device: nothing to list)\n");
    return;
  }
  std::map<std::string, std::pair<int, double>> by_name;
  try {
    const std::set<impl::ActivityType> acts{impl::ActivityType::CPU, impl::ActivityType::CUDA};
    const impl::ProfilerConfig config(impl::ProfilerState::KINETO);
    prof::prepareProfiler(config, acts);
    prof::enableProfiler(config, acts);
    step();
    g_target.Sync();
    auto result = prof::disableProfiler();
    for (const auto& e : result->events()) {
      if (e.deviceType() != c10::DeviceType::CUDA) continue;
      auto& entry = by_name[e.name()];
      ++entry.first;
      entry.second += DurationUs(e, 0);
    }
  } catch (const std::exception& e) {
    std::printf("  profiler failed: %s\n", e.what());
    return;
  }
  std::vector<std::pair<double, std::string>> rows;
  int kernels = 0;
  double total = 0;
  for (const auto& [name, v] : by_name) {
    rows.emplace_back(-v.second, name);
    kernels += v.first;
    total += v.second;
  }
  std::sort(rows.begin(), rows.end());
  std::printf("  %d kernels, %.1f us in all\n", kernels, total);
  for (const auto& [neg_us, name] : rows)
    std::printf("  %4d x %8.1f us  %.100s\n", by_name[name].first, -neg_us, name.c_str());
}

// Counts the operators `run` dispatches into the benchmark's counters "ops" and "all_ops"
// (and prints them by name with --list_ops).
void CountOps(benchmark::State& state, const std::string& title, const std::function<void()>& run) {
  InstallCounter();
  g_outer = 0;
  g_all = 0;
  g_counting = true;
  run();
  g_counting = false;
  state.counters["ops"] = static_cast<double>(g_outer.load());
  state.counters["all_ops"] = static_cast<double>(g_all.load());
  if (!g_list_ops) return;
  std::lock_guard<std::mutex> lock(g_names_mu);
  std::vector<std::pair<int, std::string>> by_count;
  for (const auto& [name, n] : g_names) by_count.emplace_back(-n, name);
  std::sort(by_count.begin(), by_count.end());
  std::printf("%s:\n", title.c_str());
  for (const auto& [n, name] : by_count) std::printf("  %6d %s\n", -n, name.c_str());
  g_names.clear();
}

struct Shape {
  int d, ffn, heads, layers, vocab;
};

Shape ShapeOf(const std::string& name) {
  if (name == "d128x3") return {128, 512, 4, 3, 4000};
  return {512, 2048, 8, 6, 8000};
}

// A model of `shape_name` (random weights, seed 1) with `self_mixer` at the decoder's self
// sites, on the benchmark's device and dtype, for inference.
mixserve::model::Transformer MakeModel(const Shape& sh, const std::string& self_mixer) {
  torch::manual_seed(1);
  ModelSpec spec = mixserve::UniformSpec(sh.d, sh.ffn, sh.heads, sh.layers, sh.layers, sh.vocab,
                                         MixerSpec{}, MixerSpec{self_mixer, "", 0, 0, 0});
  spec.max_len = 50;
  spec.dropout = 0;
  mixserve::model::Transformer model(spec);
  model->eval();
  model->to(g_target.device, g_target.dtype);
  if (g_target.int8) model->SetCpuPrecision(mixserve::model::CpuPrecision::kInt8);
  return model;
}

// `batch` random sources of 16 tokens on the benchmark's device.
torch::Tensor Sources(const Shape& sh, int64_t batch) {
  return torch::randint(4, sh.vocab, {batch, 16}, torch::TensorOptions(torch::kLong))
      .to(g_target.device);
}

void Step(benchmark::State& state, std::string shape_name, std::string self_mixer, bool graphs) {
  const Shape sh = ShapeOf(shape_name);
  const int64_t batch = state.range(0);
  c10::InferenceMode guard;
  auto model = MakeModel(sh, self_mixer);
  if (graphs && !model->EnableStepGraphs(true)) {
    state.SkipWithError("this decoder's steps cannot be captured");
    return;
  }
  auto src = Sources(sh, batch);
  auto enc = model->Encode(src);
  auto tokens = torch::full({batch}, 5, torch::TensorOptions(torch::kLong)).to(g_target.device);
  // Every timed step runs at position 10 of a fresh copy of a state advanced to it.
  auto fresh = [&] {
    auto s = model->InitDecoder(enc);
    for (int i = 0; i < 10; ++i) model->DecodeStep(tokens, *s);
    return s;
  };
  {
    auto s = fresh();
    CountOps(state, shape_name + "/" + self_mixer + "/" + std::to_string(batch),
             [&] { model->DecodeStep(tokens, *s); });
  }
  if (g_kernels) {
    auto s = fresh();
    g_target.Sync();
    PrintKernels(shape_name + "/" + self_mixer + (graphs ? "/graph/" : "/") +
                     std::to_string(batch),
                 [&] { model->DecodeStep(tokens, *s); });
  }
  for (auto _ : state) {
    state.PauseTiming();
    auto s = fresh();
    g_target.Sync();
    state.ResumeTiming();
    auto logp = model->DecodeStep(tokens, *s);
    g_target.Sync();
    benchmark::DoNotOptimize(logp);
  }
  state.SetItemsProcessed(state.iterations() * batch);
}

// A new sentence joining the decoding: AppendSources of B sources of 16 tokens into a
// decoder state over no rows (encoder, the mixers' start states, the append), which is what
// the server's scheduler does when a request arrives at an idle engine.
void Admit(benchmark::State& state, std::string shape_name, std::string self_mixer) {
  const Shape sh = ShapeOf(shape_name);
  const int64_t batch = state.range(0);
  c10::InferenceMode guard;
  auto model = MakeModel(sh, self_mixer);
  auto src = Sources(sh, batch);
  {  // once before counting: the derived weights are built on first use
    auto s = model->EmptyDecoder();
    model->AppendSources(*s, src, 1);
  }
  CountOps(state, "admit/" + shape_name + "/" + self_mixer + "/" + std::to_string(batch), [&] {
    auto s = model->EmptyDecoder();
    model->AppendSources(*s, src, 1);
  });
  for (auto _ : state) {
    state.PauseTiming();
    auto s = model->EmptyDecoder();
    g_target.Sync();
    state.ResumeTiming();
    model->AppendSources(*s, src, 1);
    g_target.Sync();
    benchmark::DoNotOptimize(s);
  }
  state.SetItemsProcessed(state.iterations() * batch);
}

void RegisterAll() {
  for (const bool graphs : {false, true}) {
    if (graphs && !g_target.device.is_cuda()) continue;
    for (const std::string shape : {"d128x3", "d512x6"})
      for (const std::string mixer : {"mha", "aft_simple"}) {
        auto* b = benchmark::RegisterBenchmark(
            ("Step/" + shape + "/" + mixer + (graphs ? "/graph" : "")).c_str(),
            [shape, mixer, graphs](benchmark::State& st) { Step(st, shape, mixer, graphs); });
        b->Arg(1)->Arg(16)->Unit(benchmark::kMicrosecond);
        if (g_target.device.is_cuda()) b->Arg(256);
      }
  }
  for (const std::string shape : {"d128x3", "d512x6"})
    for (const std::string mixer : {"mha", "aft_simple"})
      benchmark::RegisterBenchmark(("Admit/" + shape + "/" + mixer).c_str(),
                                   [shape, mixer](benchmark::State& st) { Admit(st, shape, mixer); })
          ->Arg(1)
          ->Arg(16)
          ->Unit(benchmark::kMicrosecond);
}

}  // namespace

int main(int argc, char** argv) {
  g_target.int8_allowed = true;
  std::vector<char*> rest = {argv[0]};
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--list_ops") == 0 || std::strcmp(argv[i], "--list_ops=all") == 0) {
      g_list_ops = std::strcmp(argv[i], "--list_ops") == 0 ? 1 : 2;
      continue;
    }
    if (std::strcmp(argv[i], "--kernels") == 0) {
      g_kernels = true;
      continue;
    }
    if (mixserve::bench::ParseTargetFlag("decode_bench", argc, argv, &i, &g_target)) continue;
    rest.push_back(argv[i]);
  }
  int n = static_cast<int>(rest.size());
  if (g_target.int8 && !g_target.device.is_cpu()) {
    std::fprintf(stderr, "decode_bench: --dtype int8 runs on the CPU only\n");
    return 2;
  }
  benchmark::Initialize(&n, rest.data());
  RegisterAll();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
