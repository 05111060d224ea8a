// train and finetune: the supervised training loop (label-smoothed cross-entropy, Adam with
// warmup + inverse square root decay, token-based batches, gradient clipping, periodic
// validation loss/BLEU, best checkpoint by validation BLEU, resumable), optionally with a
// knowledge-distillation term towards a frozen teacher (finetune).
#include <filesystem>
#include <limits>

#include "config/model_metadata.h"
#include "model/checkpoint.h"
#include "offline/commands.h"
#include "offline/common.h"
#include "offline/nmt.h"
#include "offline/precision.h"
#include "offline/progress.h"
#include "offline/records.h"

namespace mixserve::offline {

namespace fs = std::filesystem;

namespace {

std::vector<FlagDef> LoopFlags(const std::string& lr, const std::string& warmup,
                               const std::string& epochs) {
  return {
      {"out", "", "output folder: best/ (best validation BLEU), last/ (resume point), metrics.jsonl", true},
      {"valid_split", "val", "split for validation loss and BLEU"},
      {"valid_limit", "0", "use only the first N validation sentences (0: all)"},
      {"max_tokens", "1500", "padded tokens per batch (longer side)"},
      {"epochs", epochs, "passes over the training data"},
      {"max_steps", "0", "stop after this many updates (0: run all epochs)"},
      {"lr", lr, "peak learning rate"},
      {"warmup", warmup, "linear warmup steps, then lr * sqrt(warmup / step)"},
      {"clip_norm", "1.0", "gradient clipping by global norm (0: off)"},
      {"label_smoothing", "0.1", "label smoothing epsilon"},
      {"valid_every", "0", "validate every N steps (0: after every epoch)"},
      {"log_every", "50", "progress line every N steps"},
      {"bleu_batch", "64", "sentences per decoding batch for validation BLEU"},
      {"seed", "1", "random seed (initialisation, batch order, dropout)"},
      {"resume", "false", "continue from <out>/last (model, optimizer, step)"},
      {"log", "", "metrics as JSON lines (default: <out>/metrics.jsonl)"},
      PrecisionFlag(),
  };
}

struct LoopConfig {
  std::string out;
  torch::Device device{torch::kCPU};
  Precision precision = Precision::kFp32;
  int max_tokens = 1500;
  int epochs = 1;
  int64_t max_steps = 0;
  double lr = 1e-3;
  int64_t warmup = 4000;
  double clip = 1.0;
  double epsilon = 0.1;
  int64_t valid_every = 0;
  int64_t log_every = 50;
  int bleu_batch = 64;
  uint64_t seed = 1;
  bool resume = false;
  std::string spm;            // train: the joint SentencePiece model (--spm)
  std::string tokenizer_dir;  // finetune: the model whose tokenizer files are copied
  model::Transformer teacher{nullptr};  // finetune: KD towards this model
  double kd_alpha = 0;
  double temperature = 1;
  model::SaveOptions save;  // metadata of the saved checkpoints
};

LoopConfig ReadLoopFlags(const FlagSet& f) {
  LoopConfig c;
  c.out = f.Get("out");
  c.max_tokens = f.GetInt("max_tokens");
  c.epochs = f.GetInt("epochs");
  c.max_steps = f.GetInt64("max_steps");
  c.lr = f.GetDouble("lr");
  c.warmup = f.GetInt64("warmup");
  c.clip = f.GetDouble("clip_norm");
  c.epsilon = f.GetDouble("label_smoothing");
  c.valid_every = f.GetInt64("valid_every");
  c.log_every = std::max<int64_t>(1, f.GetInt64("log_every"));
  c.bleu_batch = std::max(1, f.GetInt("bleu_batch"));
  c.seed = static_cast<uint64_t>(f.GetInt64("seed"));
  c.resume = f.GetBool("resume");
  if (c.max_tokens < 8) throw UsageError("--max_tokens must be at least 8");
  if (c.epochs < 1 && c.max_steps <= 0) throw UsageError("--epochs must be >= 1 (or set --max_steps)");
  if (c.lr <= 0) throw UsageError("--lr must be > 0");
  if (c.epsilon < 0 || c.epsilon >= 1) throw UsageError("--label_smoothing must be in [0, 1)");
  return c;
}

// The start shared by train and finetune: loop flags, device, threads, seed.
LoopConfig StartLoop(const FlagSet& f) {
  LoopConfig c = ReadLoopFlags(f);
  c.device = ResolveDevice(f.Get("device"));
  c.precision = ParsePrecision(f.Get("precision"), c.device);
  SetThreads(f.GetInt("threads"));
  torch::manual_seed(c.seed);
  return c;
}

// Training pairs (--limit) and validation pairs (--valid_split, --valid_limit) of src -> tgt,
// pairs longer than max_len dropped; the training files' paths go to *train_files.
struct Splits {
  Corpus train, valid;
  std::string train_files, valid_files;
};
Splits LoadSplits(const FlagSet& f, const std::string& src, const std::string& tgt,
                  const ModelTokenizers& tok, int max_len) {
  const std::string data = f.Get("data"), valid = f.Get("valid_split");
  const std::string ts = DataFile(data, "train", src), tt = DataFile(data, "train", tgt);
  const std::string vs = DataFile(data, valid, src), vt = DataFile(data, valid, tgt);
  Splits out;
  out.train = LoadCorpus(ts, tt, tok, static_cast<size_t>(f.GetInt64("limit")), max_len);
  out.valid = LoadCorpus(vs, vt, tok, static_cast<size_t>(f.GetInt64("valid_limit")), max_len);
  out.train_files = ts + "," + tt;
  out.valid_files = vs + "," + vt;
  return out;
}

MetricsLog OpenLog(const FlagSet& f, const LoopConfig& c) {
  return MetricsLog(f.Get("log").empty() ? c.out + "/metrics.jsonl" : f.Get("log"));
}

struct LoopState {
  int64_t step = 0;
  int epoch = 0;
  int64_t batch = 0;  // next batch of `epoch`
  double best_bleu = -1;
  int64_t best_step = 0;
};

void SaveState(const std::string& dir, const LoopState& s) {
  WriteTrainState(dir + "/train_state.json",
                  TrainState{s.step, s.epoch, s.batch, s.best_bleu, s.best_step});
}

LoopState LoadState(const std::string& dir) {
  const TrainState t = ReadTrainState(dir + "/train_state.json");
  return LoopState{t.step, t.epoch, t.batch, t.best_bleu, t.best_step};
}

// Saves a loadable model directory (checkpoint + tokenizer).
void SaveModelDir(model::Transformer& model, const std::string& dir, const LoopConfig& c,
                  const std::map<std::string, double>& numbers) {
  model::SaveOptions so = c.save;
  for (const auto& [k, v] : numbers) so.numeric_metadata[k] = v;
  model::SaveCheckpoint(model, dir, so);
  if (!c.tokenizer_dir.empty())
    CopyTokenizerFiles(c.tokenizer_dir, model->spec(), dir);
  else
    CopyFileTo(c.spm, TokenizerPath(dir, model->spec()));
}

void TrainLoop(model::Transformer& model, const ModelTokenizers& tok, const Corpus& train,
               const Corpus& valid, const LoopConfig& c, MetricsLog& log) {
  model->to(c.device);
  model->train();
  model::Transformer teacher = c.teacher;  // shares the module
  if (teacher) {
    teacher->to(c.device);
    teacher->eval();
    for (auto& p : teacher->parameters()) p.set_requires_grad(false);
  }
  auto params = model->parameters();
  torch::optim::Adam opt(params, torch::optim::AdamOptions(c.lr).betas({0.9, 0.98}).eps(1e-9));
  OptimizerStep stepper(c.precision);
  LoopState st;
  const std::string last = c.out + "/last", best = c.out + "/best";
  if (c.resume && fs::exists(last + "/train_state.json")) {
    torch::load(opt, last + "/optimizer.pt");
    st = LoadState(last);
    Print("resume: step %lld, epoch %d, batch %lld, best val BLEU %.2f\n",
          static_cast<long long>(st.step), st.epoch, static_cast<long long>(st.batch), st.best_bleu);
  }
  const size_t batches_per_epoch = MakeBatches(train.pairs, c.max_tokens, false, 0).size();
  const int64_t total = c.max_steps > 0 ? c.max_steps
                                         : static_cast<int64_t>(batches_per_epoch) * c.epochs;
  Print("train: %zu pairs (%zu longer than max_len dropped), %zu batches/epoch, %lld steps, "
        "%lld parameters, device %s, precision %s\n",
        train.pairs.size(), train.dropped, batches_per_epoch, static_cast<long long>(total),
        static_cast<long long>(model->ParameterCount()), c.device.str().c_str(),
        PrecisionName(c.precision));

  std::vector<std::string> vsrc = valid.text.src, vref = valid.text.tgt;
  Stopwatch run;
  const int64_t start_step = st.step;
  double win_loss = 0, win_time = 0;
  int64_t win_tokens = 0, win_steps = 0;
  Stopwatch win;
  int64_t last_valid = -1;

  auto validate = [&]() {
    Stopwatch vs;
    const double nll = ValidationNll(model, valid.pairs, c.max_tokens, c.device);
    const double bleu = GreedyBleu(model, tok, vsrc, vref, c.bleu_batch, c.device);
    const bool improved = bleu > st.best_bleu;
    if (improved) {
      st.best_bleu = bleu;
      st.best_step = st.step;
      SaveModelDir(model, best, c,
                   {{"val_bleu", bleu}, {"val_nll", nll}, {"step", static_cast<double>(st.step)}});
    }
    SaveModelDir(model, last, c, {{"val_bleu", bleu}, {"step", static_cast<double>(st.step)}});
    torch::save(opt, last + "/optimizer.pt");
    SaveState(last, st);
    last_valid = st.step;
    Print("valid step %lld: loss %.4f ppl %.2f BLEU %.2f%s (best %.2f at step %lld) [%s]\n",
          static_cast<long long>(st.step), nll, std::exp(nll), bleu, improved ? " *" : "",
          st.best_bleu, static_cast<long long>(st.best_step), FormatDuration(vs.Seconds()).c_str());
    log.Write("valid", MetricsFields()
                           .Set("step", st.step)
                           .Set("epoch", st.epoch)
                           .Set("val_nll", nll)
                           .Set("val_ppl", std::exp(nll))
                           .Set("val_bleu", bleu)
                           .Set("best_bleu", st.best_bleu)
                           .Set("seconds", vs.Seconds()));
  };

  bool done = total <= st.step;
  for (; !done && (c.max_steps > 0 || st.epoch < c.epochs); ++st.epoch, st.batch = 0) {
    auto batches = MakeBatches(train.pairs, c.max_tokens, true, c.seed * 1000003 + st.epoch);
    for (; st.batch < static_cast<int64_t>(batches.size()); ++st.batch) {
      ++st.step;
      const double lr = InverseSqrtLr(st.step, c.lr, c.warmup);
      SetLr(opt, lr);
      auto b = MakeBatch(train.pairs, batches[st.batch], c.device, model->spec().ids);
      LossSums ce;
      torch::Tensor loss;
      {
        AutocastScope autocast(c.precision, c.device);
        auto logits = model->Forward(b.src, b.tgt_in);
        ce = SmoothedCrossEntropy(logits, b.tgt_out, c.epsilon, model->spec().ids.pad);
        loss = ce.loss / static_cast<double>(ce.tokens);
        if (teacher) {
          torch::Tensor tl;
          {
            torch::NoGradGuard ng;
            tl = teacher->Forward(b.src, b.tgt_in);
          }
          auto kd = DistillationKl(logits, tl, b.tgt_out, c.temperature, model->spec().ids.pad) /
                    static_cast<double>(ce.tokens);
          loss = (1 - c.kd_alpha) * loss + c.kd_alpha * kd;
        }
      }
      const double lv = loss.item<double>();
      // fp16: an overflowing forward pass is one of the updates the loss scaling skips.
      if (!std::isfinite(lv) && c.precision != Precision::kFp16)
        throw std::runtime_error("loss is not finite at step " + std::to_string(st.step) +
                                 " (lower --lr or check the data)");
      stepper.Apply(loss, opt, params, c.clip);
      if (std::isfinite(lv)) win_loss += lv;
      win_tokens += b.tgt_tokens + b.src_tokens;
      ++win_steps;
      if (st.step % c.log_every == 0 || st.step == total) {
        win_time = win.Seconds();
        const double tps = win_time > 0 ? win_tokens / win_time : 0;
        const double done_frac = static_cast<double>(st.step - start_step);
        Print("step %lld/%lld epoch %d loss %.4f tok/s %.0f lr %.3g eta %s\n",
              static_cast<long long>(st.step), static_cast<long long>(total), st.epoch + 1,
              win_loss / win_steps, tps, lr,
              run.Eta(done_frac, static_cast<double>(total - start_step)).c_str());
        log.Write("train", MetricsFields()
                               .Set("step", st.step)
                               .Set("epoch", st.epoch)
                               .Set("loss", win_loss / win_steps)
                               .Set("tokens_per_s", tps)
                               .Set("lr", lr)
                               .Set("elapsed_s", run.Seconds()));
        win_loss = 0;
        win_tokens = 0;
        win_steps = 0;
        win = Stopwatch();
      }
      if (c.valid_every > 0 && st.step % c.valid_every == 0) {
        ++st.batch;  // the resume point is after this batch
        validate();
        --st.batch;
      }
      if (st.step >= total) {
        done = true;
        ++st.batch;
        break;
      }
    }
    if (c.valid_every == 0 && last_valid != st.step) {
      if (!done) {
        // Resume point: start of the next epoch.
        ++st.epoch;
        st.batch = 0;
        validate();
        --st.epoch;
        st.batch = static_cast<int64_t>(batches.size());
      } else {
        validate();
      }
    }
    if (done) break;
  }
  if (last_valid != st.step) validate();
  Print("done: %lld steps in %s, best val BLEU %.2f at step %lld -> %s\n",
        static_cast<long long>(st.step), FormatDuration(run.Seconds()).c_str(), st.best_bleu,
        static_cast<long long>(st.best_step), best.c_str());
  if (c.precision == Precision::kFp16)
    Print("fp16: %lld updates skipped for overflowing gradients, final loss scale %g\n",
          static_cast<long long>(stepper.skipped()), stepper.scale());
  log.Write("done", MetricsFields()
                        .Set("steps", st.step)
                        .Set("skipped_updates", stepper.skipped())
                        .Set("seconds", run.Seconds())
                        .Set("best_bleu", st.best_bleu)
                        .Set("best_step", st.best_step)
                        .Set("best_dir", best));
}

MixerSpec MixerFromFlags(const FlagSet& f, const std::string& flag) {
  MixerSpec m;
  m.type = f.Get(flag);
  if (m.type != "mha") {
    m.size = f.Get("mixer_size");
    m.hidden = f.GetInt("mixer_hidden");
    m.window = f.GetInt("mixer_window");
  }
  return m;
}

}  // namespace

int RunTrain(const Args& args) {
  FlagSet f("train",
            "Trains an encoder-decoder Transformer from scratch: the baseline teacher (mha\n"
            "everywhere) or, with other --*_mixer values, an attention-free control.",
            Concat({DataFlags(true), DeviceFlags(), LoopFlags("1e-3", "4000", "20"),
                    {{"spm", "", "SentencePiece model (from 'spm')", true},
                     {"d_model", "128", "model width"},
                     {"ffn_dim", "512", "feed-forward width"},
                     {"heads", "8", "attention heads"},
                     {"encoder_layers", "6", "encoder layers"},
                     {"decoder_layers", "6", "decoder layers"},
                     {"max_len", "50", "tokens per sentence incl. BOS/EOS; longer pairs are dropped"},
                     {"dropout", "0.1", "dropout"},
                     {"encoder_mixer", "mha", "mixer of every encoder self site"},
                     {"decoder_self_mixer", "mha", "mixer of every decoder self site"},
                     {"decoder_cross_mixer", "mha", "mixer of every decoder cross site"},
                     {"mixer_size", "", "size of non-mha mixers: xs, s, m, l"},
                     {"mixer_hidden", "0", "explicit hidden width of non-mha mixers"},
                     {"mixer_window", "0", "window of aft_local / aft_conv"}}}));
  if (!f.Parse(args)) {
    Print("%s", f.Usage().c_str());
    return 0;
  }
  LoopConfig c = StartLoop(f);
  c.spm = f.Get("spm");
  const ModelTokenizers tok = JointTokenizers(LoadTokenizer(c.spm));
  const std::string src = f.Get("src"), tgt = f.Get("tgt");

  model::Transformer model{nullptr};
  const std::string last = c.out + "/last";
  if (c.resume && fs::exists(last + "/train_state.json")) {
    model = model::LoadCheckpoint(last);
    CheckVocab(tok, model->spec(), "checkpoint '" + last + "'");
  } else {
    if (c.resume) Print("resume: nothing to resume in %s, starting fresh\n", last.c_str());
    ModelSpec spec = UniformSpec(f.GetInt("d_model"), f.GetInt("ffn_dim"), f.GetInt("heads"),
                                 f.GetInt("encoder_layers"), f.GetInt("decoder_layers"),
                                 tok.source->vocab_size(), MixerFromFlags(f, "encoder_mixer"),
                                 MixerFromFlags(f, "decoder_self_mixer"),
                                 MixerFromFlags(f, "decoder_cross_mixer"));
    spec.max_len = f.GetInt("max_len");
    spec.dropout = static_cast<float>(f.GetDouble("dropout"));
    spec.source_language = src;
    spec.target_language = tgt;
    const std::string err = ValidateSpec(spec);
    if (!err.empty()) throw UsageError("invalid model shape: " + err);
    model = model::Transformer(spec);
  }
  Splits data = LoadSplits(f, src, tgt, tok, model->spec().max_len);

  bool scratch = false;
  for (const auto& l : model->spec().encoder) scratch |= l.self.type != "mha";
  for (const auto& l : model->spec().decoder) scratch |= l.self.type != "mha" || l.cross.type != "mha";
  c.save.metadata = {{"kind", scratch ? "scratch" : "teacher"},
                     {"training_data", data.train_files},
                     {"training_limit", std::to_string(f.GetInt64("limit"))},
                     {"validation_data", data.valid_files},
                     {"created_by", "mixserve-offline train"},
                     {"training_precision", PrecisionName(c.precision)}};
  MetricsLog log = OpenLog(f, c);
  log.WriteConfig(f.Values());
  TrainLoop(model, tok, data.train, data.valid, c, log);
  return 0;
}

int RunFinetune(const Args& args) {
  FlagSet f("finetune",
            "Fine-tunes a model (usually an assembled student from 'distill') end to end:\n"
            "loss = (1 - kd_alpha) * label-smoothed CE + kd_alpha * T^2 * KL(teacher || student)\n"
            "at temperature T. Without --teacher the KD term is off.",
            Concat({DataFlags(false), DeviceFlags(), LoopFlags("2e-4", "200", "2"),
                    {{"student", "", "model folder to fine-tune (e.g. distill --out)", true},
                     {"teacher", "", "teacher model folder for the KD term (optional)"},
                     {"kd_alpha", "0.5", "weight of the KD term"},
                     {"temperature", "1.0", "softmax temperature of the KD term"}}}));
  if (!f.Parse(args)) {
    Print("%s", f.Usage().c_str());
    return 0;
  }
  LoopConfig c = StartLoop(f);
  c.kd_alpha = f.GetDouble("kd_alpha");
  c.temperature = f.GetDouble("temperature");
  if (c.kd_alpha < 0 || c.kd_alpha > 1) throw UsageError("--kd_alpha must be in [0, 1]");
  if (c.temperature <= 0) throw UsageError("--temperature must be > 0");

  const std::string student_dir = f.Get("student");
  RequireModelDir(student_dir, "student");
  const std::string last = c.out + "/last";
  const bool resuming = c.resume && fs::exists(last + "/train_state.json");
  model::Transformer model = model::LoadCheckpoint(resuming ? last : student_dir);
  c.tokenizer_dir = student_dir;
  const ModelTokenizers tok = LoadTokenizers(student_dir, model->spec());
  CheckVocab(tok, model->spec(), "model '" + student_dir + "'");
  if (!f.Get("teacher").empty()) {
    RequireModelDir(f.Get("teacher"), "teacher");
    c.teacher = model::LoadCheckpoint(f.Get("teacher"));
    if (c.teacher->spec().vocab_size != model->spec().vocab_size)
      throw std::runtime_error("vocabulary mismatch: teacher has " +
                               std::to_string(c.teacher->spec().vocab_size) + " pieces, student " +
                               std::to_string(model->spec().vocab_size));
  } else {
    c.kd_alpha = 0;
  }
  std::string src, tgt;
  ResolveLanguages(f, model->spec(), &src, &tgt);
  Splits data = LoadSplits(f, src, tgt, tok, model->spec().max_len);
  // Keep the student's lineage (parent teacher, data) and add the fine-tuning facts.
  if (fs::exists(student_dir + "/metadata.json")) {
    const FlatRecord meta = ReadModelMetadata(student_dir + "/metadata.json");
    for (const char* k : {"parent_teacher", "training_data", "training_limit", "distilled_mixer",
                          "distilled_sites", "validation_data"})
      if (meta.strings.count(k)) c.save.metadata[k] = meta.strings.at(k);
  }
  c.save.metadata["kind"] = "finetuned";
  c.save.metadata["finetuned_from"] = student_dir;
  c.save.metadata["created_by"] = "mixserve-offline finetune";
  c.save.metadata["training_precision"] = PrecisionName(c.precision);
  if (c.teacher) c.save.metadata["kd_teacher"] = f.Get("teacher");
  MetricsLog log = OpenLog(f, c);
  TrainLoop(model, tok, data.train, data.valid, c, log);
  return 0;
}

}  // namespace mixserve::offline
