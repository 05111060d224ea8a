#include "offline/reference_check.h"

#include <absl/strings/numbers.h>
#include <absl/strings/str_join.h>
#include <absl/strings/str_split.h>

#include <chrono>
#include <fstream>
#include <stdexcept>

#include "config/model_tokenizers.h"

namespace mixserve::offline {
namespace {

std::vector<int> Ids(absl::string_view field, const std::string& where) {
  std::vector<int> out;
  for (absl::string_view t : absl::StrSplit(field, ' ', absl::SkipEmpty())) {
    int v = 0;
    if (!absl::SimpleAtoi(t, &v)) throw std::runtime_error(where + ": bad token id '" + std::string(t) + "'");
    out.push_back(v);
  }
  return out;
}

std::string Spell(const std::vector<int>& ids) { return absl::StrJoin(ids, " "); }

}  // namespace

std::vector<ReferenceLine> ReadReferenceLines(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open reference file " + path);
  std::vector<ReferenceLine> out;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    const std::string where = path + ":" + std::to_string(n);
    std::vector<std::string> f = absl::StrSplit(line, '\t');
    if (f.size() != 7)
      throw std::runtime_error(where + ": expected 7 tab-separated fields, found " +
                               std::to_string(f.size()));
    ReferenceLine r;
    if (!absl::SimpleAtoi(f[0], &r.index) || !absl::SimpleAtod(f[4], &r.beam_score))
      throw std::runtime_error(where + ": bad index or score");
    r.source = Ids(f[1], where);
    r.greedy = Ids(f[2], where);
    r.beam = Ids(f[3], where);
    r.greedy_text = f[5];
    r.beam_text = f[6];
    out.push_back(std::move(r));
  }
  return out;
}

ExactnessReport CheckAgainstReference(const std::string& model_dir,
                                      const std::vector<std::string>& sentences,
                                      const std::vector<ReferenceLine>& reference,
                                      const ExactnessOptions& options) {
  const auto started = std::chrono::steady_clock::now();
  auto engine = Engine::Load(model_dir, options.engine);
  const ModelSpec& spec = engine->info().spec;
  const auto tok = LoadModelTokenizers(model_dir, spec);
  ExactnessReport r;
  r.device = engine->info().device;
  r.dtype = engine->info().dtype;
  std::vector<std::vector<int>> srcs;
  for (const auto& ref : reference) {
    if (ref.index < 0 || ref.index >= static_cast<int>(sentences.size()))
      throw std::runtime_error("reference line " + std::to_string(ref.index) +
                               " has no sentence (" + std::to_string(sentences.size()) + ")");
    auto ids = tok.source->Encode(sentences[ref.index]);
    auto with_eos = ids;
    with_eos.push_back(spec.ids.eos);
    if (with_eos == ref.source)
      ++r.source_equal;
    else if (r.examples.size() < 5)
      r.examples.push_back("sentence " + std::to_string(ref.index) + " source ids: ours " +
                           Spell(with_eos) + ", reference " + Spell(ref.source));
    srcs.push_back(std::move(ids));
  }
  // transformers' max_new_tokens counts the EOS; a forced EOS comes on top of ours.
  const int limit = spec.decoding.eos_at_max_len ? options.max_new_tokens - 1
                                                 : options.max_new_tokens;
  auto run = [&](int beam) {
    DecodeOptions d;
    d.beam_size = beam;
    d.max_output_tokens = limit;
    d.length_penalty = spec.decoding.length_penalty;
    std::vector<Hypothesis> out;
    for (size_t start = 0; start < srcs.size(); start += options.batch) {
      const size_t end = std::min(srcs.size(), start + static_cast<size_t>(options.batch));
      std::vector<std::vector<int>> chunk(srcs.begin() + start, srcs.begin() + end);
      for (auto& h : engine->Translate(chunk, d)) out.push_back(h.empty() ? Hypothesis{} : h[0]);
    }
    return out;
  };
  const auto greedy = run(1), beam = run(options.beam_size);
  r.sentences = static_cast<int>(reference.size());
  auto compare = [&](const Hypothesis& h, const std::vector<int>& want, const std::string& text,
                     const char* what, int index, int* equal, int* text_equal,
                     std::vector<int>* differ) {
    auto ids = h.tokens;
    if (h.ended_with_eos) ids.push_back(spec.ids.eos);
    const std::string ours = tok.target->Decode(h.tokens);
    if (ids == want) {
      ++*equal;
    } else {
      differ->push_back(index);
      if (r.examples.size() < 8)
        r.examples.push_back("sentence " + std::to_string(index) + " " + what + ": ours " +
                             Spell(ids) + ", reference " + Spell(want));
    }
    if (ours == text) {
      ++*text_equal;
    } else if (ids == want && r.examples.size() < 8) {
      r.examples.push_back("sentence " + std::to_string(index) + " " + what + " text: ours '" +
                           ours + "', reference '" + text + "'");
    }
  };
  for (size_t i = 0; i < reference.size(); ++i) {
    const auto& ref = reference[i];
    compare(greedy[i], ref.greedy, ref.greedy_text, "greedy", ref.index, &r.greedy_equal,
            &r.greedy_text_equal, &r.greedy_differ);
    compare(beam[i], ref.beam, ref.beam_text, "beam", ref.index, &r.beam_equal,
            &r.beam_text_equal, &r.beam_differ);
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return r;
}

}  // namespace mixserve::offline
