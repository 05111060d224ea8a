// distill: "Rethinking Attention" block-wise distillation. The teacher is frozen and run over
// training batches; a tap records every replaced site's activations on the fly, and one
// student mixer per site is fitted to reproduce the teacher's output there (masked MSE), all
// sites in one pass. The pair depends on the student's role:
//   kMixer (alr, aslr, aft_*, ...): mixer_in -> mixer_out (input already normalised)
//   kBlock (alrr):                  block_in -> block_out (residual and norm included)
//   kLayer (elr):                   layer_in -> layer_out (whole encoder layer)
// The students then replace the teacher's mixers (ReplaceMixer) and the result is saved as a
// checkpoint.
#include <cmath>
#include <filesystem>
#include <set>

#include "model/checkpoint.h"
#include "offline/commands.h"
#include "offline/common.h"
#include "offline/nmt.h"
#include "offline/precision.h"
#include "offline/progress.h"

namespace mixserve::offline {

namespace {

struct Student {
  Site site;
  int layer;
  MixerSpec spec;
  std::shared_ptr<model::TokenMixer> mixer;
  std::string name() const { return std::string(SiteName(site)) + "." + std::to_string(layer); }
};

// The student's input and target for one recorded site.
void Pair(const model::SiteActivations& a, model::MixerRole role, model::MixerInput* in,
          torch::Tensor* target) {
  *in = a.mixer_in;
  switch (role) {
    case model::MixerRole::kMixer:
      *target = a.mixer_out;
      break;
    case model::MixerRole::kBlock:
      in->x = a.block_in;
      *target = a.block_out;
      break;
    case model::MixerRole::kLayer:
      in->x = a.layer_in;
      *target = a.layer_out;
      break;
  }
}

// Mean squared error over real positions (mask [B, T] true = real) and features.
torch::Tensor MaskedMse(const torch::Tensor& pred, const torch::Tensor& target,
                        const torch::Tensor& mask) {
  // In fp32 also under autocast (low-precision activations, fp32 error).
  auto m = mask.unsqueeze(-1).to(torch::kFloat);
  auto se = (pred.to(torch::kFloat) - target.to(torch::kFloat)).pow(2) * m;
  return se.sum() / (m.sum() * pred.size(-1)).clamp_min(1);
}

struct MseReport {
  std::vector<double> block_mse;  // per student
  std::vector<double> target_ms;  // mean square of the teacher's block output (scale)
  double mean() const {
    double s = 0;
    for (double v : block_mse) s += v;
    return block_mse.empty() ? 0 : s / block_mse.size();
  }
};

// Block-level MSE of every student against the teacher on `pairs` (eval mode, no grad):
// the student's block output (block_in + mixer output for kMixer students) vs the teacher's.
MseReport EvalMse(model::Transformer& teacher, std::vector<Student>& students,
                  const std::vector<TokenPair>& pairs, int max_tokens, torch::Device device) {
  torch::NoGradGuard ng;
  std::vector<double> se(students.size(), 0), sq(students.size(), 0), n(students.size(), 0);
  std::map<std::pair<int, int>, size_t> index;
  for (size_t i = 0; i < students.size(); ++i) {
    index[{static_cast<int>(students[i].site), students[i].layer}] = i;
    students[i].mixer->eval();
  }
  teacher->SetTap([&](const model::SiteActivations& a) {
    auto it = index.find({static_cast<int>(a.site), a.layer});
    if (it == index.end()) return;
    auto& s = students[it->second];
    model::MixerInput in;
    torch::Tensor target;
    Pair(a, s.mixer->role(), &in, &target);
    auto pred = s.mixer->Forward(in);
    torch::Tensor block_pred = pred, block_target = target;
    if (s.mixer->role() == model::MixerRole::kMixer) {
      block_pred = a.block_in + pred;
      block_target = a.block_out;
    }
    auto m = in.mask.unsqueeze(-1).to(torch::kFloat);
    const double cnt = m.sum().item<double>() * pred.size(-1);
    se[it->second] += ((block_pred - block_target).pow(2) * m).sum().item<double>();
    sq[it->second] += (block_target.pow(2) * m).sum().item<double>();
    n[it->second] += cnt;
  });
  for (const auto& rows : MakeBatches(pairs, max_tokens, false, 0)) {
    auto b = MakeBatch(pairs, rows, device, teacher->spec().ids);
    teacher->Forward(b.src, b.tgt_in);
  }
  teacher->SetTap(nullptr);
  MseReport r;
  for (size_t i = 0; i < students.size(); ++i) {
    r.block_mse.push_back(n[i] > 0 ? se[i] / n[i] : 0);
    r.target_ms.push_back(n[i] > 0 ? sq[i] / n[i] : 0);
  }
  for (auto& s : students) s.mixer->train();
  return r;
}

std::vector<Site> ParseSites(const std::string& flag, const std::string& mixer) {
  const auto& reg = model::MixerRegistry::Get();
  std::vector<Site> out;
  for (const auto& name : SplitList(flag)) {
    if (name == "all") {
      for (Site s : {Site::kEncoderSelf, Site::kDecoderSelf, Site::kDecoderCross})
        if (reg.Supports(mixer, s)) out.push_back(s);
      continue;
    }
    bool found = false;
    for (Site s : {Site::kEncoderSelf, Site::kDecoderSelf, Site::kDecoderCross}) {
      if (name == SiteName(s)) {
        if (!reg.Supports(mixer, s))
          throw UsageError("mixer '" + mixer + "' does not support site " + name);
        out.push_back(s);
        found = true;
      }
    }
    if (!found)
      throw UsageError("--sites: unknown site '" + name +
                       "' (encoder_self, decoder_self, decoder_cross, all)");
  }
  if (out.empty()) throw UsageError("--sites selects no site that mixer '" + mixer + "' supports");
  return out;
}

}  // namespace

int RunDistill(const Args& args) {
  FlagSet f(
      "distill",
      "Fits one student mixer per replaced site of a frozen teacher to the teacher's activations\n"
      "(masked MSE; kMixer: mixer_in -> mixer_out, kBlock: block_in -> block_out, kLayer:\n"
      "layer_in -> layer_out), then substitutes the students into the teacher and saves the\n"
      "assembled model. Prints the block MSE of every site before and after.",
      Concat({DataFlags(false), DeviceFlags(),
              {{"teacher", "", "teacher model folder (train --out/best)", true},
               {"out", "", "output model folder of the assembled student", true},
               {"mixer", "", "student mixer type (alr, alrr, aslr, elr, aft_simple, ...)", true},
               {"size", "", "student size: xs, s, m, l (feed-forward replacements)"},
               {"hidden", "0", "explicit hidden width (overrides --size)"},
               {"window", "0", "window of aft_local / aft_conv"},
               {"mixer_heads", "0", "heads of the student (0: the model's)"},
               {"sites", "all", "comma list of encoder_self, decoder_self, decoder_cross, or all "
                                "(all sites the mixer supports)"},
               {"layers", "all", "comma list of layer indices, or all"},
               {"valid_split", "val", "split for the before/after MSE and BLEU"},
               {"valid_limit", "300", "validation sentences (0: all)"},
               {"max_tokens", "1500", "padded tokens per batch"},
               {"epochs", "1", "passes over the training data"},
               {"max_steps", "0", "stop after this many updates (0: run all epochs)"},
               {"lr", "1e-3", "peak learning rate (Adam)"},
               {"warmup", "100", "linear warmup steps, then inverse square root decay"},
               {"clip_norm", "1.0", "gradient clipping (0: off)"},
               {"log_every", "50", "progress line every N steps"},
               {"bleu", "true", "greedy validation BLEU of teacher and student at the end"},
               {"seed", "1", "random seed"},
               {"log", "", "metrics as JSON lines (default: <out>/metrics.jsonl)"},
               PrecisionFlag()}}));
  if (!f.Parse(args)) {
    Print("%s", f.Usage().c_str());
    return 0;
  }
  const std::string teacher_dir = f.Get("teacher"), out = f.Get("out");
  RequireModelDir(teacher_dir, "teacher");
  const std::string mixer_type = f.Get("mixer");
  const auto names = model::MixerRegistry::Get().Names();
  if (std::find(names.begin(), names.end(), mixer_type) == names.end()) {
    std::string known;
    for (const auto& n : names) known += (known.empty() ? "" : ", ") + n;
    throw UsageError("unknown mixer '" + mixer_type + "' (known: " + known + ")");
  }
  const auto device = ResolveDevice(f.Get("device"));
  const Precision precision = ParsePrecision(f.Get("precision"), device);
  SetThreads(f.GetInt("threads"));
  torch::manual_seed(static_cast<uint64_t>(f.GetInt64("seed")));

  model::Transformer teacher = model::LoadCheckpoint(teacher_dir);
  const ModelSpec tspec = teacher->spec();
  const int64_t teacher_params = teacher->ParameterCount();
  const ModelTokenizers tok = LoadTokenizers(teacher_dir, tspec);
  CheckVocab(tok, tspec, "teacher '" + teacher_dir + "'");
  std::string src, tgt;
  ResolveLanguages(f, tspec, &src, &tgt);

  // Students.
  MixerSpec ms;
  ms.type = mixer_type;
  ms.size = f.Get("size");
  ms.hidden = f.GetInt("hidden");
  ms.window = f.GetInt("window");
  ms.heads = f.GetInt("mixer_heads");
  const auto sites = ParseSites(f.Get("sites"), mixer_type);
  const std::string layers_flag = f.Get("layers");
  std::vector<Student> students;
  auto holder = std::make_shared<torch::nn::Module>();
  std::string site_names;
  for (Site site : sites) {
    const int n = site == Site::kEncoderSelf ? static_cast<int>(tspec.encoder.size())
                                             : static_cast<int>(tspec.decoder.size());
    std::vector<int> layers;
    if (layers_flag == "all") {
      for (int i = 0; i < n; ++i) layers.push_back(i);
    } else {
      for (const auto& l : SplitList(layers_flag)) {
        int i = -1;
        try {
          i = std::stoi(l);
        } catch (const std::exception&) {
        }
        if (i < 0 || i >= n)
          throw UsageError("--layers: '" + l + "' is not a layer of " + SiteName(site) +
                           " (0.." + std::to_string(n - 1) + ")");
        layers.push_back(i);
      }
    }
    site_names += (site_names.empty() ? "" : ",") + std::string(SiteName(site));
    for (int layer : layers) {
      Student s{site, layer, ms, nullptr};
      model::MixerContext ctx{&teacher->spec(), site, layer, ms};
      s.mixer = model::MixerRegistry::Get().Create(ctx);
      if (s.mixer->role() == model::MixerRole::kLayer && site != Site::kEncoderSelf)
        throw UsageError("mixer '" + mixer_type + "' replaces whole layers: encoder_self only");
      holder->register_module(std::string(SiteName(site)) + "_" + std::to_string(layer), s.mixer);
      students.push_back(std::move(s));
    }
  }
  holder->to(device);
  holder->train();
  teacher->to(device);
  teacher->eval();
  for (auto& p : teacher->parameters()) p.set_requires_grad(false);

  const size_t limit = static_cast<size_t>(f.GetInt64("limit"));
  const std::string train_src = DataFile(f.Get("data"), "train", src);
  const std::string train_tgt = DataFile(f.Get("data"), "train", tgt);
  Corpus train = LoadCorpus(train_src, train_tgt, tok, limit, tspec.max_len);
  Corpus valid = LoadCorpus(DataFile(f.Get("data"), f.Get("valid_split"), src),
                            DataFile(f.Get("data"), f.Get("valid_split"), tgt), tok,
                            static_cast<size_t>(f.GetInt64("valid_limit")), tspec.max_len);
  const int max_tokens = f.GetInt("max_tokens");
  if (max_tokens < 8) throw UsageError("--max_tokens must be at least 8");
  MetricsLog log(f.Get("log").empty() ? out + "/metrics.jsonl" : f.Get("log"));

  int64_t student_params = 0;
  for (const auto& p : holder->parameters()) student_params += p.numel();
  Print("distill: %zu %s student(s) (%s, size '%s'), %lld parameters; %zu training pairs, "
        "device %s, precision %s\n",
        students.size(), mixer_type.c_str(), site_names.c_str(), ms.size.c_str(),
        static_cast<long long>(student_params), train.pairs.size(), device.str().c_str(),
        PrecisionName(precision));

  const MseReport before = EvalMse(teacher, students, valid.pairs, max_tokens, device);

  auto params = holder->parameters();
  const double peak = f.GetDouble("lr");
  const int64_t warmup = f.GetInt64("warmup");
  const double clip = f.GetDouble("clip_norm");
  const int64_t max_steps = f.GetInt64("max_steps");
  const int epochs = f.GetInt("epochs");
  const int64_t log_every = std::max<int64_t>(1, f.GetInt64("log_every"));
  const uint64_t seed = static_cast<uint64_t>(f.GetInt64("seed"));
  torch::optim::Adam opt(params, torch::optim::AdamOptions(peak).betas({0.9, 0.98}).eps(1e-9));
  OptimizerStep stepper(precision);
  const size_t per_epoch = MakeBatches(train.pairs, max_tokens, false, 0).size();
  const int64_t total = max_steps > 0 ? max_steps : static_cast<int64_t>(per_epoch) * epochs;

  std::map<std::pair<int, int>, size_t> index;
  for (size_t i = 0; i < students.size(); ++i)
    index[{static_cast<int>(students[i].site), students[i].layer}] = i;
  std::vector<model::SiteActivations> records;
  Stopwatch run, win;
  int64_t step = 0, win_tokens = 0, win_steps = 0;
  double win_loss = 0;
  for (int epoch = 0; step < total; ++epoch) {
    for (const auto& rows : MakeBatches(train.pairs, max_tokens, true, seed * 7919 + epoch)) {
      if (step >= total) break;
      ++step;
      const double lr = InverseSqrtLr(step, peak, warmup);
      SetLr(opt, lr);
      auto b = MakeBatch(train.pairs, rows, device, teacher->spec().ids);
      records.clear();
      teacher->SetTap([&](const model::SiteActivations& a) {
        if (index.count({static_cast<int>(a.site), a.layer})) records.push_back(a);
      });
      torch::Tensor loss;
      {
        AutocastScope autocast(precision, device);
        {
          torch::NoGradGuard ng;
          teacher->Forward(b.src, b.tgt_in);
        }
        teacher->SetTap(nullptr);
        for (const auto& a : records) {
          auto& s = students[index.at({static_cast<int>(a.site), a.layer})];
          model::MixerInput in;
          torch::Tensor target;
          Pair(a, s.mixer->role(), &in, &target);
          auto mse = MaskedMse(s.mixer->Forward(in), target, in.mask);
          loss = loss.defined() ? loss + mse : mse;
        }
      }
      records.clear();
      stepper.Apply(loss, opt, params, clip);
      const double lv = loss.item<double>() / students.size();
      if (std::isfinite(lv)) win_loss += lv;  // fp16: skipped overflows stay out of the mean
      win_tokens += b.src_tokens + b.tgt_tokens;
      ++win_steps;
      if (step % log_every == 0 || step == total) {
        const double tps = win_tokens / std::max(1e-9, win.Seconds());
        Print("step %lld/%lld epoch %d mse %.5f tok/s %.0f lr %.3g eta %s\n",
              static_cast<long long>(step), static_cast<long long>(total), epoch + 1,
              win_loss / win_steps, tps, lr, run.Eta(step, total).c_str());
        log.Write("distill", MetricsFields()
                                 .Set("step", step)
                                 .Set("mse", win_loss / win_steps)
                                 .Set("tokens_per_s", tps)
                                 .Set("lr", lr)
                                 .Set("elapsed_s", run.Seconds()));
        win_loss = 0;
        win_tokens = 0;
        win_steps = 0;
        win = Stopwatch();
      }
    }
  }

  const MseReport after = EvalMse(teacher, students, valid.pairs, max_tokens, device);
  Print("block MSE on %s (%zu sentences), before -> after distillation:\n",
        f.Get("valid_split").c_str(), valid.pairs.size());
  for (size_t i = 0; i < students.size(); ++i) {
    Print("  %-18s %.6f -> %.6f  (teacher output mean square %.4f)\n", students[i].name().c_str(),
          before.block_mse[i], after.block_mse[i], after.target_ms[i]);
    log.Write("block_mse", MetricsFields()
                               .Set("site", SiteName(students[i].site))
                               .Set("layer", students[i].layer)
                               .Set("before", before.block_mse[i])
                               .Set("after", after.block_mse[i]));
  }
  Print("  %-18s %.6f -> %.6f\n", "mean", before.mean(), after.mean());

  double teacher_bleu = -1;
  const bool bleu = f.GetBool("bleu");
  if (bleu) teacher_bleu = GreedyBleu(teacher, tok, valid.text.src, valid.text.tgt, 64, device);
  // Assembly: the teacher's weights with the distilled mixers substituted.
  for (auto& s : students) {
    s.mixer->eval();
    teacher->ReplaceMixer(s.site, s.layer, s.mixer, s.spec);
  }
  model::Transformer& student = teacher;
  double student_bleu = -1;
  if (bleu) {
    student_bleu = GreedyBleu(student, tok, valid.text.src, valid.text.tgt, 64, device);
    Print("validation BLEU (greedy, %zu sentences): teacher %.2f, student %.2f\n",
          valid.text.src.size(), teacher_bleu, student_bleu);
  }
  model::SaveOptions so;
  so.metadata = {{"kind", "distilled"},
                 {"parent_teacher", std::filesystem::absolute(teacher_dir).lexically_normal().string()},
                 {"training_data", train_src + "," + train_tgt},
                 {"training_limit", std::to_string(limit)},
                 {"distilled_mixer", mixer_type + (ms.size.empty() ? "" : "-" + ms.size)},
                 {"distilled_sites", site_names},
                 {"distilled_layers", layers_flag},
                 {"created_by", "mixserve-offline distill"}};
  so.numeric_metadata = {{"distill_steps", static_cast<double>(step)},
                         {"block_mse_before", before.mean()},
                         {"block_mse_after", after.mean()},
                         {"student_mixer_parameters", static_cast<double>(student_params)}};
  if (bleu) {
    so.numeric_metadata["val_bleu"] = student_bleu;
    so.numeric_metadata["teacher_val_bleu"] = teacher_bleu;
  }
  model::SaveCheckpoint(student, out, so);
  CopyTokenizerFiles(teacher_dir, student->spec(), out);
  log.Write("done", MetricsFields()
                        .Set("steps", step)
                        .Set("seconds", run.Seconds())
                        .Set("block_mse_before", before.mean())
                        .Set("block_mse_after", after.mean())
                        .Set("parameters", student->ParameterCount())
                        .Set("teacher_val_bleu", teacher_bleu)
                        .Set("val_bleu", student_bleu));
  Print("assembled student: %lld parameters (teacher %lld) -> %s [%s]\n",
        static_cast<long long>(student->ParameterCount()),
        static_cast<long long>(teacher_params), out.c_str(),
        FormatDuration(run.Seconds()).c_str());
  return 0;
}

}  // namespace mixserve::offline
