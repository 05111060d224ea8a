// Torch-side helpers shared by train, finetune, distill and export: devices, batch tensors,
// losses, the learning-rate schedule, greedy translation and BLEU of an in-memory model.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "model/transformer.h"
#include "offline/batching.h"
#include "config/model_tokenizers.h"
#include "text/tokenizer.h"

namespace mixserve::offline {

// "auto" picks CUDA when available. On CUDA, fp32 matmuls use TF32 (see docs/offline.md).
torch::Device ResolveDevice(const std::string& flag);
void SetThreads(int threads);

struct BatchTensors {
  torch::Tensor src;      // [B, S] ids + EOS, padded
  torch::Tensor tgt_in;   // [B, T] BOS + ids, padded
  torch::Tensor tgt_out;  // [B, T] ids + EOS, padded
  int64_t src_tokens = 0, tgt_tokens = 0;  // real tokens (with EOS)
};
BatchTensors MakeBatch(const std::vector<TokenPair>& pairs, const std::vector<int>& rows,
                       torch::Device device, const SpecialIds& ids = {});
// Sources only: ids truncated to max_len - 1, EOS appended, padded.
torch::Tensor SourceTensor(const std::vector<std::vector<int>>& srcs, int max_len,
                           torch::Device device, const SpecialIds& ids = {});

// Label-smoothed cross-entropy summed over real target tokens:
//   loss_t = (1 - eps) * (-log p(y_t)) + eps * mean_v(-log p(v))
// Also returns the plain negative log-likelihood sum (for perplexity).
struct LossSums {
  torch::Tensor loss;  // scalar, differentiable
  double nll = 0;
  int64_t tokens = 0;
};
LossSums SmoothedCrossEntropy(const torch::Tensor& logits, const torch::Tensor& target,
                              double epsilon, int pad = SpecialIds{}.pad);

// Knowledge distillation term summed over real tokens: T^2 * KL(p_teacher^T || p_student^T).
torch::Tensor DistillationKl(const torch::Tensor& student_logits,
                             const torch::Tensor& teacher_logits, const torch::Tensor& target,
                             double temperature, int pad = SpecialIds{}.pad);

// Linear warmup to `peak` over `warmup` steps, then peak * sqrt(warmup / step).
double InverseSqrtLr(int64_t step, double peak, int64_t warmup);
void SetLr(torch::optim::Adam& opt, double lr);

// Mean per-token NLL over batches of `pairs` (eval mode, no grad).
double ValidationNll(model::Transformer& model, const std::vector<TokenPair>& pairs,
                     int max_tokens, torch::Device device);

// Greedy (beam 1) or beam translation of raw sentences through the search module; results
// detokenised, in input order. Sentences are decoded in length-sorted batches.
std::vector<std::string> Translate(model::Transformer& model, const ModelTokenizers& tok,
                                   const std::vector<std::string>& sources, int batch_size,
                                   int beam, torch::Device device);

// Corpus BLEU (sacreBLEU defaults) of greedy translations against raw references.
double GreedyBleu(model::Transformer& model, const ModelTokenizers& tok,
                  const std::vector<std::string>& sources, const std::vector<std::string>& refs,
                  int batch_size, torch::Device device);

}  // namespace mixserve::offline
