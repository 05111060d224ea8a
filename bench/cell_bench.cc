// Decoding latency of every cell of the ablation grid (docs/results.md): the shipped teacher's
// shape (3+3 layers, d_model 128, 4 heads, ffn 512, 4k vocabulary, max_len 50) with the cell's
// mixer at the cell's sites, random weights. One "translation" = Encode a source of --src_len
// tokens, then --out_len greedy steps (argmax fed back, no early stop, so that every cell
// does the same work whatever its weights would say). Prints one markdown table (rows: method
// and size, columns: sites replaced) of the median milliseconds per translation over --reps
// runs after one warm-up run, with the ratio to the attention teacher; --csv writes one row
// per cell.
//
//   cell_bench [--device cpu|cuda] [--dtype fp32|fp16|bf16] [--batch 1] [--src_len 17]
//              [--out_len 17] [--reps 5] [--methods alr,aft_full,...] [--csv FILE]
// On CUDA each timed run ends with a device synchronisation.
#include <c10/core/InferenceMode.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench/bench_target.h"
#include "model/token_mixer.h"
#include "model/transformer.h"
#include "offline/flags.h"

namespace {

using mixserve::MixerSpec;
using mixserve::ModelSpec;

struct Options {
  mixserve::bench::BenchTarget target;
  int64_t batch = 1, src_len = 17, out_len = 17;
  int reps = 5;
  std::vector<std::string> methods = {"alr",      "alrr",       "aslr",      "elr",      "aft_full",
                                      "aft_simple", "aft_local", "aft_conv", "lstm"};
  std::string csv;
};

const std::vector<std::string> kSites = {"encoder_self", "decoder_self", "decoder_cross", "all"};


// The teacher's shape with `mixer` at `site` ("all": every attention site); mha everywhere
// for method "mha".
ModelSpec CellSpec(const std::string& method, const std::string& size, const std::string& site) {
  const MixerSpec m{method, size == "-" ? "" : size, 0, 0, 0}, mha{};
  const bool all = site == "all";
  ModelSpec spec = mixserve::UniformSpec(
      128, 512, 4, 3, 3, 4000, all || site == "encoder_self" ? m : mha,
      all || site == "decoder_self" ? m : mha, all || site == "decoder_cross" ? m : mha);
  spec.max_len = 50;
  spec.dropout = 0;
  return spec;
}

struct Timing {
  double ms = 0;      // median per translation of the whole batch
  int64_t params = 0;
};

// Throws std::invalid_argument for a cell the model does not support (e.g. ELR outside the
// encoder, LSTM in the cross site).
Timing TimeCell(const Options& o, const ModelSpec& spec) {
  c10::InferenceMode guard;
  torch::manual_seed(1);
  mixserve::model::Transformer model(spec);
  model->eval();
  model->to(o.target.device, o.target.dtype);
  Timing t;
  for (const auto& p : model->parameters()) t.params += p.numel();
  const auto ids = torch::TensorOptions(torch::kLong);
  const auto src = torch::randint(4, 4000, {o.batch, o.src_len}, ids).to(o.target.device);
  auto translate = [&] {
    auto enc = model->Encode(src);
    auto state = model->InitDecoder(enc);
    auto tokens = torch::full({o.batch}, 1, ids).to(o.target.device);  // BOS
    for (int64_t i = 0; i < o.out_len; ++i) tokens = model->DecodeStep(tokens, *state).argmax(-1);
    o.target.Sync();
  };
  translate();  // warm-up
  std::vector<double> ms;
  for (int r = 0; r < o.reps; ++r) {
    const auto start = std::chrono::steady_clock::now();
    translate();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                     .count());
  }
  std::sort(ms.begin(), ms.end());
  t.ms = ms[ms.size() / 2];
  return t;
}

[[noreturn]] void Usage(const char* why) {
  std::fprintf(stderr,
               "cell_bench: %s\nusage: cell_bench [--device cpu|cuda] [--dtype fp32|fp16|bf16] "
               "[--batch N] [--src_len N] [--out_len N] [--reps N] [--methods a,b] [--csv FILE]\n",
               why);
  std::exit(2);
}

