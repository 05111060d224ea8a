// The mixserve-offline binary end to end on a few hundred Multi30k sentences with tiny
// models: spm -> train (loss falls) -> distill (block MSE falls) -> engine load -> export
// (identical translations) -> sweep (table and plot) -> bad inputs (clear errors, non-zero
// exit). The expensive artifacts (tokenizer, teacher, student) are built once per binary
// build under a file lock and shared by the tests, which ctest runs as separate processes.
#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/engine.h"
#include "model/token_mixer.h"
#include "config/model_metadata.h"
#include "offline/records.h"
#include "offline/table.h"
#include "offline/text_io.h"
#include "text/tokenizer.h"
#include "base/remove_tree.h"

namespace mixserve::offline {
namespace {

namespace fs = std::filesystem;

const std::string kBin = MIXSERVE_BINARY_DIR "/offline/mixserve-offline";
const std::string kData = MIXSERVE_SOURCE_DIR "/data/multi30k";

struct RunResult {
  int code = -1;
  std::string output;
};

RunResult RunTool(const std::string& args) {
  const std::string cmd = kBin + " " + args + " 2>&1";
  RunResult r;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) r.output.append(buf, n);
  const int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// The student mixer used by the tests: the first registered attention replacement that fits
// the encoder self site.
struct MixerChoice {
  std::string type, size;
  std::vector<std::string> sites;
};
MixerChoice ChooseMixer() {
  const auto names = model::MixerRegistry::Get().Names();
  for (const auto& [type, size] : std::vector<std::pair<std::string, std::string>>{
           {"alr", "s"}, {"aft_simple", ""}, {"aslr", "s"}, {"lstm", ""}}) {
    if (std::find(names.begin(), names.end(), type) == names.end()) continue;
    if (!model::MixerRegistry::Get().Supports(type, Site::kEncoderSelf)) continue;
    MixerChoice c{type, size, {}};
    for (Site s : {Site::kEncoderSelf, Site::kDecoderSelf, Site::kDecoderCross})
      if (model::MixerRegistry::Get().Supports(type, s)) c.sites.push_back(SiteName(s));
    return c;
  }
  return {};
}

struct Artifacts {
  std::string work, spm, teacher_out, teacher, student;
  MixerChoice mixer;
  std::string error;  // set when building failed
};

std::string WorkDir() {
  struct stat st {};
  long stamp = stat(kBin.c_str(), &st) == 0 ? static_cast<long>(st.st_mtime) : 0;
  return std::string(MIXSERVE_BINARY_DIR) + "/offline_test_work/" + std::to_string(stamp);
}

std::string TrainFlags() {
  return "--data=" + kData +
         " --src=en --tgt=de --limit=300 --valid_limit=30 --d_model=32 --ffn_dim=64 --heads=2"
         " --encoder_layers=2 --decoder_layers=1 --max_len=32 --dropout=0.1 --max_tokens=600"
         " --lr=3e-3 --warmup=10 --log_every=2 --threads=2 --device=cpu";
}

const Artifacts& Get() {
  static Artifacts a = [] {
    Artifacts a;
    a.work = WorkDir();
    fs::create_directories(a.work);
    a.spm = a.work + "/spm";
    a.teacher_out = a.work + "/teacher";
    a.teacher = a.teacher_out + "/best";
    a.student = a.work + "/student";
    a.mixer = ChooseMixer();
    const int fd = open((a.work + "/lock").c_str(), O_CREAT | O_RDWR, 0644);
    flock(fd, LOCK_EX);
    auto step = [&](const std::string& marker, const std::string& args) {
      if (!a.error.empty() || fs::exists(a.work + "/" + marker)) return;
      auto r = RunTool(args);
      if (r.code != 0) {
        a.error = "mixserve-offline " + args + " failed:\n" + r.output;
        return;
      }
      WriteFile(a.work + "/" + marker, r.output);
    };
    step("spm.done", "spm --data=" + kData + " --src=en --tgt=de --limit=300 --vocab_size=300 --out=" + a.spm);
    step("teacher.done", "train " + TrainFlags() + " --spm=" + a.spm + ".model --epochs=6 --out=" + a.teacher_out);
    if (!a.mixer.type.empty())
      step("student.done", "distill --teacher=" + a.teacher + " --out=" + a.student + " --mixer=" +
                               a.mixer.type + (a.mixer.size.empty() ? "" : " --size=" + a.mixer.size) +
                               " --sites=encoder_self --data=" + kData +
                               " --limit=300 --valid_limit=30 --max_tokens=600 --epochs=4 --lr=3e-3"
                               " --warmup=5 --log_every=5 --threads=2 --device=cpu");
    flock(fd, LOCK_UN);
    close(fd);
    return a;
  }();
  return a;
}

// The number fields of the metrics.jsonl events named `event`.
std::vector<std::map<std::string, double>> Events(const std::string& path, const std::string& event) {
  std::vector<std::map<std::string, double>> out;
  for (const auto& r : ReadMetricsLog(path))
    if (r.event == event) out.push_back(r.fields.numbers);
  return out;
}

std::vector<std::vector<int>> ValSources(const Tokenizer& tok, size_t n) {
  std::vector<std::vector<int>> out;
  for (const auto& l : ReadLines(kData + "/val.en.gz", n)) out.push_back(tok.Encode(l));
  for (auto& s : out)
    if (s.size() > 30) s.resize(30);
  return out;
}

std::vector<std::vector<int>> TranslateDir(const std::string& dir, const std::vector<std::vector<int>>& srcs) {
  EngineOptions eo;
  eo.device = "cpu";
  auto engine = Engine::Load(dir, eo);
  DecodeOptions d;
  std::vector<std::vector<int>> out;
  for (const auto& h : engine->Translate(srcs, d)) out.push_back(h.at(0).tokens);
  return out;
}

#define REQUIRE_ARTIFACTS()                   \
  const Artifacts& A = Get();                 \
  ASSERT_TRUE(A.error.empty()) << A.error;

TEST(OfflinePipeline, TeacherTrainsAndLossFalls) {
  REQUIRE_ARTIFACTS();
  auto train = Events(A.teacher_out + "/metrics.jsonl", "train");
  ASSERT_GE(train.size(), 5u);
  const double first = train.front()["loss"];
  const double last = train.back()["loss"];
  EXPECT_LT(last, first - 0.5) << "first " << first << " last " << last;
  auto valid = Events(A.teacher_out + "/metrics.jsonl", "valid");
  ASSERT_GE(valid.size(), 2u);
  EXPECT_LT(valid.back()["val_nll"], valid.front()["val_nll"]);
  EXPECT_TRUE(fs::exists(A.teacher + "/model.pbtxt"));
  EXPECT_TRUE(fs::exists(A.teacher + "/spm.model"));
  EXPECT_TRUE(fs::exists(A.teacher_out + "/last/optimizer.pt"));
}

TEST(OfflinePipeline, ResumeContinuesFromLastStep) {
  REQUIRE_ARTIFACTS();
  const std::string out = A.work + "/resume";
  mixserve::RemoveTree(out);
  fs::create_directories(out);
  fs::copy(A.teacher_out + "/last", out + "/last", fs::copy_options::recursive);
  const long long step = ReadTrainState(out + "/last/train_state.json").step;
  auto r = RunTool("train " + TrainFlags() + " --spm=" + A.spm + ".model --epochs=7 --resume --out=" + out);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("resume: step " + std::to_string(step)), std::string::npos) << r.output;
  auto train = Events(out + "/metrics.jsonl", "train");
  ASSERT_FALSE(train.empty());
  EXPECT_GT(train.front()["step"], step);
}

TEST(OfflinePipeline, Bf16AutocastTrainingLossFalls) {
  REQUIRE_ARTIFACTS();
  const std::string out = A.work + "/bf16";
  mixserve::RemoveTree(out);
  auto r = RunTool("train " + TrainFlags() + " --spm=" + A.spm + ".model --epochs=4 --precision=bf16 --out=" + out);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("precision bf16"), std::string::npos) << r.output;
  auto train = Events(out + "/metrics.jsonl", "train");
  ASSERT_GE(train.size(), 5u);
  const double first = train.front()["loss"], last = train.back()["loss"];
  EXPECT_LT(last, first - 0.5) << "first " << first << " last " << last;
  // Weights stay fp32 and the checkpoint says how it was trained.
  EXPECT_EQ(ReadModelMetadata(out + "/best/metadata.json").strings["training_precision"], "bf16");
  auto tok = Tokenizer::Load(out + "/best/spm.model");
  EXPECT_EQ(TranslateDir(out + "/best", ValSources(*tok, 3)).size(), 3u);
}

