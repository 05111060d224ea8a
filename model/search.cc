#include "model/search.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

namespace mixserve::model {
namespace {

std::string ShapeOf(const torch::Tensor& t) {
  std::string out = "[";
  for (int64_t d = 0; d < t.dim(); ++d) out += (d ? ", " : "") + std::to_string(t.size(d));
  return out + "]";
}

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
}  // namespace

void ValidateSearchOptions(const SearchOptions& o) {
  if (o.beam_size < 1)
    throw std::invalid_argument("beam_size must be >= 1, got " + std::to_string(o.beam_size));
  if (o.n_best < 1)
    throw std::invalid_argument("n_best must be >= 1, got " + std::to_string(o.n_best));
  if (o.max_output_tokens < 0)
    throw std::invalid_argument("max_output_tokens must be >= 0, got " +
                                std::to_string(o.max_output_tokens));
  if (!std::isfinite(o.length_penalty) || o.length_penalty < 0)
    throw std::invalid_argument("length_penalty must be a finite number >= 0");
  const bool greedy = o.algorithm == SearchOptions::Algorithm::kGreedy ||
                      (o.algorithm == SearchOptions::Algorithm::kAuto && o.beam_size == 1);
  const int width = greedy ? 1 : o.beam_size;
  if (o.n_best > width)
    throw std::invalid_argument("n_best (" + std::to_string(o.n_best) + ") exceeds " +
                                (greedy ? std::string("1 (greedy search)")
                                        : "beam_size (" + std::to_string(width) + ")"));
}

BeamRule BeamRuleOf(const ModelSpec& spec) {
  const std::string& rule = spec.decoding.beam_rule;
  if (rule == "gnmt") return BeamRule::kGnmt;
  if (rule == "huggingface") return BeamRule::kHuggingFace;
  throw std::invalid_argument("decoding.beam_rule must be \"gnmt\" or \"huggingface\", got \"" +
                              rule + "\"");
}

float LengthPenalty(int len, float alpha, BeamRule rule) {
  if (alpha == 0) return 1.0f;
  if (rule == BeamRule::kGnmt) return std::pow((5.0f + static_cast<float>(len)) / 6.0f, alpha);
  // transformers divides an fp32 score by Python's float len ** alpha (a double).
  return static_cast<float>(std::pow(static_cast<double>(len), static_cast<double>(alpha)));
}

struct IncrementalSearch::Impl {
  struct Hyp {
    std::vector<int64_t> tokens;
    float log_prob = 0;
  };
  struct Sentence {
    uint64_t id;
    int max_out;
    std::vector<Hyp> live;  // `width` rows in the decoder state, in row order
    std::vector<SearchHypothesis> finished;  // huggingface rule: best first, at most `width`
    bool dead = false;      // answered or removed; its row waits to be dropped (keep_dead)
    int generated = 0;      // tokens of the live hypotheses (beam search)
  };

  Transformer model{nullptr};
  SearchOptions opt;
  BeamRule rule = BeamRule::kGnmt;
  bool eos_at_max_len = false;  // DecodingSpec::eos_at_max_len
  int64_t start = 0, eos = 0;   // the model's decoder start and EOS ids
  bool beam = false;
  int width = 1;  // rows per sentence
  std::unique_ptr<DecoderState> state;
  std::vector<Sentence> sentences;  // sentence i owns rows [i * width, (i + 1) * width)
  bool keep_dead = false;           // SearchOptions::dead_rows resolved (greedy only)
  int64_t dead = 0;                 // dead sentences among `sentences`
  int64_t reused = 0;               // sentences that joined into dead rows
  bool lookahead = false;           // SearchOptions::lookahead resolved (needs keep_dead)
  std::optional<TransformerImpl::LaunchedStep> ahead;  // the step in flight
  std::vector<SearchResult> early;  // finished in a step taken in before Step read it
  int64_t steps_ahead = 0;

  // Whether to drop the dead rows: when the live ones (plus `joining` sentences about to be
  // appended) fit a smaller bucket than all of them would, or when a dead row has reached
  // max_len (its position keeps growing; a row there cannot take another step).
  bool ShouldDrop(int64_t joining) const {
    if (dead == 0) return false;
    const int64_t all = static_cast<int64_t>(sentences.size()) + joining;
    // (A lone dead row stays: an idle search's next sentence takes its place.)
    if (model->step_graphs_enabled()) {
      if (StepGraphs::Bucket(all - dead) < StepGraphs::Bucket(all)) return true;
    } else if (4 * dead > all && all > 1) {  // without graphs a dead row costs its share of each step
      return true;
    }
    return state->positions().max().item<int64_t>() >= model->spec().max_len;
  }

