// Batched greedy and beam search over a Transformer's incremental decoder, with continuous
// batching: sentences join (Add) and leave (Remove, or on finishing) between steps, and
// finished rows are dropped from the decoder state (at once, or later: dead_rows below).
//
// The model's spec brings the special ids (decoding starts from ids.decoder_start, EOS is
// ids.eos) and the decoding rules (DecodingSpec): the beam rule, below, and eos_at_max_len.
//
// Scores: a hypothesis's log-probability is the sum of the log-probabilities of its tokens,
// EOS included. Hypotheses are ranked by log_prob / lp(len), where len counts the generated
// tokens including EOS and alpha = length_penalty (alpha 0 ranks by raw log-probability).
// Length: a hypothesis holds at most max_output_tokens (M) tokens without EOS. One that
// reaches M without EOS is finished as it is (no EOS appended, len = M), or, with
// eos_at_max_len, takes EOS as its last token with log-probability 0 (every other token is
// impossible there: transformers' forced_eos_token_id), so that len = M + 1 and its
// log_prob is unchanged. Greedy search picks the most probable token (argmax) under both
// rules.
//
// Beam rule "gnmt" (the default): lp(len) = ((5 + len) / 6) ^ alpha. Beam search keeps
// beam_size live hypotheses per sentence. Each step takes the best 2 * beam_size extensions;
// an EOS extension ranked within the first beam_size finishes a hypothesis, the best non-EOS
// extensions stay live. A sentence ends when beam_size hypotheses have finished or at max
// length (its live hypotheses are then finished too); the n_best best by normalised score
// are returned. Beam size 1 picks the same tokens as greedy.
//
// Beam rule "huggingface" (transformers' generate, num_beams = beam_size = k,
// early_stopping=False): lp(len) = len ^ alpha. Each sentence keeps k live hypotheses
// (raw scores) and a list of at most k finished ones (normalised scores). A step from t
// generated tokens takes the best 2k extensions; among the first k of them every EOS
// extension is finished with score raw / (t + 1)^alpha, and at the last step the length
// limit allows (t + 1 = M; with eos_at_max_len the step after it, where only EOS is
// possible) every one of the first k is; the finished list keeps the best k. The best k
// non-EOS extensions stay live. After the step the sentence is done once the list holds k
// hypotheses and the best live raw score / (t + 1)^alpha is no better than the worst
// finished score, or at the length limit; its n_best best finished hypotheses are returned.
// Beam size 1 picks the same tokens as greedy here too.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "model/transformer.h"

namespace mixserve::model {

struct SearchOptions {
  enum class Algorithm { kAuto, kGreedy, kBeam };
  Algorithm algorithm = Algorithm::kAuto;  // kAuto: greedy when beam_size == 1
  int beam_size = 1;
  int max_output_tokens = 0;  // without EOS; 0 or more than max_len - 2: max_len - 2
  float length_penalty = 1.0f;  // alpha of the length penalty (the model's beam rule)
  int n_best = 1;               // <= beam_size
  // Greedy search with continuous batching: a finished or removed sentence's row may stay in
  // the decoder state as a dead row (fed EOS, its output ignored) until the live rows fit a
  // smaller bucket of the step graphs (without graphs: until more than a quarter of the rows
  // are dead), a joining group would need a larger one, or a dead row nears max_len; a
  // joining sentence takes a dead row's place. Removing a row copies every state tensor, and
  // a graphed step copies them again into its inputs, so dropping rows at once costs one or
  // two copies of the whole state at almost every step of a busy server. kAuto: keep them
  // when the model's step graphs are enabled (model/step_graphs.h) and on the CPU. Results do
  // not depend on it.
  enum class DeadRows { kAuto, kKeep, kDrop };
  DeadRows dead_rows = DeadRows::kAuto;
  // Greedy search with dead rows kept: keep one step in flight. Each step launches the next
  // one from its best tokens on the device before its own results are read, so that the
  // device does not wait while the host reads them, updates the hypotheses and the caller
  // (the server's scheduler) does its work between steps. A sentence that finished costs its
  // row one more step (a dead row's, as above); Add and Remove first wait for the step in
  // flight and take in its results (returned by the next Step). kAuto: on a CUDA model with
  // step graphs enabled (on the CPU nothing runs while the host works). Results do not
  // depend on it.
  enum class Lookahead { kAuto, kOn, kOff };
  Lookahead lookahead = Lookahead::kAuto;
};

// Throws std::invalid_argument naming the bad option.
void ValidateSearchOptions(const SearchOptions& options);

enum class BeamRule { kGnmt, kHuggingFace };
// DecodingSpec::beam_rule; throws std::invalid_argument for an unknown name.
BeamRule BeamRuleOf(const ModelSpec& spec);
// lp(len) of `rule` (above): what a hypothesis's log_prob is divided by.
float LengthPenalty(int len, float alpha, BeamRule rule = BeamRule::kGnmt);

struct SearchHypothesis {
  std::vector<int64_t> tokens;  // without the decoder start and EOS
  float log_prob = 0;           // sum over tokens, EOS included when generated
  float score = 0;              // log_prob / LengthPenalty(len, alpha, rule)
  bool ended_with_eos = false;
};

struct SearchResult {
  uint64_t id = 0;
  std::vector<SearchHypothesis> hyps;  // best first, n_best of them
};

// The continuous-batching search. Not thread-safe: one thread at a time.
class IncrementalSearch {
 public:
  IncrementalSearch(Transformer model, const SearchOptions& options);
  ~IncrementalSearch();
  IncrementalSearch(const IncrementalSearch&) = delete;
  IncrementalSearch& operator=(const IncrementalSearch&) = delete;

  // Adds sentences: `src` [B, S] as for Transformer::Encode, one row per id, in order. Ids
  // must be new.
  void Add(const std::vector<uint64_t>& ids, const torch::Tensor& src);
  // Drops a sentence; false when it is not active.
  bool Remove(uint64_t id);
  // Advances every active sentence by one token; returns the sentences that finished (with
  // the lookahead also those that finished in a step taken in by Add or Remove).
  std::vector<SearchResult> Step();
  size_t active() const;  // sentences not yet returned by Step
  int64_t rows() const;  // decoder-state rows (sentences x live hypotheses, dead rows)
  int64_t reused_rows() const;  // sentences that joined into dead rows so far
  int64_t steps_ahead() const;  // steps launched before the previous one's results were read
  bool beam() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Static batch: encodes `src` ([B, S], padded, ending with EOS) and searches; results in row
// order.
std::vector<std::vector<SearchHypothesis>> Search(Transformer& model, const torch::Tensor& src,
                                                  const SearchOptions& options);
// The same with the algorithm forced (options.algorithm is ignored).
std::vector<std::vector<SearchHypothesis>> GreedySearch(Transformer& model,
                                                        const torch::Tensor& src,
                                                        const SearchOptions& options = {});
std::vector<std::vector<SearchHypothesis>> BeamSearch(Transformer& model,
                                                      const torch::Tensor& src,
                                                      const SearchOptions& options);

}  // namespace mixserve::model