TEST(OfflinePipeline, DistillationLowersBlockMse) {
  REQUIRE_ARTIFACTS();
  if (A.mixer.type.empty()) GTEST_SKIP() << "no attention replacement mixer is registered";
  auto done = Events(A.student + "/metrics.jsonl", "done");
  ASSERT_EQ(done.size(), 1u);
  const double before = done[0]["block_mse_before"];
  const double after = done[0]["block_mse_after"];
  EXPECT_LT(after, before);
  auto sites = Events(A.student + "/metrics.jsonl", "block_mse");
  EXPECT_EQ(sites.size(), 2u);  // two encoder layers
  for (auto& s : sites) EXPECT_LT(s["after"], s["before"]) << s["layer"];
}

TEST(OfflinePipeline, StudentLoadsThroughEngine) {
  REQUIRE_ARTIFACTS();
  if (A.mixer.type.empty()) GTEST_SKIP() << "no attention replacement mixer is registered";
  EngineOptions eo;
  eo.device = "cpu";
  auto engine = Engine::Load(A.student, eo);
  const ModelSpec& spec = engine->info().spec;
  ASSERT_EQ(spec.encoder.size(), 2u);
  for (const auto& l : spec.encoder) EXPECT_EQ(l.self.type, A.mixer.type);
  EXPECT_EQ(spec.decoder[0].self.type, "mha");
  auto tok = Tokenizer::Load(A.student + "/spm.model");
  auto hyps = engine->Translate(ValSources(*tok, 4), DecodeOptions{});
  ASSERT_EQ(hyps.size(), 4u);
  auto teacher = Engine::Load(A.teacher, eo);
  EXPECT_NE(engine->info().parameters, teacher->info().parameters);
}

