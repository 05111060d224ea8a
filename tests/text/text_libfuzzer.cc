// libFuzzer entry point for the text path (built only with -DMIXSERVE_LIBFUZZER=ON and a
// compiler that supports -fsanitize=fuzzer; docs/reliability.md). The input is split at its
// first 0xFF byte (never part of UTF-8) into hypothesis and reference. The tokenizer checks
// run when MIXSERVE_FUZZ_SPM names a SentencePiece model, e.g. (one command line)
//   MIXSERVE_FUZZ_SPM=build/tests/server/cache/spm.model
//     build-fuzz/tests/text/text_libfuzzer -max_total_time=600 corpus/
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "tests/text/text_fuzz_checks.h"
#include "text/tokenizer.h"

namespace {
std::unique_ptr<mixserve::Tokenizer> tokenizer;
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (const char* spm = std::getenv("MIXSERVE_FUZZ_SPM")) tokenizer = mixserve::Tokenizer::Load(spm);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string input(reinterpret_cast<const char*>(data), size);
  const size_t cut = input.find('\xFF');
  const std::string h = input.substr(0, cut);
  const std::string r = cut == std::string::npos ? std::string() : input.substr(cut + 1);
  const std::string failure = mixserve::fuzz::CheckTextPath(h, r, tokenizer.get());
  if (!failure.empty()) {
    std::fprintf(stderr, "property failed: %s\n", failure.c_str());
    std::abort();
  }
  return 0;
}
