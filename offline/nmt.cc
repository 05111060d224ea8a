#include "offline/nmt.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

#include "model/search.h"
#include "text/bleu.h"

namespace mixserve::offline {

torch::Device ResolveDevice(const std::string& flag) {
  torch::Device dev(torch::kCPU);
  if (flag == "auto") {
    dev = torch::cuda::is_available() ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  } else if (flag == "cpu") {
    dev = torch::Device(torch::kCPU);
  } else if (flag.rfind("cuda", 0) == 0) {
    if (!torch::cuda::is_available())
      throw std::runtime_error("--device=" + flag + ": CUDA is not available in this build/machine");
    try {
      dev = torch::Device(flag);
    } catch (const std::exception&) {
      throw std::runtime_error("--device: cannot parse '" + flag + "' (auto, cpu, cuda, cuda:N)");
    }
  } else {
    throw std::runtime_error("--device: unknown device '" + flag + "' (auto, cpu, cuda, cuda:N)");
  }
  if (dev.is_cuda()) {
    // fp32 matrix products (outside autocast, see offline/precision.h) use TF32 tensor cores.
    at::globalContext().setAllowTF32CuBLAS(true);
    at::globalContext().setAllowTF32CuDNN(true);
  }
  return dev;
}

void SetThreads(int threads) {
  if (threads > 0) torch::set_num_threads(threads);
}

BatchTensors MakeBatch(const std::vector<TokenPair>& pairs, const std::vector<int>& rows,
                       torch::Device device, const SpecialIds& ids) {
  const int64_t B = static_cast<int64_t>(rows.size());
  size_t S = 0, T = 0;
  for (int r : rows) {
    S = std::max(S, pairs[r].src.size() + 1);
    T = std::max(T, pairs[r].tgt.size() + 1);
  }
  auto src = torch::full({B, static_cast<int64_t>(S)}, ids.pad, torch::kLong);
  auto tin = torch::full({B, static_cast<int64_t>(T)}, ids.pad, torch::kLong);
  auto tout = torch::full({B, static_cast<int64_t>(T)}, ids.pad, torch::kLong);
  auto s = src.accessor<int64_t, 2>();
  auto ti = tin.accessor<int64_t, 2>();
  auto to = tout.accessor<int64_t, 2>();
  BatchTensors b;
  for (int64_t i = 0; i < B; ++i) {
    const auto& p = pairs[rows[i]];
    for (size_t j = 0; j < p.src.size(); ++j) s[i][j] = p.src[j];
    s[i][p.src.size()] = ids.eos;
    ti[i][0] = ids.decoder_start;
    for (size_t j = 0; j < p.tgt.size(); ++j) {
      ti[i][j + 1] = p.tgt[j];
      to[i][j] = p.tgt[j];
    }
    to[i][p.tgt.size()] = ids.eos;
    b.src_tokens += static_cast<int64_t>(p.src.size()) + 1;
    b.tgt_tokens += static_cast<int64_t>(p.tgt.size()) + 1;
  }
  b.src = src.to(device);
  b.tgt_in = tin.to(device);
  b.tgt_out = tout.to(device);
  return b;
}

torch::Tensor SourceTensor(const std::vector<std::vector<int>>& srcs, int max_len,
                           torch::Device device, const SpecialIds& ids) {
  size_t S = 1;
  for (const auto& x : srcs) S = std::max(S, std::min<size_t>(x.size(), max_len - 1) + 1);
  auto t = torch::full({static_cast<int64_t>(srcs.size()), static_cast<int64_t>(S)},
                       ids.pad, torch::kLong);
  auto a = t.accessor<int64_t, 2>();
  for (size_t i = 0; i < srcs.size(); ++i) {
    const size_t n = std::min<size_t>(srcs[i].size(), max_len - 1);
    for (size_t j = 0; j < n; ++j) a[i][j] = srcs[i][j];
    a[i][n] = ids.eos;
  }
  return t.to(device);
}

LossSums SmoothedCrossEntropy(const torch::Tensor& logits, const torch::Tensor& target,
                              double epsilon, int pad) {
  auto lp = torch::log_softmax(logits.to(torch::kFloat), -1);  // [B, T, V]
  auto mask = target.ne(pad);                                  // [B, T]
  auto nll = -lp.gather(-1, target.unsqueeze(-1)).squeeze(-1);  // [B, T]
  auto smooth = -lp.mean(-1);                                   // [B, T]
  auto per_token = (1.0 - epsilon) * nll + epsilon * smooth;
  LossSums out;
  out.loss = per_token.masked_select(mask).sum();
  out.nll = nll.masked_select(mask).sum().item<double>();
  out.tokens = mask.sum().item<int64_t>();
  return out;
}

torch::Tensor DistillationKl(const torch::Tensor& student_logits,
                             const torch::Tensor& teacher_logits, const torch::Tensor& target,
                             double temperature, int pad) {
  auto ls = torch::log_softmax(student_logits.to(torch::kFloat) / temperature, -1);
  auto lt = torch::log_softmax(teacher_logits.to(torch::kFloat) / temperature, -1);
  auto kl = (lt.exp() * (lt - ls)).sum(-1);  // [B, T]
  auto mask = target.ne(pad);
  return kl.masked_select(mask).sum() * (temperature * temperature);
}

double InverseSqrtLr(int64_t step, double peak, int64_t warmup) {
  step = std::max<int64_t>(step, 1);
  if (warmup <= 0) return peak;
  if (step < warmup) return peak * static_cast<double>(step) / warmup;
  return peak * std::sqrt(static_cast<double>(warmup) / step);
}

void SetLr(torch::optim::Adam& opt, double lr) {
  for (auto& g : opt.param_groups())
    static_cast<torch::optim::AdamOptions&>(g.options()).lr(lr);
}

double ValidationNll(model::Transformer& model, const std::vector<TokenPair>& pairs,
                     int max_tokens, torch::Device device) {
  torch::NoGradGuard ng;
  const bool was_training = model->is_training();
  model->eval();
  double nll = 0;
  int64_t tokens = 0;
  for (const auto& rows : MakeBatches(pairs, max_tokens, false, 0)) {
    auto b = MakeBatch(pairs, rows, device, model->spec().ids);
    auto logits = model->Forward(b.src, b.tgt_in);
    auto l = SmoothedCrossEntropy(logits, b.tgt_out, 0.0, model->spec().ids.pad);
    nll += l.nll;
    tokens += l.tokens;
  }
  model->train(was_training);
  return tokens ? nll / tokens : 0.0;
}

std::vector<std::string> Translate(model::Transformer& model, const ModelTokenizers& tok,
                                   const std::vector<std::string>& sources, int batch_size,
                                   int beam, torch::Device device) {
  torch::NoGradGuard ng;
  const bool was_training = model->is_training();
  model->eval();
  std::vector<std::vector<int>> ids(sources.size());
  for (size_t i = 0; i < sources.size(); ++i) ids[i] = tok.source->Encode(sources[i]);
  std::vector<size_t> order(sources.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return ids[a].size() < ids[b].size(); });
  model::SearchOptions so;
  so.beam_size = beam;
  so.length_penalty = model->spec().decoding.length_penalty;
  std::vector<std::string> out(sources.size());
  for (size_t start = 0; start < order.size(); start += batch_size) {
    const size_t end = std::min(order.size(), start + static_cast<size_t>(batch_size));
    std::vector<std::vector<int>> batch;
    for (size_t k = start; k < end; ++k) batch.push_back(ids[order[k]]);
    auto src = SourceTensor(batch, model->spec().max_len, device, model->spec().ids);
    auto hyps = beam > 1 ? model::BeamSearch(model, src, so) : model::GreedySearch(model, src, so);
    for (size_t k = start; k < end; ++k) {
      const auto& h = hyps[k - start];
      std::vector<int> t;
      if (!h.empty()) t.assign(h[0].tokens.begin(), h[0].tokens.end());
      out[order[k]] = tok.target->Decode(t);
    }
  }
  model->train(was_training);
  return out;
}

double GreedyBleu(model::Transformer& model, const ModelTokenizers& tok,
                  const std::vector<std::string>& sources, const std::vector<std::string>& refs,
                  int batch_size, torch::Device device) {
  auto hyps = Translate(model, tok, sources, batch_size, 1, device);
  return CorpusBleu(hyps, refs).score;
}

}  // namespace mixserve::offline