TEST(OfflinePipeline, ExportThenLoadGivesIdenticalTranslations) {
  REQUIRE_ARTIFACTS();
  const std::string repo = A.work + "/repo_" + std::to_string(::getpid());
  mixserve::RemoveTree(repo);
  const std::string from = A.mixer.type.empty() ? A.teacher : A.student;
  auto r = RunTool("export --model=" + from + " --repo=" + repo + " --name=en-de-test --data=" + kData +
               " --test_limit=20 --device=cpu");
  ASSERT_EQ(r.code, 0) << r.output;
  const std::string v1 = repo + "/en-de-test/1";
  for (const char* f : {"model.pbtxt", "model.pt", "spm.model", "metadata.json"})
    EXPECT_TRUE(fs::exists(v1 + "/" + f)) << f;
  auto meta = ReadModelMetadata(v1 + "/metadata.json");
  for (const char* k : {"parameters", "bleu_test"}) EXPECT_TRUE(meta.numbers.count(k)) << k;
  for (const char* k : {"created", "parent_teacher", "training_data", "test_set"})
    EXPECT_TRUE(meta.strings.count(k)) << k;
  if (!A.mixer.type.empty()) {
    EXPECT_EQ(fs::path(meta.strings["parent_teacher"]), fs::absolute(A.teacher).lexically_normal());
  }
  auto tok = Tokenizer::Load(from + "/spm.model");
  const auto srcs = ValSources(*tok, 12);
  EXPECT_EQ(TranslateDir(from, srcs), TranslateDir(v1, srcs));
  // Version 0 picks the next free number; fp16 weights still load.
  r = RunTool("export --model=" + from + " --repo=" + repo + " --name=en-de-test --fp16 --bleu=false");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(fs::exists(repo + "/en-de-test/2/model.pbtxt"));
  EXPECT_LT(fs::file_size(repo + "/en-de-test/2/model.pt"), fs::file_size(v1 + "/model.pt"));
  EXPECT_EQ(TranslateDir(repo + "/en-de-test/2", srcs).size(), srcs.size());
  mixserve::RemoveTree(repo);
}

