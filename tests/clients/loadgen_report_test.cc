// mixserve-loadgen's report: per-variant aggregation, pairing of A/B comparisons, the table,
// JSON and SVG outputs, and the command line.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "clients/cli/args.h"
#include "clients/loadgen/options.h"
#include "clients/loadgen/report.h"
#include "clients/loadgen/svg_histogram.h"
#include "config/json_io.h"
#include "mixserve/v1/records.pb.h"
#include "text/bleu.h"

namespace mixserve::loadgen {
namespace {

const std::vector<std::string> kRefs = {
    "a man rides a red bike .", "two dogs play in the snow .", "a woman is reading a book .",
    "children run on the beach .", "a cat sleeps on the sofa ."};

Record Ok(std::size_t sentence, const std::string& variant, const std::string& text,
          double ms) {
  Record r;
  r.sentence = sentence;
  r.variant = variant;
  r.served_by = variant;
  r.translation = text;
  r.latency_ms = ms;
  r.input_tokens = 5;
  r.output_tokens = 7;
  return r;
}

Record Failed(std::size_t sentence, const std::string& variant, int code) {
  Record r;
  r.sentence = sentence;
  r.variant = variant;
  r.status = code;
  r.message = "failure " + std::to_string(code);
  r.latency_ms = 1;
  return r;
}

TEST(Report, AggregatesPerVariant) {
  RunInfo run;
  run.mode = "closed";
  run.wall_s = 2;
  std::vector<Record> recs;
  // b:1 answers sentences 0-2 perfectly; a:1 answers 1-4 with a poorer translation.
  for (std::size_t i = 0; i < 3; ++i) recs.push_back(Ok(i, "b:1", kRefs[i], 10 + i));
  for (std::size_t i = 1; i < 5; ++i) recs.push_back(Ok(i, "a:1", "a man on a bike .", 20 + i));
  recs.push_back(Ok(1, "a:1", kRefs[1], 99));  // a repeat: BLEU keeps the first answer
  recs.push_back(Failed(0, kUnroutedLabel, 14));
  recs.push_back(Failed(0, kUnroutedLabel, 4));
  recs.push_back(Failed(0, kUnroutedLabel, 14));
  const Report r = BuildReport(run, recs, kRefs, BootstrapOptions{});

  ASSERT_EQ(r.variants.size(), 3u);
  EXPECT_EQ(r.variants[0].label, "a:1");  // sorted, unrouted last
  EXPECT_EQ(r.variants[1].label, "b:1");
  EXPECT_EQ(r.variants[2].label, kUnroutedLabel);
  const VariantReport& a = r.variants[0];
  EXPECT_EQ(a.requests, 5u);
  EXPECT_EQ(a.ok, 5u);
  EXPECT_DOUBLE_EQ(a.sentences_per_s, 2.5);
  EXPECT_DOUBLE_EQ(a.output_tokens_per_s, 5 * 7 / 2.0);
  EXPECT_DOUBLE_EQ(a.latency.max, 99);
  EXPECT_EQ(a.bleu_sentences, 4u);
  std::vector<std::string> hyps(4, "a man on a bike ."), refs(kRefs.begin() + 1, kRefs.end());
  EXPECT_DOUBLE_EQ(a.bleu, CorpusBleu(hyps, refs).score);
  EXPECT_DOUBLE_EQ(r.variants[1].bleu, 100);
  const VariantReport& u = r.variants[2];
  EXPECT_EQ(u.requests, 3u);
  EXPECT_EQ(u.ok, 0u);
  EXPECT_EQ(u.errors.at("UNAVAILABLE"), 2u);
  EXPECT_EQ(u.errors.at("DEADLINE_EXCEEDED"), 1u);

  // One comparison (b against the baseline a), paired on sentences 1 and 2.
  ASSERT_EQ(r.comparisons.size(), 1u);
  const Comparison& c = r.comparisons[0];
  EXPECT_EQ(c.baseline, "a:1");
  EXPECT_EQ(c.candidate, "b:1");
  EXPECT_EQ(c.paired_sentences, 2u);
  ASSERT_TRUE(c.paired);
  EXPECT_DOUBLE_EQ(c.bootstrap.bleu_b, 100);
  EXPECT_DOUBLE_EQ(c.bootstrap.bleu_a,
                   CorpusBleu({"a man on a bike .", "a man on a bike ."},
                              {kRefs[1], kRefs[2]}).score);
  EXPECT_DOUBLE_EQ(c.ratio_p50, r.variants[1].latency.p50 / a.latency.p50);

  const std::string table = FormatTable(r);
  EXPECT_NE(table.find("UNAVAILABLE=2"), std::string::npos) << table;
  EXPECT_NE(table.find("UNAVAILABLE, e.g.: failure 14"), std::string::npos) << table;
  EXPECT_EQ(u.error_examples.at("DEADLINE_EXCEEDED"), "failure 4");
  EXPECT_NE(table.find("A/B: b:1 vs a:1"), std::string::npos) << table;
  const std::string json = ToJson(r);
  EXPECT_NE(json.find("\"p_value\": "), std::string::npos) << json;
  EXPECT_NE(json.find("\"paired_sentences\": 2"), std::string::npos) << json;

  // The JSON is a mixserve.v1.LoadgenReport with the report's numbers.
  v1::LoadgenReport pb;
  JsonToMessage(json, "report", &pb);
  EXPECT_EQ(pb.run().mode(), "closed");
  EXPECT_EQ(pb.run().wall_s(), 2);
  ASSERT_EQ(pb.variants_size(), 3);
  EXPECT_EQ(pb.variants(0).variant(), "a:1");
  EXPECT_EQ(pb.variants(0).bleu(), a.bleu);
  EXPECT_EQ(pb.variants(0).latency_ms().max(), 99);
  EXPECT_EQ(pb.variants(2).errors().at("UNAVAILABLE"), 2);
  EXPECT_EQ(pb.variants(2).error_examples().at("DEADLINE_EXCEEDED"), "failure 4");
  EXPECT_FALSE(pb.variants(2).has_bleu()) << "no sentence answered: no BLEU";
  EXPECT_EQ(json.find("NaN"), std::string::npos) << json;
  ASSERT_EQ(pb.comparisons_size(), 1);
  const auto& pc = pb.comparisons(0);
  EXPECT_EQ(pc.p_value(), c.bootstrap.p_value);
  EXPECT_EQ(pc.bleu_difference(), c.bootstrap.difference);
  ASSERT_EQ(pc.difference_ci95_size(), 2);
  EXPECT_EQ(pc.difference_ci95(0), c.bootstrap.diff_ci_low);
  EXPECT_EQ(pc.latency_ratio().p50(), c.ratio_p50);
}

// Every loadgen report published in docs/data loads as a mixserve.v1.LoadgenReport. The
// other JSON files there come from other writers: Google Benchmark (mixer_bench,
// decode_bench: mixer_*.json, decode*.json), bench/reference/marian_generate.py
// (marian*.json) and bench/reference/ct2_compare.py (ct2*.json).
TEST(Report, EveryPublishedReportLoads) {
  namespace fs = std::filesystem;
  int reports = 0, others = 0;
  for (const auto& e : fs::recursive_directory_iterator(std::string(MIXSERVE_SOURCE_DIR) + "/docs/data")) {
    if (e.path().extension() != ".json") continue;
    const std::string name = e.path().filename().string();
    if (name.rfind("marian", 0) == 0 || name.rfind("mixer_", 0) == 0 ||
        name.rfind("decode", 0) == 0 || name.rfind("ct2", 0) == 0) {
      ++others;
      continue;
    }
    ++reports;
    std::ifstream in(e.path());
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    v1::LoadgenReport pb;
    ASSERT_NO_THROW(JsonToMessage(text, e.path().string(), &pb)) << e.path();
    EXPECT_FALSE(pb.run().mode().empty()) << e.path();
    EXPECT_GT(pb.variants_size(), 0) << e.path();
  }
  EXPECT_GT(reports, 0);
  EXPECT_GT(others, 0);
}

TEST(Report, BadJsonNamesTheFile) {
  v1::LoadgenReport pb;
  for (const char* bad : {"{\"run\": {\"mode\": 3}}", "{\"variants\": [", "{\"runs\": {}}"}) {
    try {
      JsonToMessage(bad, "ab.json", &pb);
      ADD_FAILURE() << bad << " was accepted";
    } catch (const std::runtime_error& e) {
      EXPECT_EQ(std::string(e.what()).rfind("ab.json: not a valid mixserve.v1.LoadgenReport", 0), 0u)
          << e.what();
    }
  }
}

TEST(Report, ForcedVariantsKeepTheirOrderAndUnpairedComparisons) {
  RunInfo run;
  run.mode = "open";
  run.wall_s = 1;
  run.forced_variants = {"z", "m"};
  std::vector<Record> recs = {Ok(0, "z", kRefs[0], 5), Ok(1, "m", kRefs[1], 6)};
  const Report r = BuildReport(run, recs, kRefs, BootstrapOptions{});
  ASSERT_EQ(r.variants.size(), 2u);
  EXPECT_EQ(r.variants[0].label, "z");
  ASSERT_EQ(r.comparisons.size(), 1u);
  EXPECT_FALSE(r.comparisons[0].paired);  // no sentence answered by both
  EXPECT_NE(FormatTable(r).find("unpaired"), std::string::npos);
}

TEST(Report, StatusNames) {
  EXPECT_EQ(StatusName(0), "OK");
  EXPECT_EQ(StatusName(4), "DEADLINE_EXCEEDED");
  EXPECT_EQ(StatusName(8), "RESOURCE_EXHAUSTED");
  EXPECT_EQ(StatusName(14), "UNAVAILABLE");
  EXPECT_EQ(StatusName(16), "UNAUTHENTICATED");
  EXPECT_EQ(StatusName(99), "STATUS_99");
}

TEST(Report, WarmupLeavesOutEarlyRequests) {
  std::vector<Record> recs;
  for (int i = 0; i < 10; ++i) {
    recs.push_back(Ok(0, "a", kRefs[0], 1));
    recs.back().sent_s = i * 0.5;  // 0, 0.5, ..., 4.5
  }
  size_t excluded = 0;
  const auto kept = AfterWarmup(recs, 2.0, &excluded);
  EXPECT_EQ(excluded, 4u);  // 0, 0.5, 1, 1.5
  ASSERT_EQ(kept.size(), 6u);
  EXPECT_DOUBLE_EQ(kept.front().sent_s, 2.0);
  EXPECT_EQ(AfterWarmup(recs, 0, &excluded).size(), 10u);
  EXPECT_EQ(excluded, 0u);
}

TEST(Report, JsonEscapesStrings) {
  RunInfo run;
  run.forced_variants = {"we\"ird\\name"};
  const Report r = BuildReport(run, {}, kRefs, BootstrapOptions{});
  EXPECT_NE(ToJson(r).find("\"we\\\"ird\\\\name\""), std::string::npos);
}

TEST(Svg, OnePanelPerVariantWithOneBarPerFilledBin) {
  RunInfo run;
  run.mode = "closed";
  run.wall_s = 1;
  std::vector<Record> recs;
  for (int i = 0; i < 50; ++i) recs.push_back(Ok(0, "a<1>", kRefs[0], 10));
  for (int i = 0; i < 50; ++i) recs.push_back(Ok(0, "b", kRefs[0], 100));
  const Report r = BuildReport(run, recs, kRefs, BootstrapOptions{});
  const std::string svg = LatencyHistogramSvg(r, 20);
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("</svg>\n"), std::string::npos);
  EXPECT_NE(svg.find("a&lt;1&gt;"), std::string::npos);  // labels are escaped
  // Each variant has all its latencies in one bin: one bar each, titled with the count.
  std::size_t bars = 0;
  for (std::size_t p = svg.find(" ms: 50</title>"); p != std::string::npos;
       p = svg.find(" ms: 50</title>", p + 1))
    ++bars;
  EXPECT_EQ(bars, 2u);
  EXPECT_EQ(svg.find("<script"), std::string::npos);
}

std::vector<char*> Argv(std::vector<std::string>& args) {
  std::vector<char*> out;
  for (auto& a : args) out.push_back(a.data());
  return out;
}

TEST(Options, ParsesAndValidates) {
  std::vector<std::string> args = {"mixserve-loadgen", "--src=s", "--ref=r", "--src-lang=en",
                                   "--tgt-lang=de", "--qps=20", "--duration=3",
                                   "--variants=base,alt:2", "--routing-key=fixed:k1"};
  auto argv = Argv(args);
  Options o;
  std::string error;
  ASSERT_EQ(ParseOptions(static_cast<int>(argv.size()), argv.data(), &o, &error), 0) << error;
  EXPECT_DOUBLE_EQ(o.qps, 20);
  EXPECT_DOUBLE_EQ(o.duration_s, 3);
  ASSERT_EQ(o.variants.size(), 2u);
  EXPECT_EQ(o.variants[1].name, "alt");
  EXPECT_EQ(o.variants[1].version, 2);
  EXPECT_EQ(o.routing_key_mode, RoutingKeyMode::kFixed);
  EXPECT_EQ(o.fixed_routing_key, "k1");

  const std::vector<std::vector<std::string>> bad_lines = {
      {"--qps=0"}, {"--concurrency=0"}, {"--variants=a,a"}, {"--variants=a:x"},
      {"--routing-key=weird"}, {"--deadline-ms=-1"}, {"--bogus=1"}, {"--qps=abc"},
      {"--qps=5", "--concurrency=2"}, {"--warmup=-1"}, {"--duration=2", "--warmup=3"}};
  for (const auto& bad : bad_lines) {
    std::vector<std::string> b = {"mixserve-loadgen", "--src=s", "--ref=r", "--src-lang=en",
                                  "--tgt-lang=de"};
    b.insert(b.end(), bad.begin(), bad.end());
    auto bv = Argv(b);
    Options ob;
    error.clear();
    EXPECT_EQ(ParseOptions(static_cast<int>(bv.size()), bv.data(), &ob, &error), 2) << bad[0];
    EXPECT_FALSE(error.empty()) << bad[0];
  }
  std::vector<std::string> missing = {"mixserve-loadgen", "--src=s"};
  auto mv = Argv(missing);
  Options om;
  EXPECT_EQ(ParseOptions(static_cast<int>(mv.size()), mv.data(), &om, &error), 2);
  EXPECT_NE(error.find("--ref"), std::string::npos);

  // Flag errors in Abseil's words (base/flags.h); every parse starts from the defaults.
  auto error_of = [&](std::vector<std::string> extra) {
    std::vector<std::string> b = {"mixserve-loadgen", "--src=s", "--ref=r", "--src-lang=en",
                                  "--tgt-lang=de"};
    b.insert(b.end(), extra.begin(), extra.end());
    auto bv = Argv(b);
    Options ob;
    error.clear();
    EXPECT_EQ(ParseOptions(static_cast<int>(bv.size()), bv.data(), &ob, &error), 2);
    return error;
  };
  EXPECT_EQ(error_of({"--bogus=1"}), "Unknown command line flag 'bogus'");
  EXPECT_EQ(error_of({"--max-inflight=lots"}),
            "Illegal value 'lots' specified for flag 'max-inflight'");
  EXPECT_EQ(error_of({"--seed", "-1"}), "Illegal value '-1' specified for flag 'seed'");
  std::vector<std::string> spaced = {"mixserve-loadgen", "--src", "s", "--ref", "r", "--src_lang",
                                     "en", "--tgt-lang", "de", "--count", "5", "--quiet"};
  auto sv = Argv(spaced);
  Options os;
  ASSERT_EQ(ParseOptions(static_cast<int>(sv.size()), sv.data(), &os, &error), 0) << error;
  EXPECT_EQ(os.count, 5);
  EXPECT_TRUE(os.quiet);
  EXPECT_EQ(os.concurrency, 8);
  EXPECT_DOUBLE_EQ(os.qps, 0);  // from the first parse above, reset
  EXPECT_TRUE(os.variants.empty());
}

}  // namespace
}  // namespace mixserve::loadgen

namespace mixserve::cli {
namespace {

// NAME[:VERSION] as both command-line tools read it.
TEST(VariantRef, NameAndOptionalVersion) {
  std::string name;
  int64_t version = -1;
  ASSERT_TRUE(ParseVariantRef("en-de-base", &name, &version));
  EXPECT_EQ(name, "en-de-base");
  EXPECT_EQ(version, 0);
  ASSERT_TRUE(ParseVariantRef("en-de-aft:12", &name, &version));
  EXPECT_EQ(name, "en-de-aft");
  EXPECT_EQ(version, 12);
  for (const char* bad : {"", ":3", "x:", "x:-1", "x:+1", "x:1a", "x: 1", "x:99999999999999999999"})
    EXPECT_FALSE(ParseVariantRef(bad, &name, &version)) << bad;
  loadgen::ForcedVariant v;
  ASSERT_TRUE(loadgen::ParseVariant("a:2", &v));
  EXPECT_EQ(v.label, "a:2");
  EXPECT_EQ(v.name, "a");
  EXPECT_EQ(v.version, 2);
}

}  // namespace
}  // namespace mixserve::cli