  void DropDeadRows(int64_t joining = 0) {
    if (!ShouldDrop(joining)) return;
    std::vector<int64_t> index;
    std::vector<Sentence> kept;
    for (size_t i = 0; i < sentences.size(); ++i) {
      if (sentences[i].dead) continue;
      index.push_back(static_cast<int64_t>(i));
      kept.push_back(std::move(sentences[i]));
    }
    dead = 0;
    Compact(index, kept);
  }

  SearchHypothesis Finish(const Hyp& h, bool with_eos) const {
    SearchHypothesis r;
    r.tokens = h.tokens;
    r.log_prob = h.log_prob;
    r.ended_with_eos = with_eos;
    const int len = static_cast<int>(h.tokens.size()) + (with_eos ? 1 : 0);
    r.score = h.log_prob / LengthPenalty(len, opt.length_penalty, rule);
    return r;
  }

  SearchResult Result(Sentence& s) const {
    auto& f = s.finished;
    std::stable_sort(f.begin(), f.end(), [](const SearchHypothesis& a,
                                            const SearchHypothesis& b) {
      return a.score > b.score;
    });
    if (static_cast<int>(f.size()) > opt.n_best) f.resize(opt.n_best);
    return SearchResult{s.id, std::move(f)};
  }

  // On the CPU: DecodeStep moves them (one copy, straight into a graph's input).
  torch::Tensor NextTokens() const {
    std::vector<int64_t> t;
    t.reserve(sentences.size() * width);
    for (const auto& s : sentences)
      for (const auto& h : s.live)
        t.push_back(s.dead ? eos : h.tokens.empty() ? start : h.tokens.back());
    return torch::tensor(t, torch::kLong);
  }

  // Keeps the rows `index` and the sentences not marked done.
  void Compact(const std::vector<int64_t>& index, std::vector<Sentence>& kept) {
    sentences = std::move(kept);
    const int64_t n = static_cast<int64_t>(index.size());
    bool identity = n == state->rows();
    for (int64_t i = 0; identity && i < n; ++i) identity = index[i] == i;
    if (!identity) state->Select(torch::tensor(index, torch::kLong));
  }

  // Takes in a greedy step's results: each live row's token, the sentences that finished.
  std::vector<SearchResult> TakeGreedy(const TransformerImpl::Best& best) {
    auto v = best.log_probs.accessor<float, 1>();
    auto t = best.tokens.accessor<int64_t, 1>();
    std::vector<SearchResult> done;
    std::vector<Sentence> kept;
    std::vector<int64_t> index;
    for (size_t i = 0; i < sentences.size(); ++i) {
      auto& s = sentences[i];
      if (s.dead) {
        index.push_back(static_cast<int64_t>(i));
        kept.push_back(std::move(s));
        continue;
      }
      auto& h = s.live[0];
      h.log_prob += v[i];
      if (t[i] == eos) {
        s.finished.push_back(Finish(h, true));
      } else {
        h.tokens.push_back(t[i]);
        // With eos_at_max_len the next step could only take EOS, at log-probability 0: it is
        // appended here, without a decoder step.
        if (static_cast<int>(h.tokens.size()) >= s.max_out)
          s.finished.push_back(Finish(h, eos_at_max_len));
      }
      if (!s.finished.empty()) {
        done.push_back(Result(s));
        if (!keep_dead) continue;
        s.dead = true;
        ++dead;
      }
      index.push_back(static_cast<int64_t>(i));
      kept.push_back(std::move(s));
    }
    Compact(index, kept);
    return done;
  }

  // Waits for the step in flight, if any, and takes in its results (for the next Step).
  void Settle() {
    if (!ahead) return;
    auto best = ahead->Wait();
    ahead.reset();
    for (auto& r : TakeGreedy(best)) early.push_back(std::move(r));
  }