TEST(OfflinePipeline, SweepWritesTableAndPlot) {
  REQUIRE_ARTIFACTS();
  if (A.mixer.type.empty()) GTEST_SKIP() << "no attention replacement mixer is registered";
  const std::string out = A.work + "/sweep_" + std::to_string(::getpid());
  mixserve::RemoveTree(out);
  // Two configurations: two sites when the mixer has them, else two sizes.
  std::string grid;
  if (A.mixer.sites.size() >= 2)
    grid = "--sites=" + A.mixer.sites[0] + "," + A.mixer.sites[1] +
           (A.mixer.size.empty() ? " --sizes=-" : " --sizes=" + A.mixer.size);
  else
    grid = "--sites=" + A.mixer.sites[0] + " --sizes=xs,s";
  // The grid runs as two shards of one cell each, then the shards are merged.
  for (const char* shard : {"0/2", "1/2"}) {
    auto r = RunTool("sweep --teachers=" + A.teacher + " --out=" + out + "_" + shard[0] +
                     " --shard=" + shard + " --mixers=" + A.mixer.type + " " + grid +
                     " --include_teacher=false --data=" + kData +
                     " --limit=100 --max_steps=3 --valid_limit=10 --test_limit=10"
                     " --latency_sentences=3 --device=cpu --threads=2");
    ASSERT_EQ(r.code, 0) << r.output;
    EXPECT_EQ(ParseCsv(ReadFile(out + "_" + shard[0] + "/ablation.csv")).size(), 2u) << shard;
  }
  auto r = RunTool("sweep --merge=" + out + "_0," + out + "_1 --out=" + out);
  ASSERT_EQ(r.code, 0) << r.output;
  // --resume of shard 0's folder with the whole grid runs only the other cell and keeps the
  // row it had; --skip of that table then leaves nothing to run.
  const std::string whole = " --mixers=" + A.mixer.type + " " + grid +
                            " --include_teacher=false --data=" + kData +
                            " --limit=100 --max_steps=3 --valid_limit=10 --test_limit=10"
                            " --latency_sentences=3 --device=cpu --threads=2";
  const std::string resumed = out + "_resumed";
  fs::create_directories(resumed);
  for (const char* f : {"ablation.csv", "results.jsonl"})
    fs::copy_file(out + "_0/" + f, resumed + "/" + f);
  r = RunTool("sweep --teachers=" + A.teacher + " --out=" + resumed + " --resume" + whole);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("1 cells (0 skipped, 1 measured before)"), std::string::npos) << r.output;
  auto resumed_rows = ParseCsv(ReadFile(resumed + "/ablation.csv"));
  ASSERT_EQ(resumed_rows.size(), 3u) << ReadFile(resumed + "/ablation.csv");
  EXPECT_EQ(resumed_rows[1], ParseCsv(ReadFile(out + "_0/ablation.csv"))[1]);  // kept as it was
  EXPECT_EQ(ParseEvalResults(ReadFile(resumed + "/results.jsonl"), "results.jsonl").size(), 2u);
  r = RunTool("sweep --teachers=" + A.teacher + " --out=" + out + "_none --skip=" + resumed +
              "/ablation.csv" + whole);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("0 cells (0 skipped, 2 measured before)"), std::string::npos) << r.output;
  EXPECT_EQ(ParseCsv(ReadFile(out + "_none/ablation.csv")).size(), 1u);  // the header alone
  r = RunTool("sweep --teachers=" + A.teacher + " --out=" + out + "_bad --skip=" + out + "_nosuch.csv" + whole);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.output.find("--skip: " + out + "_nosuch.csv does not exist"), std::string::npos) << r.output;
  r = RunTool("sweep --merge=" + out + "_0," + out + "_missing --out=" + out + "_bad");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.output.find(out + "_missing/ablation.csv does not exist"), std::string::npos) << r.output;
  r = RunTool("sweep --teachers=" + A.teacher + " --out=" + out + "_bad --shard=2/2");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.output.find("--shard i/n needs 0 <= i < n"), std::string::npos) << r.output;
  auto rows = ParseCsv(ReadFile(out + "/ablation.csv"));
  ASSERT_EQ(rows.size(), 3u) << ReadFile(out + "/ablation.csv");
  EXPECT_EQ(rows[0], (std::vector<std::string>{"direction", "method", "size", "sites", "parameters",
                                               "bleu_test_2016_flickr", "bleu_test_2017_flickr",
                                               "latency_ms"}));
  for (size_t i = 1; i < rows.size(); ++i) {
    ASSERT_EQ(rows[i].size(), rows[0].size());
    EXPECT_EQ(rows[i][0], "en-de");
    EXPECT_EQ(rows[i][1], A.mixer.type);
    EXPECT_GT(std::stoll(rows[i][4]), 0);
    const double bleu = std::stod(rows[i][5]);
    EXPECT_GE(bleu, 0);
    EXPECT_LE(bleu, 100);
    EXPECT_GT(std::stod(rows[i][7]), 0);
  }
  const std::string svg = ReadFile(out + "/ablation.svg");
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  const std::string md = ReadFile(out + "/ablation.md");
  EXPECT_EQ(std::count(md.begin(), md.end(), '\n'), 4);  // header, rule, two rows
  EXPECT_EQ(ParseEvalResults(ReadFile(out + "/results.jsonl"), "results.jsonl").size(), 2u);
  // --latency_csv: a cell_bench table with the first cell only becomes a column of the merge.
  const std::string bench = out + "_bench.csv";
  WriteFile(bench, "method,size,sites,parameters,ms_per_translation,ratio_to_mha\n" + rows[1][1] +
                       "," + rows[1][2] + "," + rows[1][3] + ",1,12.500,1.100\n");
  r = RunTool("sweep --merge=" + out + "_0," + out + "_1 --out=" + out + "_lat --latency_csv=" + bench);
  ASSERT_EQ(r.code, 0) << r.output;
  auto lat = ParseCsv(ReadFile(out + "_lat/ablation.csv"));
  ASSERT_EQ(lat.size(), 3u);
  EXPECT_EQ(lat[0].back(), "bench_latency_ms");
  EXPECT_EQ(lat[1].back(), "12.500");
  EXPECT_EQ(lat[2].back(), "");  // a cell the bench table does not have
  WriteFile(bench, "method,size,sites,ms\n");
  r = RunTool("sweep --merge=" + out + "_0 --out=" + out + "_lat --latency_csv=" + bench);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.output.find("has no column 'ms_per_translation'"), std::string::npos) << r.output;
  r = RunTool("sweep --teachers=" + A.teacher + " --out=" + out + "_bad --latency_csv=" + bench);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.output.find("--latency_csv needs --merge"), std::string::npos) << r.output;
  fs::remove(bench);
  for (const std::string& d :
       {out, out + "_0", out + "_1", out + "_resumed", out + "_none", out + "_bad", out + "_lat"})
    mixserve::RemoveTree(d);
}

