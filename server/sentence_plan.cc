#include "server/sentence_plan.h"

#include <algorithm>

#include "text/sentences.h"

namespace mixserve {

size_t CallPlan::jobs() const {
  size_t n = 0;
  for (const auto& s : sentences) n += s.pieces.size();
  return n;
}

grpc::Status PlanCall(const std::vector<std::string>& texts, const v1::DecodingOptions& o,
                      const Variant& v, const std::string& label, bool document,
                      CallPlan* plan) {
  const int beam = o.beam_size() > 0 ? o.beam_size() : v.serving.default_beam_size();
  const int n_best = std::max(1, o.n_best());
  if (n_best > beam)
    return {grpc::StatusCode::INVALID_ARGUMENT,
            "options.n_best " + std::to_string(n_best) + " is above the beam size " +
                std::to_string(beam) + " of variant " + v.id.ToString()};
  DecodeOptions& d = plan->options;
  d.beam_size = beam;
  d.n_best = n_best;
  d.max_output_tokens = o.max_output_tokens() > 0
                            ? std::min(o.max_output_tokens(), v.max_output_tokens)
                            : v.max_output_tokens;
  // Unset: the model's own (model.pbtxt decoding.length_penalty; 1.0 unless imported with
  // another).
  d.length_penalty =
      o.length_penalty() > 0 ? o.length_penalty() : v.spec.decoding.length_penalty;
  plan->long_options = d;
  plan->long_options.max_output_tokens =
      o.max_output_tokens() > 0 ? std::min(o.max_output_tokens(), v.long_output_tokens)
                                : v.long_output_tokens;
  plan->sentences.clear();
  plan->sentences.reserve(texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::string what = label == "text" ? label : label + "[" + std::to_string(i) + "]";
    SentencePlan p;
    std::vector<int> ids = v.tokenizer->Encode(texts[i]);
    p.input_tokens = static_cast<int>(ids.size());
    if (ids.empty()) {
      if (!document) return {grpc::StatusCode::INVALID_ARGUMENT, what + " yields no tokens"};
      plan->sentences.push_back(std::move(p));
      continue;
    }
    const int n = p.input_tokens;
    if (v.max_input_tokens > 0 && n > v.max_input_tokens)
      return {grpc::StatusCode::INVALID_ARGUMENT,
              what + " is " + std::to_string(n) + " tokens after tokenization; variant " +
                  v.id.ToString() + " accepts at most " + std::to_string(v.max_input_tokens) +
                  " (its max_input_tokens)"};
    if (n <= v.whole_tokens) {
      p.pieces.push_back(std::move(ids));
    } else if (v.long_engine && n <= v.long_tokens) {
      p.lane = 1;
      p.pieces.push_back(std::move(ids));
    } else {
      const auto count = [&](const std::string& t) { return v.tokenizer->Encode(t).size(); };
      for (const auto& piece :
           CutSentence(texts[i], static_cast<size_t>(v.piece_tokens), count)) {
        std::vector<int> piece_ids = v.tokenizer->Encode(piece);
        if (piece_ids.empty()) continue;
        // A piece of one character that alone is above the budget (tokenizers that spell
        // out unknown characters byte by byte): the model's own limit is the last guard.
        if (static_cast<int>(piece_ids.size()) > v.max_output_tokens)
          return {grpc::StatusCode::INVALID_ARGUMENT,
                  what + " holds a word of " + std::to_string(piece_ids.size()) +
                      " tokens that cannot be cut to the " +
                      std::to_string(v.max_output_tokens) + " tokens variant " +
                      v.id.ToString() + " takes"};
        p.pieces.push_back(std::move(piece_ids));
      }
    }
    plan->sentences.push_back(std::move(p));
  }
  return grpc::Status::OK;
}

}  // namespace mixserve