  std::vector<SearchResult> StepGreedy() {
    auto cur = ahead ? std::move(*ahead) : model->LaunchGreedyStep(NextTokens(), *state);
    ahead.reset();
    // The next step, from this one's best tokens on the device, before reading them here.
    if (lookahead && state->positions().max().item<int64_t>() < model->spec().max_len) {
      ahead = model->LaunchGreedyStep(cur.next_tokens(), *state);
      ++steps_ahead;
    }
    auto done = TakeGreedy(cur.Wait());
    if (ahead && ShouldDrop(0)) Settle();  // dropping rows changes the rows it steps
    DropDeadRows();
    if (!early.empty()) {
      done.insert(done.begin(), std::make_move_iterator(early.begin()),
                  std::make_move_iterator(early.end()));
      early.clear();
    }
    return done;
  }

  // After a beam step under the gnmt rule: whether sentence `s` has ended (finishing its live
  // hypotheses at the length limit).
  bool GnmtEnds(Sentence& s) const {
    if (static_cast<int>(s.finished.size()) >= width) return true;
    if (s.live[0].log_prob == kNegInf) return true;  // nothing left alive
    if (s.generated < s.max_out) return false;
    for (const auto& h : s.live)
      if (h.log_prob != kNegInf) s.finished.push_back(Finish(h, eos_at_max_len));
    return true;
  }

  // Keeps the best `width` of `s`'s finished hypotheses and `fresh` (old ones first among
  // equal scores).
  void KeepBest(Sentence& s, std::vector<SearchHypothesis>& fresh) const {
    auto& f = s.finished;
    f.insert(f.end(), std::make_move_iterator(fresh.begin()), std::make_move_iterator(fresh.end()));
    fresh.clear();
    std::stable_sort(f.begin(), f.end(), [](const SearchHypothesis& a,
                                            const SearchHypothesis& b) {
      return a.score > b.score;
    });
    if (static_cast<int>(f.size()) > width) f.resize(width);
  }

  // After a beam step under the huggingface rule, given the hypotheses it finished: whether
  // sentence `s` has ended. `last`: the length limit's step.
  bool HuggingFaceEnds(Sentence& s, std::vector<SearchHypothesis>& fresh, bool last) const {
    KeepBest(s, fresh);
    if (last) return true;
    const float best = s.live[0].log_prob;
    if (best == kNegInf) return true;  // nothing left alive
    // transformers' early-stop heuristic: no live hypothesis, scored at its current length,
    // beats the worst of `width` finished ones.
    if (static_cast<int>(s.finished.size()) >= width &&
        !(best / LengthPenalty(s.generated, opt.length_penalty, rule) > s.finished.back().score))
      return true;
    if (s.generated < s.max_out) return false;
    // eos_at_max_len: the next step could only take EOS, at log-probability 0, so each live
    // hypothesis (at most `width`: all among the step's first `width`) is finished with it,
    // without a decoder step.
    for (const auto& h : s.live)
      if (h.log_prob != kNegInf) fresh.push_back(Finish(h, true));
    KeepBest(s, fresh);
    return true;
  }