// eval: one JSON line per model, named by what the folder is (repository version, run
// checkpoint), with BLEU of each split for greedy and beam search.
TEST(OfflinePipeline, EvalWritesOneNamedJsonLinePerModel) {
  REQUIRE_ARTIFACTS();
  const std::string repo = A.work + "/eval_repo_" + std::to_string(::getpid());
  auto r = RunTool("export --model=" + A.teacher + " --repo=" + repo + " --name=en-de-eval --bleu=false");
  ASSERT_EQ(r.code, 0) << r.output;
  const std::string out = repo + "/eval.jsonl";
  r = RunTool("eval --model=" + A.teacher + "," + repo + "/en-de-eval/1/ --data=" + kData +
              " --splits=test_2016_flickr --limit=6 --beam=2 --latency_sentences=2 --batch_size=4"
              " --device=cpu --threads=2 --out=" + out);
  ASSERT_EQ(r.code, 0) << r.output;
  const auto lines = ParseEvalResults(ReadFile(out), out);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].name, fs::path(A.teacher_out).filename().string() + "/best");
  EXPECT_EQ(lines[1].name, "en-de-eval:1");
  for (const auto& l : lines) {
    EXPECT_EQ(l.src, "en");
    EXPECT_EQ(l.tgt, "de");
    ASSERT_TRUE(l.splits.count("test_2016_flickr"));
    const SplitResult& split = l.splits.at("test_2016_flickr");
    EXPECT_EQ(split.sentences, 6u);
    for (const double b : {split.bleu_greedy, split.bleu_beam}) {
      EXPECT_GE(b, 0);
      EXPECT_LE(b, 100);
    }
  }
  // Both lines describe the same weights (fp32 export of the same checkpoint).
  for (const auto& [name, s] : lines[0].splits) {
    ASSERT_TRUE(lines[1].splits.count(name)) << name;
    EXPECT_EQ(s.bleu_greedy, lines[1].splits.at(name).bleu_greedy) << name;
    EXPECT_EQ(s.bleu_beam, lines[1].splits.at(name).bleu_beam) << name;
  }
  mixserve::RemoveTree(repo);
}