int64_t PositiveInt(const char* flag, const char* v) {
  char* end = nullptr;
  const long long n = std::strtoll(v, &end, 10);
  if (end == v || *end != '\0' || n <= 0)
    Usage((std::string(flag) + " needs a positive integer, got '" + v + "'").c_str());
  return n;
}

Options Parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    if (mixserve::bench::ParseTargetFlag("cell_bench", argc, argv, &i, &o.target)) continue;
    const std::string a = argv[i];
    if (i + 1 >= argc) Usage(("unknown or incomplete argument " + a).c_str());
    const char* v = argv[++i];
    if (a == "--batch") o.batch = PositiveInt("--batch", v);
    else if (a == "--src_len") o.src_len = PositiveInt("--src_len", v);
    else if (a == "--out_len") o.out_len = PositiveInt("--out_len", v);
    else if (a == "--reps") o.reps = static_cast<int>(PositiveInt("--reps", v));
    else if (a == "--methods") o.methods = mixserve::offline::SplitList(v);
    else if (a == "--csv") o.csv = v;
    else Usage(("unknown argument " + a).c_str());
  }
  if (o.src_len > 48 || o.out_len > 48) Usage("--src_len and --out_len must fit max_len 50");
  const auto names = mixserve::model::MixerRegistry::Get().Names();
  for (const auto& m : o.methods)
    if (std::find(names.begin(), names.end(), m) == names.end())
      Usage(("--methods: unknown mixer '" + m + "'").c_str());
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = Parse(argc, argv);
  std::FILE* csv = nullptr;
  if (!o.csv.empty()) {
    csv = std::fopen(o.csv.c_str(), "w");
    if (!csv) Usage(("cannot write " + o.csv).c_str());
    std::fprintf(csv, "method,size,sites,parameters,ms_per_translation,ratio_to_mha\n");
  }
  std::printf("cell_bench: %s, %s, batch %lld, source %lld tokens, %lld greedy steps, median "
              "of %d\n\n",
              o.target.device.str().c_str(),
              o.target.dtype == torch::kHalf       ? "fp16"
              : o.target.dtype == torch::kBFloat16 ? "bf16"
                                                   : "fp32",
              static_cast<long long>(o.batch), static_cast<long long>(o.src_len),
              static_cast<long long>(o.out_len), o.reps);
  const Timing base = TimeCell(o, CellSpec("mha", "-", "encoder_self"));
  std::printf("teacher (mha everywhere): %.2f ms per translation, %lld parameters\n\n", base.ms,
              static_cast<long long>(base.params));
  if (csv)
    std::fprintf(csv, "mha (teacher),-,-,%lld,%.3f,1.000\n", static_cast<long long>(base.params),
                 base.ms);
  // Rows: method and size; columns: sites. "n/a": the model does not support the cell.
  std::printf("ms per translation (in brackets: ratio to the teacher)\n\n| method | size |");
  for (const auto& s : kSites) std::printf(" %s |", s.c_str());
  std::printf("\n| --- | --- |");
  for (size_t i = 0; i < kSites.size(); ++i) std::printf(" ---: |");
  std::printf("\n");
  std::fflush(stdout);
  const ModelSpec shape = CellSpec("mha", "-", "encoder_self");
  for (const auto& method : o.methods)
    for (const std::string& size :
         mixserve::model::MixerRegistry::Get().TakesSize(method, shape)
             ? std::vector<std::string>{"xs", "s", "m", "l"}
             : std::vector<std::string>{"-"}) {
      std::printf("| %s | %s |", method.c_str(), size.c_str());
      for (const auto& site : kSites) {
        try {
          const Timing t = TimeCell(o, CellSpec(method, size, site));
          std::printf(" %.2f (%.2f) |", t.ms, t.ms / base.ms);
          if (csv)
            std::fprintf(csv, "%s,%s,%s,%lld,%.3f,%.3f\n", method.c_str(), size.c_str(),
                         site == "all" ? "encoder_self+decoder_self+decoder_cross" : site.c_str(),
                         static_cast<long long>(t.params), t.ms, t.ms / base.ms);
        } catch (const std::invalid_argument&) {
          std::printf(" n/a |");
        }
        std::fflush(stdout);
      }
      std::printf("\n");
    }
  if (csv) std::fclose(csv);
  return 0;
}