  std::vector<SearchResult> StepBeam(const torch::Tensor& logp) {
    const int64_t n = static_cast<int64_t>(sentences.size());
    const int64_t v = logp.size(1);
    std::vector<float> sc;
    for (const auto& s : sentences)
      for (const auto& h : s.live) sc.push_back(h.log_prob);
    auto scores = torch::tensor(sc, torch::kFloat).to(logp.device()).view({n, width, 1});
    auto cand = (logp.view({n, width, v}) + scores).view({n, width * v});
    const int64_t k2 = std::min<int64_t>(2 * width, width * v);
    auto top = cand.topk(k2, -1);
    auto top_s = std::get<0>(top).to(torch::kCPU);
    auto top_i = std::get<1>(top).to(torch::kCPU);
    auto ts = top_s.accessor<float, 2>();
    auto ti = top_i.accessor<int64_t, 2>();

    std::vector<SearchResult> done;
    std::vector<Sentence> kept;
    std::vector<int64_t> index;
    const bool hf = rule == BeamRule::kHuggingFace;
    for (int64_t i = 0; i < n; ++i) {
      auto& s = sentences[i];
      ++s.generated;
      // The huggingface rule's last step (without eos_at_max_len): each of the first `width`
      // extensions is finished, EOS or not.
      const bool last = hf && !eos_at_max_len && s.generated >= s.max_out;
      std::vector<Hyp> live;
      std::vector<int64_t> origin;
      std::vector<SearchHypothesis> fresh;  // finished in this step (huggingface rule)
      auto& finished = hf ? fresh : s.finished;
      for (int64_t j = 0; j < k2; ++j) {
        const float score = ts[i][j];
        if (score == kNegInf) break;
        const int64_t beam = ti[i][j] / v, tok = ti[i][j] % v;
        const Hyp& parent = s.live[beam];
        if (tok == eos) {
          // Only an EOS among the best `width` extensions finishes a hypothesis.
          if (j < width) finished.push_back(Finish(Hyp{parent.tokens, score}, true));
          continue;
        }
        if (last) {
          if (j >= width) break;
          Hyp h{parent.tokens, score};
          h.tokens.push_back(tok);
          finished.push_back(Finish(h, false));
          continue;
        }
        if (static_cast<int>(live.size()) < width) {
          Hyp h{parent.tokens, score};
          h.tokens.push_back(tok);
          live.push_back(std::move(h));
          origin.push_back(i * width + beam);
        }
      }
      // Too few extensions (tiny vocabularies): dead rows keep the row count.
      while (static_cast<int>(live.size()) < width) {
        live.push_back(Hyp{{}, kNegInf});
        origin.push_back(i * width);
      }
      s.live = std::move(live);
      const bool end = hf ? HuggingFaceEnds(s, fresh, last) : GnmtEnds(s);
      if (end) {
        done.push_back(Result(s));
      } else {
        index.insert(index.end(), origin.begin(), origin.end());
        kept.push_back(std::move(s));
      }
    }
    Compact(index, kept);
    return done;
  }
};

IncrementalSearch::IncrementalSearch(Transformer model, const SearchOptions& options)
    : impl_(std::make_unique<Impl>()) {
  ValidateSearchOptions(options);
  impl_->model = std::move(model);
  impl_->opt = options;
  const ModelSpec& spec = impl_->model->spec();
  impl_->rule = BeamRuleOf(spec);
  impl_->eos_at_max_len = spec.decoding.eos_at_max_len;
  impl_->start = spec.ids.decoder_start;
  impl_->eos = spec.ids.eos;
  impl_->beam = options.algorithm == SearchOptions::Algorithm::kBeam ||
                (options.algorithm == SearchOptions::Algorithm::kAuto && options.beam_size > 1);
  impl_->width = impl_->beam ? options.beam_size : 1;
  using D = SearchOptions::DeadRows;
  impl_->keep_dead =
      !impl_->beam && (options.dead_rows == D::kKeep ||
                       (options.dead_rows == D::kAuto && (impl_->model->step_graphs_enabled() ||
                                                          impl_->model->device().is_cpu())));
  using L = SearchOptions::Lookahead;
  impl_->lookahead = impl_->keep_dead && (options.lookahead == L::kOn ||
                                          (options.lookahead == L::kAuto &&
                                           impl_->model->step_graphs_enabled() &&
                                           impl_->model->device().is_cuda()));
}

IncrementalSearch::~IncrementalSearch() = default;

void IncrementalSearch::Add(const std::vector<uint64_t>& ids, const torch::Tensor& src) {
  auto& I = *impl_;
  if (src.dim() != 2 || static_cast<int64_t>(ids.size()) != src.size(0))
    throw std::invalid_argument("IncrementalSearch::Add: " + std::to_string(ids.size()) +
                                " ids for a source of shape " + ShapeOf(src));
  for (uint64_t id : ids)
    for (const auto& s : I.sentences)
      if (s.id == id && !s.dead)
        throw std::invalid_argument("IncrementalSearch::Add: id " + std::to_string(id) +
                                    " is already active");
  if (ids.empty()) return;
  const int max_len = I.model->spec().max_len;
  int max_out = max_len - 2;
  if (I.opt.max_output_tokens > 0) max_out = std::min(max_out, I.opt.max_output_tokens);
  I.Settle();  // the rows change: nothing may be in flight
  if (!I.state) I.state = I.model->EmptyDecoder();
  auto sentence = [&](uint64_t id) {
    Impl::Sentence s{id, max_out, {}, {}};
    s.live.assign(I.width, Impl::Hyp{{}, kNegInf});
    s.live[0].log_prob = 0;  // one start hypothesis; the others are dead until expanded
    return s;
  };
  const int64_t n = static_cast<int64_t>(ids.size());
  if (I.dead >= n) {
    // Enough dead rows (greedy: one row per sentence): the new sentences take their places
    // in the state, which keeps its memory (no copy of the whole state, here or into the
    // step graph's inputs).
    std::vector<int64_t> slots;
    for (size_t i = 0; i < I.sentences.size() && static_cast<int64_t>(slots.size()) < n; ++i)
      if (I.sentences[i].dead) slots.push_back(static_cast<int64_t>(i));
    auto declined = I.model->ReplaceRowsWithSources(*I.state, slots, src);
    if (!declined) {
      for (int64_t k = 0; k < n; ++k) I.sentences[slots[k]] = sentence(ids[k]);
      I.dead -= n;
      I.reused += n;
      return;
    }
    I.DropDeadRows(n);
    I.state->Append(*declined);
  } else {
    I.DropDeadRows(n);
    I.model->AppendSources(*I.state, src, I.width);  // each sentence once per beam row
  }
  for (uint64_t id : ids) I.sentences.push_back(sentence(id));
}

bool IncrementalSearch::Remove(uint64_t id) {
  auto& I = *impl_;
  I.Settle();
  // Finished in the step just taken in: its result is not returned.
  auto e = std::find_if(I.early.begin(), I.early.end(),
                        [id](const SearchResult& r) { return r.id == id; });
  if (e != I.early.end()) {
    I.early.erase(e);
    return true;
  }
  auto it = std::find_if(I.sentences.begin(), I.sentences.end(),
                         [id](const Impl::Sentence& s) { return s.id == id && !s.dead; });
  if (it == I.sentences.end()) return false;
  if (I.keep_dead) {
    it->dead = true;
    ++I.dead;
    I.DropDeadRows();
    return true;
  }
  std::vector<int64_t> index;
  std::vector<Impl::Sentence> kept;
  for (size_t i = 0; i < I.sentences.size(); ++i) {
    if (&I.sentences[i] == &*it) continue;
    for (int r = 0; r < I.width; ++r) index.push_back(static_cast<int64_t>(i) * I.width + r);
    kept.push_back(std::move(I.sentences[i]));
  }
  I.Compact(index, kept);
  return true;
}

std::vector<SearchResult> IncrementalSearch::Step() {
  auto& I = *impl_;
  if (I.sentences.size() == static_cast<size_t>(I.dead)) return std::exchange(I.early, {});
  if (!I.beam) return I.StepGreedy();
  return I.StepBeam(I.model->DecodeStep(I.NextTokens(), *I.state));
}

size_t IncrementalSearch::active() const {
  return impl_->sentences.size() - static_cast<size_t>(impl_->dead) + impl_->early.size();
}
int64_t IncrementalSearch::rows() const { return impl_->state ? impl_->state->rows() : 0; }
int64_t IncrementalSearch::reused_rows() const { return impl_->reused; }
int64_t IncrementalSearch::steps_ahead() const { return impl_->steps_ahead; }
bool IncrementalSearch::beam() const { return impl_->beam; }

std::vector<std::vector<SearchHypothesis>> Search(Transformer& model, const torch::Tensor& src,
                                                  const SearchOptions& options) {
  IncrementalSearch search(model, options);
  const int64_t b = src.size(0);
  std::vector<uint64_t> ids(b);
  for (int64_t i = 0; i < b; ++i) ids[i] = static_cast<uint64_t>(i);
  search.Add(ids, src);
  std::vector<std::vector<SearchHypothesis>> out(b);
  while (search.active() > 0)
    for (auto& r : search.Step()) out[r.id] = std::move(r.hyps);
  return out;
}

std::vector<std::vector<SearchHypothesis>> GreedySearch(Transformer& model,
                                                        const torch::Tensor& src,
                                                        const SearchOptions& options) {
  SearchOptions o = options;
  o.algorithm = SearchOptions::Algorithm::kGreedy;
  return Search(model, src, o);
}

std::vector<std::vector<SearchHypothesis>> BeamSearch(Transformer& model,
                                                      const torch::Tensor& src,
                                                      const SearchOptions& options) {
  SearchOptions o = options;
  o.algorithm = SearchOptions::Algorithm::kBeam;
  return Search(model, src, o);
}

}  // namespace mixserve::model