TEST(OfflinePipeline, BadInputsFailClearly) {
  REQUIRE_ARTIFACTS();
  const std::string out = A.work + "/bad";
  struct Case {
    std::string args, message;
    int code;
  };
  // A model folder whose tokenizer has another vocabulary size.
  const std::string wrong = A.work + "/wrong_vocab";
  if (!fs::exists(wrong + "/spm.model")) {
    fs::create_directories(wrong);
    for (const char* f : {"model.pbtxt", "model.pt", "metadata.json"})
      fs::copy_file(A.teacher + "/" + f, wrong + "/" + f, fs::copy_options::overwrite_existing);
    auto r = RunTool("spm --data=" + kData + " --src=en --tgt=de --limit=200 --vocab_size=200 --out=" + wrong + "/spm");
    ASSERT_EQ(r.code, 0) << r.output;
  }
  // A model folder whose metadata.json does not match mixserve.v1.ModelMetadata, and a sweep
  // folder whose results.jsonl has a line that is no EvalResult.
  const std::string bad_meta = A.work + "/bad_metadata", bad_sweep = A.work + "/bad_sweep";
  fs::create_directories(bad_meta);
  for (const char* f : {"model.pbtxt", "model.pt", "spm.model"})
    fs::copy_file(A.teacher + "/" + f, bad_meta + "/" + f, fs::copy_options::overwrite_existing);
  WriteFile(bad_meta + "/metadata.json", "{\"parameters\": \"many\"}\n");
  fs::create_directories(bad_sweep);
  WriteFile(bad_sweep + "/ablation.csv",
            "direction,method,size,sites,parameters,bleu_t,latency_ms\nen-de,alr,s,enc,1,2.00,3.00\n");
  WriteFile(bad_sweep + "/results.jsonl", "{\"model\": \"m\"}\n{\"model\": 7}\n");
  const std::vector<Case> cases = {
      {"nosuchcommand", "ERROR: Unknown command 'nosuchcommand'", 2},
      {"export --model=" + bad_meta + " --repo=" + out + " --name=x --bleu=false",
       bad_meta + "/metadata.json: not a valid mixserve.v1.ModelMetadata", 1},
      {"sweep --merge=" + bad_sweep + " --out=" + out + "/merged",
       bad_sweep + "/results.jsonl:2: not a valid mixserve.v1.EvalResult", 1},
      {"train --bogus=1", "ERROR: Unknown command line flag 'bogus'", 2},
      {"train --src=en --tgt=de --out=" + out, "ERROR: Missing the required flag 'spm'", 2},
      {"train --spm=/nonexistent/x.model --src=en --tgt=de --out=" + out, "/nonexistent/x.model", 1},
      {"train --spm=" + A.spm + ".model --src=en --tgt=xx --data=" + kData + " --out=" + out,
       "train.xx", 1},
      {"train --spm=" + A.spm + ".model --src=en --tgt=de --epochs=abc --out=" + out,
       "ERROR: Illegal value 'abc' specified for flag 'epochs'", 2},
      {"train --spm=" + A.spm + ".model --src=en --tgt=de --encoder_mixer=nosuchmixer --limit=10 "
       "--data=" + kData + " --out=" + out, "nosuchmixer", 1},
      {"distill --teacher=" + A.teacher + " --out=" + out + " --mixer=nosuchmixer", "unknown mixer 'nosuchmixer'", 2},
      {"train --spm=" + A.spm + ".model --src=en --tgt=de --device=cpu --precision=fp16 --out=" + out,
       "--precision=fp16 needs a CUDA device", 2},
      {"distill --teacher=" + A.teacher + " --out=" + out + " --mixer=alr --precision=half",
       "--precision: unknown value 'half'", 2},
      {"distill --teacher=/nonexistent --out=" + out + " --mixer=alr", "/nonexistent", 1},
      {"eval --model=" + wrong + " --data=" + kData + " --limit=5", "vocabulary mismatch", 1},
      {"export --model=" + A.teacher + " --repo=" + out + " --name=bad/name", "--name", 2},
  };
  for (const auto& c : cases) {
    auto r = RunTool(c.args);
    EXPECT_EQ(r.code, c.code) << c.args << "\n" << r.output;
    EXPECT_NE(r.output.find(c.message), std::string::npos) << c.args << "\n" << r.output;
    EXPECT_EQ(r.output.find("terminate called"), std::string::npos) << r.output;
  }
  auto help = RunTool("distill --help");
  EXPECT_EQ(help.code, 0);
  EXPECT_NE(help.output.find("--teacher"), std::string::npos);
}

}  // namespace
}  // namespace mixserve::offline
