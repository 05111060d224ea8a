// mixserve-model-info: parameter counts of a model config, per site and mixer.
//
//   mixserve-model-info MODEL.pbtxt
//       total and per-part parameter counts of the model as configured
//   mixserve-model-info MODEL.pbtxt --mixer TYPE [--site SITE] [--sizes xs,s,m,l]
//       the model with TYPE at SITE (default encoder_self) in every layer, for each size
#include <cstdio>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "config/model_spec_io.h"
#include "model/transformer.h"

namespace {

using mixserve::ModelSpec;
using mixserve::Site;

int Usage() {
  std::cerr << "usage: mixserve-model-info MODEL.pbtxt [--mixer TYPE] [--site SITE] "
               "[--sizes xs,s,m,l]\n";
  return 2;
}

void PrintBreakdown(const ModelSpec& spec) {
  mixserve::model::Transformer m(spec);
  std::printf("%-22s %-14s %14s\n", "part", "mixer", "parameters");
  for (const auto& p : m->ParameterBreakdown())
    std::printf("%-22s %-14s %14lld\n", p.part.c_str(), p.mixer.c_str(),
                static_cast<long long>(p.count));
  std::printf("%-22s %-14s %14lld\n", "total", "", static_cast<long long>(m->ParameterCount()));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return Usage();
  std::string path = argv[1], mixer, site_name = "encoder_self", sizes = "xs,s,m,l";
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) return Usage();
    if (a == "--mixer") mixer = argv[++i];
    else if (a == "--site") site_name = argv[++i];
    else if (a == "--sizes") sizes = argv[++i];
    else return Usage();
  }
  ModelSpec spec;
  std::string err;
  if (!mixserve::ReadModelSpec(path, &spec, &err)) {
    std::cerr << "mixserve-model-info: " << err << "\n";
    return 1;
  }
  try {
    if (mixer.empty()) {
      PrintBreakdown(spec);
      return 0;
    }
    Site site;
    if (site_name == "encoder_self") site = Site::kEncoderSelf;
    else if (site_name == "decoder_self") site = Site::kDecoderSelf;
    else if (site_name == "decoder_cross") site = Site::kDecoderCross;
    else {
      std::cerr << "mixserve-model-info: unknown site '" << site_name
                << "' (encoder_self, decoder_self, decoder_cross)\n";
      return 2;
    }
    const int64_t base = mixserve::model::Transformer(spec)->ParameterCount();
    std::printf("%-6s %14s %14s\n", "size", "parameters", "vs config");
    std::stringstream ss(sizes);
    std::string size;
    while (std::getline(ss, size, ',')) {
      ModelSpec s = spec;
      mixserve::MixerSpec ms{mixer, size, 0, 0, 0};
      for (auto& l : s.encoder)
        if (site == Site::kEncoderSelf) l.self = ms;
      for (auto& l : s.decoder) {
        if (site == Site::kDecoderSelf) l.self = ms;
        if (site == Site::kDecoderCross) l.cross = ms;
      }
      const int64_t n = mixserve::model::Transformer(s)->ParameterCount();
      std::printf("%-6s %14lld %+14lld\n", size.c_str(), static_cast<long long>(n),
                  static_cast<long long>(n - base));
    }
  } catch (const std::exception& e) {
    std::cerr << "mixserve-model-info: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
