// The JSON records of the offline pipeline and model directories (proto/mixserve/v1/
// records.proto): round trips, the files already in models/ and docs/data/, and bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "config/json_io.h"
#include "config/model_metadata.h"
#include "offline/records.h"

namespace mixserve::offline {
namespace {

namespace fs = std::filesystem;

std::string Source(const std::string& rel) { return std::string(MIXSERVE_SOURCE_DIR) + "/" + rel; }

// The message of the std::runtime_error that `f` throws ("" when it throws none).
template <typename F>
std::string Error(F f) {
  try {
    f();
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

std::string TempPath(const std::string& name) {
  return (fs::path(testing::TempDir()) / ("records_test_" + name)).string();
}

TEST(ModelMetadata, RoundTripsAndKeepsFieldNamesAndNumbers) {
  FlatRecord in;
  in.strings = {{"name", "en-de \"x\"\n"}, {"kind", "distilled"}, {"version", "3"}};
  in.numbers = {{"parameters", 1829248}, {"bleu_test", 33.25}, {"val_bleu", std::nan("")}};
  const std::string text = FormatModelMetadata(in);
  // Snake-case keys as before, numbers as JSON numbers (no quoted 64-bit integers).
  EXPECT_NE(text.find("\"parameters\": 1829248"), std::string::npos) << text;
  EXPECT_NE(text.find("\"bleu_test\": 33.25"), std::string::npos) << text;
  EXPECT_EQ(text.find("val_bleu"), std::string::npos) << "non-finite numbers are left out\n" << text;
  const FlatRecord out = ParseModelMetadata(text, "metadata.json");
  EXPECT_EQ(out.strings, in.strings);
  EXPECT_EQ(out.numbers.size(), 2u);
  EXPECT_EQ(out.numbers.at("parameters"), 1829248);
  EXPECT_EQ(out.numbers.at("bleu_test"), 33.25);
}

TEST(ModelMetadata, RefusesKeysAndTypesTheSchemaLacks) {
  FlatRecord unknown;
  unknown.strings["no_such_field"] = "x";
  try {
    FormatModelMetadata(unknown);
    ADD_FAILURE() << "an unknown key was written";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("'no_such_field' is not a field of mixserve.v1.ModelMetadata"),
              std::string::npos)
        << e.what();
  }
  FlatRecord wrong_type;
  wrong_type.numbers["name"] = 1;
  EXPECT_THROW(FormatModelMetadata(wrong_type), std::invalid_argument);
}

TEST(ModelMetadata, ReadsNullAsUnsetAndNamesTheFileOfBadInput) {
  // Files written before the schema had null for non-finite numbers.
  const FlatRecord old = ParseModelMetadata("{\"val_bleu\": null, \"name\": \"a\"}", "old.json");
  EXPECT_EQ(old.numbers.count("val_bleu"), 0u);
  EXPECT_EQ(old.strings.at("name"), "a");
  for (const char* bad : {"{\"parameters\": 1", "{\"parameters\": \"many\"}", "{\"seeds\": 1}", "[]", ""}) {
    const std::string e = Error([&] { ParseModelMetadata(bad, "dir/metadata.json"); });
    EXPECT_EQ(e.rfind("dir/metadata.json: not a valid mixserve.v1.ModelMetadata", 0), 0u)
        << bad << " -> " << e;
  }
  EXPECT_NE(Error([] { ReadModelMetadata("/nonexistent/metadata.json"); }).find("/nonexistent/metadata.json"),
            std::string::npos);
}

// Every version directory in models/ (written by export) loads with the schema.
TEST(ModelMetadata, EveryShippedModelLoads) {
  int seen = 0;
  for (const auto& model : fs::directory_iterator(Source("models"))) {
    if (!model.is_directory()) continue;
    for (const auto& version : fs::directory_iterator(model.path())) {
      const fs::path path = version.path() / "metadata.json";
      if (!fs::exists(path)) continue;
      ++seen;
      FlatRecord m;
      ASSERT_NO_THROW(m = ReadModelMetadata(path.string())) << path;
      EXPECT_GT(m.numbers["parameters"], 0) << path;
      EXPECT_EQ(m.strings["name"], model.path().filename().string()) << path;
      EXPECT_EQ(m.strings["version"], version.path().filename().string()) << path;
      EXPECT_GT(m.numbers["bleu_test"], 0) << path;
    }
  }
  EXPECT_GT(seen, 0) << "no metadata.json under " << Source("models");
}

TEST(EvalResult, RoundTripsWithAndWithoutSweepCell) {
  EvalResult r;
  r.model_dir = "models/en-de-base/1";
  r.name = "en-de-base:1";
  r.src = "en";
  r.tgt = "de";
  r.parameters = 1901056;
  r.device = "cpu";
  r.dtype = "fp32";
  r.splits["test_2016_flickr"] = SplitResult{1000, 34.5, 35.25};
  r.splits["test_2017_flickr"] = SplitResult{1000, 25.5, -1};
  r.latency_sentences = 30;
  r.latency_ms_mean = 38.5;
  r.batch_size = 64;
  r.tokens_per_s = 1938.75;
  const std::string plain = EvalResultJson(r);
  EXPECT_EQ(plain.find('\n'), std::string::npos) << "one line";
  for (const char* key : {"\"latency_batch1\":", "\"ms_per_sentence\":", "\"bleu_greedy\":",
                          "\"parameters\":1901056"})
    EXPECT_NE(plain.find(key), std::string::npos) << key << " in " << plain;
  EXPECT_EQ(plain.find("direction"), std::string::npos) << plain;
  const SweepCell cell{"en-de", "alr", "xs", "encoder_self"};
  const std::string row = EvalResultJson(r, &cell);
  EXPECT_NE(row.find("\"method\":\"alr\""), std::string::npos) << row;

  const auto back = ParseEvalResults(plain + "\n\n" + row + "\n", "results.jsonl");
  ASSERT_EQ(back.size(), 2u);
  for (const auto& b : back) {
    EXPECT_EQ(b.name, r.name);
    EXPECT_EQ(b.parameters, r.parameters);
    EXPECT_EQ(b.splits.at("test_2016_flickr").bleu_beam, 35.25);
    EXPECT_EQ(b.splits.at("test_2017_flickr").bleu_beam, -1) << "no beam pass: absent";
    EXPECT_EQ(b.latency_ms_mean, 38.5);
    EXPECT_EQ(b.tokens_per_s, 1938.75);
  }
  const std::string e = Error([&] { ParseEvalResults(plain + "\n{\"splits\": 3}\n", "runs/eval.jsonl"); });
  EXPECT_EQ(e.rfind("runs/eval.jsonl:2: not a valid mixserve.v1.EvalResult", 0), 0u) << e;
}

// Every JSON-lines file in docs/data is eval or sweep output and loads with the schema.
TEST(EvalResult, EveryPublishedResultsFileLoads) {
  int files = 0;
  for (const auto& e : fs::recursive_directory_iterator(Source("docs/data"))) {
    if (e.path().extension() != ".jsonl") continue;
    ++files;
    std::ifstream in(e.path());
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::vector<EvalResult> rows;
    ASSERT_NO_THROW(rows = ParseEvalResults(text, e.path().string())) << e.path();
    EXPECT_FALSE(rows.empty()) << e.path();
    for (const auto& r : rows) {
      EXPECT_FALSE(r.name.empty()) << e.path();
      EXPECT_FALSE(r.splits.empty()) << e.path();
      EXPECT_GT(r.parameters, 0) << e.path();
    }
  }
  EXPECT_GT(files, 0);
}

TEST(TrainState, RoundTripsAndNamesTheFileOfBadInput) {
  const std::string path = TempPath("train_state.json");
  WriteTrainState(path, TrainState{1200, 3, 17, 21.5, 900});
  const TrainState s = ReadTrainState(path);
  EXPECT_EQ(s.step, 1200);
  EXPECT_EQ(s.epoch, 3);
  EXPECT_EQ(s.batch, 17);
  EXPECT_EQ(s.best_bleu, 21.5);
  EXPECT_EQ(s.best_step, 900);
  EXPECT_NE(ReadTextFile(path).find("\"step\": 1200"), std::string::npos) << ReadTextFile(path);
  WriteTextFile(path, "{\"step\": 1.5}");
  EXPECT_EQ(Error([&] { ReadTrainState(path); }).rfind(path + ": not a valid mixserve.v1.TrainState", 0), 0u);
  EXPECT_THROW(WriteTrainState(path, TrainState{int64_t{1} << 40, 0, 0, 0, 0}), std::invalid_argument);
}

TEST(MetricsEvent, LinesRoundTripAndUnknownFieldsAreRefused) {
  const std::string path = TempPath("metrics.jsonl");
  FlatRecord train;
  train.numbers = {{"step", 400}, {"epoch", 0}, {"loss", 5.125}, {"lr", 5.12e-4},
                   {"tokens_per_s", std::nan("")}};
  FlatRecord site;
  site.strings = {{"site", "encoder_self"}};
  site.numbers = {{"layer", 1}, {"before", 0.5}, {"after", 0.25}};
  const std::string line = MetricsEventJson("train", 1765000000.25, train);
  EXPECT_NE(line.find("\"loss\":5.125"), std::string::npos) << line;
  EXPECT_NE(line.find("\"epoch\":0"), std::string::npos) << "a field set to 0 is written: " << line;
  EXPECT_EQ(line.find("tokens_per_s"), std::string::npos) << "non-finite left out: " << line;
  EXPECT_EQ(line.find("flags"), std::string::npos) << "only the config event has flags: " << line;
  WriteTextFile(path, MetricsEventJson("config", 1, {}, {{"lr", "1e-3"}, {"epochs", "2"}}) + "\n" +
                          line + "\n" + MetricsEventJson("block_mse", 2, site) + "\n");
  const auto events = ReadMetricsLog(path);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].event, "config");
  EXPECT_EQ(events[0].flags.at("lr"), "1e-3");
  EXPECT_EQ(events[1].event, "train");
  EXPECT_EQ(events[1].time, 1765000000.25);
  EXPECT_EQ(events[1].fields.numbers.at("step"), 400);
  EXPECT_EQ(events[1].fields.numbers.at("loss"), 5.125);
  EXPECT_EQ(events[1].fields.numbers.count("time"), 0u);
  EXPECT_EQ(events[2].fields.strings.at("site"), "encoder_self");
  EXPECT_EQ(events[2].fields.numbers.at("after"), 0.25);

  FlatRecord unknown;
  unknown.numbers["loss_typo"] = 1;
  EXPECT_THROW(MetricsEventJson("train", 0, unknown), std::invalid_argument);
  FlatRecord fractional_step;
  fractional_step.numbers["step"] = 1.5;
  EXPECT_THROW(MetricsEventJson("train", 0, fractional_step), std::invalid_argument);
  WriteTextFile(path, line + "\nnot json\n");
  EXPECT_EQ(Error([&] { ReadMetricsLog(path); }).rfind(path + ":2: ", 0), 0u);
}

}  // namespace
}  // namespace mixserve::offline
