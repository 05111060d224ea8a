// import_exactness: an imported model's translations against transformers' own (reference
// files of scripts/reference/marian_reference.py), through the serving engine. Prints one
// table row per reference file: sentences, equal source ids, equal greedy and beam outputs
// (token for token) and texts. Where a second reference of the same device in fp32 is given
// (--reference_fp32), a half-precision run also says how many of its differences fall on
// sentences where transformers' own half-precision answer differs from its fp32 one (outputs
// that hang on a near tie).
//   import_exactness --model_dir=repo/marian-base/1 --sentences=data/multi30k/test_2016_flickr.en.gz
//       --reference=base-cuda-fp16.tsv --reference_fp32=base-cuda-fp32.tsv --device=cuda --dtype=fp16
#include <absl/flags/flag.h>
#include <absl/flags/parse.h>
#include <absl/flags/usage.h>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <set>

#include "offline/reference_check.h"
#include "offline/text_io.h"

ABSL_FLAG(std::string, model_dir, "", "imported model version directory");
ABSL_FLAG(std::string, sentences, "data/multi30k/test_2016_flickr.en.gz", "source sentences");
ABSL_FLAG(std::string, reference, "", "reference file (index, ids, outputs, texts)");
ABSL_FLAG(std::string, reference_fp32, "", "optional: the fp32 reference of the same device");
ABSL_FLAG(std::string, device, "cpu", "cpu, cuda, cuda:N");
ABSL_FLAG(std::string, dtype, "fp32", "fp32, fp16, bf16");
ABSL_FLAG(int, max_new_tokens, 48, "transformers' max_new_tokens of the reference");
ABSL_FLAG(int, beam, 4, "beam size of the reference");
ABSL_FLAG(int, batch, 50, "sentences per batch");

namespace {

using mixserve::offline::ReferenceLine;

// Indices whose greedy (or beam) output differs between two references.
std::set<int> Unstable(const std::vector<ReferenceLine>& a, const std::vector<ReferenceLine>& b,
                       bool beam) {
  std::set<int> out;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i)
    if ((beam ? a[i].beam : a[i].greedy) != (beam ? b[i].beam : b[i].greedy))
      out.insert(a[i].index);
  return out;
}

int Within(const std::vector<int>& differ, const std::set<int>& unstable) {
  int n = 0;
  for (int i : differ) n += unstable.count(i) > 0;
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("import_exactness --model_dir=DIR --reference=FILE [flags]");
  absl::ParseCommandLine(argc, argv);
  try {
    const auto reference = mixserve::offline::ReadReferenceLines(absl::GetFlag(FLAGS_reference));
    const auto sentences = mixserve::offline::ReadLines(absl::GetFlag(FLAGS_sentences));
    mixserve::offline::ExactnessOptions o;
    o.engine.device = absl::GetFlag(FLAGS_device);
    o.engine.dtype = absl::GetFlag(FLAGS_dtype);
    o.max_new_tokens = absl::GetFlag(FLAGS_max_new_tokens);
    o.beam_size = absl::GetFlag(FLAGS_beam);
    o.batch = absl::GetFlag(FLAGS_batch);
    const auto r = mixserve::offline::CheckAgainstReference(absl::GetFlag(FLAGS_model_dir),
                                                           sentences, reference, o);
    std::printf("| reference | device | dtype | sentences | source ids | greedy | beam %d | "
                "greedy text | beam text | s |\n| --- | --- | --- | --- | --- | --- | --- | "
                "--- | --- | --- |\n",
                o.beam_size);
    std::printf("| %s | %s | %s | %d | %d | %d | %d | %d | %d | %.1f |\n",
                absl::GetFlag(FLAGS_reference).c_str(), r.device.c_str(), r.dtype.c_str(),
                r.sentences, r.source_equal, r.greedy_equal, r.beam_equal, r.greedy_text_equal,
                r.beam_text_equal, r.seconds);
    if (!absl::GetFlag(FLAGS_reference_fp32).empty()) {
      const auto fp32 = mixserve::offline::ReadReferenceLines(absl::GetFlag(FLAGS_reference_fp32));
      const auto ug = Unstable(reference, fp32, false), ub = Unstable(reference, fp32, true);
      std::printf("\nthe reference's own half-precision answers differ from its fp32 ones on "
                  "%zu (greedy) and %zu (beam) sentences;\nof ours that differ from the "
                  "reference, %d of %zu (greedy) and %d of %zu (beam) are among those\n",
                  ug.size(), ub.size(), Within(r.greedy_differ, ug), r.greedy_differ.size(),
                  Within(r.beam_differ, ub), r.beam_differ.size());
    }
    for (const auto& e : r.examples) std::printf("  %s\n", e.c_str());
    const bool exact = r.source_equal == r.sentences && r.greedy_equal == r.sentences &&
                       r.beam_equal == r.sentences;
    return exact ? 0 : 1;
  } catch (const std::exception& e) {
    std::cerr << "import_exactness: " << e.what() << "\n";
    return 2;
  }
}
