// mixserve-cli against the real mixserve-server (tiny random-weight models on loopback):
// translation from arguments, stdin and files (streamed), JSON output, health, administration,
// and the exit status and message of every kind of failure; files and stdin through a small
// queue (every line translated, in order), retries of rate-limited lines, per-line deadlines,
// failed lines, a server restart mid-file, and documents.
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <future>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "base/remove_tree.h"
#include "tests/server/support/server_fixture.h"

namespace mixserve {
namespace {
using namespace mixserve::testing;

struct Outcome {
  int exit_code = -1;
  std::string out;  // stdout
  std::string all;  // stdout and stderr
};

// Runs `mixserve-cli <args>` through the shell (so that `stdin_text` can be piped in).
Outcome RunCli(const std::string& args, const std::string& stdin_text = "") {
  const std::string dir = MakeTempDir("cli");
  const std::string in = dir + "/stdin", out = dir + "/stdout", err = dir + "/stderr";
  std::ofstream(in) << stdin_text;
  const std::string cmd = std::string(MIXSERVE_BINARY_DIR) + "/clients/mixserve-cli " + args +
                          " < " + in + " > " + out + " 2> " + err;
  const int status = std::system(cmd.c_str());
  Outcome o;
  o.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::stringstream so, se;
  so << std::ifstream(out).rdbuf();
  se << std::ifstream(err).rdbuf();
  o.out = so.str();
  o.all = o.out + se.str();
  RemoveTree(dir);
  return o;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream is(text);
  for (std::string l; std::getline(is, l);) lines.push_back(l);
  return lines;
}

class CliE2E : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new ServerProcess();
    std::string error;
    if (!server_->Start("model_repository: \"" + StandardRepository() + "\"\n", {}, &error))
      start_error_ = error;
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override { ASSERT_TRUE(start_error_.empty()) << start_error_; }
  static std::string Target() { return "--target=" + server_->address(); }

  static ServerProcess* server_;
  static std::string start_error_;
};
ServerProcess* CliE2E::server_ = nullptr;
std::string CliE2E::start_error_;

TEST_F(CliE2E, TranslatesArgumentsJoinedIntoOneSentence) {
  const std::string v = " --variant=en-de-base";
  const auto r = RunCli(Target() + " translate --from=en --to=de" + v + " A dog runs.");
  ASSERT_EQ(r.exit_code, 0) << r.all;
  ASSERT_EQ(Lines(r.out).size(), 1u) << r.out;
  const auto piped = RunCli(Target() + " translate --from=en --to=de" + v, "A dog runs.\n");
  ASSERT_EQ(piped.exit_code, 0) << piped.all;
  EXPECT_EQ(r.out, piped.out);
}

TEST_F(CliE2E, TranslatesStdinAndStreamsFilesInOrder) {
  const auto sents = Sentences("en", 6);
  std::string text;
  for (const auto& s : sents) text += s + "\n";
  const auto piped = RunCli(Target() + " translate --from=en --to=de --variant=en-de-base", text);
  ASSERT_EQ(piped.exit_code, 0) << piped.all;
  EXPECT_EQ(Lines(piped.out).size(), sents.size());

  const std::string dir = MakeTempDir("cli-file");
  std::ofstream(dir + "/in.txt") << text;
  const auto streamed = RunCli(Target() + " translate --from=en --to=de --variant=en-de-base --file=" +
                               dir + "/in.txt");
  RemoveTree(dir);
  ASSERT_EQ(streamed.exit_code, 0) << streamed.all;
  // The same variant, greedy by default on both paths: the stream answers in input order.
  EXPECT_EQ(streamed.out, piped.out);
}

TEST_F(CliE2E, JsonNamesTheVariantThatAnswered) {
  const auto r = RunCli(Target() + " translate --json --from=de --to=en 'Ein Hund rennt.'");
  ASSERT_EQ(r.exit_code, 0) << r.all;
  EXPECT_NE(r.out.find("\"variant\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("de-en-base"), std::string::npos) << r.out;
}

TEST_F(CliE2E, HealthAndModels) {
  const auto h = RunCli(Target() + " health");
  ASSERT_EQ(h.exit_code, 0) << h.all;
  EXPECT_NE(h.out.find("SERVING"), std::string::npos) << h.out;
  const auto m = RunCli(Target() + " models");
  ASSERT_EQ(m.exit_code, 0) << m.all;
  for (const char* name : {"en-de-base", "en-de-alt", "de-en-base"})
    EXPECT_NE(m.out.find(name), std::string::npos) << name << "\n" << m.out;
}

TEST_F(CliE2E, FailuresExitNonZeroWithAClearMessage) {
  struct Case {
    std::string args;
    int code;
    std::string needle;
  };
  const std::vector<Case> cases = {
      {"translate --to=de 'x'", 2, "--from"},
      {"frobnicate", 2, "frobnicate"},
      {"translate --from=en --to=de --beam=abc 'x'", 2, "flag 'beam'"},
      {"translate --from=en --to=de --variant=no-such-model 'x'", 1, "NOT_FOUND"},
      {"translate --from=en --to=xx 'x'", 1, "NOT_FOUND"},
      {"translate --from=en --to=de ''", 1, "INVALID_ARGUMENT"},
      {"unload", 2, "NAME"},
      {"translate --from=en --to=de --window=0", 2, "--window"},
      {"translate --from=en --to=de --segments 'x'", 2, "--document"},
      {"translate --from=en --to=de --document --n-best=2 --beam=2 'x'", 2, "--n-best"},
  };
  for (const auto& c : cases) {
    const auto r = RunCli(Target() + " " + c.args);
    EXPECT_EQ(r.exit_code, c.code) << c.args << "\n" << r.all;
    EXPECT_NE(r.all.find(c.needle), std::string::npos) << c.args << "\n" << r.all;
  }
  // Nothing listens on port 1.
  const auto down = RunCli("--target=127.0.0.1:1 --deadline-ms=2000 health");
  EXPECT_EQ(down.exit_code, 1) << down.all;
  EXPECT_NE(down.all.find("UNAVAILABLE"), std::string::npos) << down.all;
  // The server still answers after all of that.
  EXPECT_EQ(RunCli(Target() + " health").exit_code, 0);
}

TEST_F(CliE2E, HelpExitsZero) {
  const auto r = RunCli("--help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.all.find("usage: mixserve-cli"), std::string::npos) << r.all;
}

// Files and stdin line by line against a server whose queue holds 64 sentences and whose
// texts are at most 400 bytes; decoding can be held (the pause hook) to see what the client
// keeps in flight. The tiny random-weight models give the same greedy translation (often
// empty) for most sentences, so the tests that check order compare each line's JSON answer
// with the unary answer of its sentence (source token count and score tell sentences apart)
// or use a beam of 4, whose translations differ from sentence to sentence.
class CliLinesE2E : public ::testing::Test {
 protected:
  static std::string Config(const std::string& extra_limits = "") {
    return "model_repository: \"" + StandardRepository() +
           "\"\n"
           "limits { max_text_bytes: 400 " + extra_limits + " }\n"
           "models { name: \"en-de-base\" batching { max_queue_size: 64 } }\n";
  }
  static void SetUpTestSuite() {
    server_ = new ServerProcess();
    server_->EnablePauseHook();
    std::string error;
    if (!server_->Start(Config(), {}, &error)) start_error_ = error;
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override { ASSERT_TRUE(start_error_.empty()) << start_error_; }

  // The unary answer (Translate) of en-de-base to each text (0: the variant's defaults).
  static std::map<std::string, v1::TranslateResponse> Unary(ServerProcess& server,
                                                            const std::vector<std::string>& texts,
                                                            int beam, int max_tokens) {
    std::map<std::string, v1::TranslateResponse> out;
    auto stub = server.Translation();
    for (const auto& t : texts) {
      auto req = Request(t);
      req.mutable_variant()->set_name("en-de-base");
      req.mutable_options()->set_beam_size(beam);
      req.mutable_options()->set_max_output_tokens(max_tokens);
      grpc::ClientContext c;
      const grpc::Status st = stub->Translate(&c, req, &out[t]);
      EXPECT_TRUE(st.ok()) << t << ": " << st.error_message();
    }
    return out;
  }

  static ServerProcess* server_;
  static std::string start_error_;
};
ServerProcess* CliLinesE2E::server_ = nullptr;
std::string CliLinesE2E::start_error_;

const char* kLinesArgs = " translate --from=en --to=de --variant=en-de-base";
// Greedy answers of at most 12 tokens, as JSON (for ExpectJsonLines).
const char* kShortJson = " --max-tokens=12 --json";

// Polls /metrics until `ready` holds (about ten seconds at most); returns the last scrape.
template <typename Ready>
std::string WaitForMetrics(const ServerProcess& server, Ready ready) {
  std::string m;
  for (int i = 0; i < 500; ++i) {
    m = HttpGet(server.metrics_port(), "/metrics");
    if (ready(m)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return m;
}

// Sentences the variant holds: queued and decoding.
double Held(const std::string& metrics) {
  return MetricSum(metrics, "mixserve_queue_depth", {{"model", "en-de-base"}}) +
         MetricSum(metrics, "mixserve_inflight_sentences", {{"model", "en-de-base"}});
}

// Output of `--json` against the input lines `sources`: a blank source gives an empty line;
// line N is the answer to line-N, of its sentence (the unary answer's source token count,
// translation and score; the score within float rounding of another batch).
void ExpectJsonLines(const std::string& out, const std::vector<std::string>& sources,
                     const std::map<std::string, v1::TranslateResponse>& unary) {
  const auto got = Lines(out);
  ASSERT_EQ(got.size(), sources.size());
  for (size_t i = 0; i < got.size(); ++i) {
    SCOPED_TRACE("line " + std::to_string(i + 1) + ": " + got[i].substr(0, 300));
    if (sources[i].empty()) {
      ASSERT_EQ(got[i], "");
      continue;
    }
    v1::TranslateResponse r;
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(got[i], &r).ok());
    const auto& want = unary.at(sources[i]);
    ASSERT_EQ(r.request_id(), "line-" + std::to_string(i + 1));
    ASSERT_EQ(r.status_code(), 0) << r.status_message();
    ASSERT_EQ(r.input_tokens(), want.input_tokens());
    ASSERT_EQ(r.translation(), want.translation());
    ASSERT_NEAR(r.score(), want.score(), 1e-4);
  }
}

// `n` lines of the `distinct` sentences over and over, with a blank line every 250 lines
// (echoed without a request): the text and its lines.
std::pair<std::string, std::vector<std::string>> Repeated(
    const std::vector<std::string>& distinct, size_t n) {
  std::string text;
  std::vector<std::string> sources;
  for (size_t i = 0; i < n; ++i) {
    sources.push_back(i % 250 == 249 ? "" : distinct[(i * 7) % distinct.size()]);
    text += sources.back() + "\n";
  }
  return {text, sources};
}

TEST_F(CliLinesE2E, FiveThousandLinesThroughAQueueOfSixtyFourAllTranslatedInOrder) {
  const auto distinct = Sentences("en", 40);
  ASSERT_EQ(distinct.size(), 40u);
  const auto unary = Unary(*server_, distinct, 0, 12);
  const auto [text, sources] = Repeated(distinct, 5000);
  const std::string dir = MakeTempDir("cli-lines");
  const std::string file = dir + "/in.txt";
  std::ofstream(file) << text;

  // Decoding held at the start: the client sends its window of 64 lines and no more (64
  // decoding, none queued), where sending everything would fill the queue too.
  server_->PauseDecoding();
  const auto t0 = std::chrono::steady_clock::now();
  auto run = std::async(std::launch::async, [&] {
    return RunCli("--target=" + server_->address() + kLinesArgs + kShortJson + " --file=" + file);
  });
  WaitForMetrics(*server_, [](const std::string& m) { return Held(m) >= 64; });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const double held = Held(HttpGet(server_->metrics_port(), "/metrics"));
  server_->ResumeDecoding();
  const auto r = run.get();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  RemoveTree(dir);
  EXPECT_EQ(held, 64) << "sentences held by the server with a window of 64";
  ASSERT_EQ(r.exit_code, 0) << r.all.substr(0, 2000);
  EXPECT_EQ(r.all, r.out) << "stderr is not empty";
  ExpectJsonLines(r.out, sources, unary);
  std::cout << "5,000 lines through a queue of 64: " << seconds << " s\n";
}

TEST_F(CliLinesE2E, LinesRefusedByTheRateLimitAreRetriedUntilTranslated) {
  // A server of its own that takes 100 sentences a second per client (with a second of
  // burst): most of 400 lines sent at once are refused with RESOURCE_EXHAUSTED, and sent
  // again after a backoff until they are taken.
  ServerProcess limited;
  std::string error;
  ASSERT_TRUE(limited.Start(Config("rate_limit_rps: 100"), {}, &error)) << error;
  const auto distinct = Sentences("en", 40);
  ASSERT_EQ(distinct.size(), 40u);
  const auto unary = Unary(*server_, distinct, 0, 12);
  const auto [text, sources] = Repeated(distinct, 400);
  const auto t0 = std::chrono::steady_clock::now();
  const auto r =
      RunCli("--target=" + limited.address() + kLinesArgs + kShortJson + " --window=400", text);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(r.exit_code, 0) << r.all.substr(0, 2000);
  EXPECT_EQ(r.all, r.out) << "stderr is not empty";
  ExpectJsonLines(r.out, sources, unary);
  const double refused =
      MetricSum(HttpGet(limited.metrics_port(), "/metrics"), "mixserve_requests_total",
                {{"method", "TranslateStream"}, {"code", "RESOURCE_EXHAUSTED"}});
  EXPECT_GT(refused, 0) << "the rate limit refused nothing: nothing was retried";
  std::cout << "400 lines at 100 sentences/s: " << refused << " refusals retried, " << seconds
            << " s\n";
}

TEST_F(CliLinesE2E, AFailedLineGivesItsNumberAndExitOneOnFilesAndStdin) {
  const auto texts = Sentences("en", 6, 100);
  ASSERT_EQ(texts.size(), 6u);
  const auto unary = Unary(*server_, texts, 4, 0);
  std::string too_long;
  while (too_long.size() <= 400) too_long += "A dog runs. ";
  // Line 3 is above the server's max_text_bytes (refused by the server), line 7 is not UTF-8
  // (refused before it is sent), line 5 is blank: retrying cannot fix the first two.
  const std::vector<std::string> lines = {texts[0], texts[1], too_long, texts[2], " ",
                                          texts[3], "A dog \xff runs.", texts[4], texts[5]};
  std::string text;
  std::vector<std::string> expected;
  for (const auto& l : lines) {
    text += l + "\n";
    expected.push_back(unary.count(l) ? unary.at(l).translation() : "");
  }
  const std::string dir = MakeTempDir("cli-lines");
  std::ofstream(dir + "/in.txt") << text;
  const std::string base = "--target=" + server_->address() + kLinesArgs + " --beam=4";
  const auto file = RunCli(base + " --file=" + dir + "/in.txt");
  const auto piped = RunCli(base, text);
  const auto json = RunCli(base + " --json", text);
  RemoveTree(dir);
  for (const auto* r : {&file, &piped}) {
    EXPECT_EQ(r->exit_code, 1) << r->all;
    EXPECT_EQ(Lines(r->out), expected) << r->out;
    const std::string err = r->all.substr(r->out.size());
    EXPECT_NE(err.find("line 3: INVALID_ARGUMENT"), std::string::npos) << err;
    EXPECT_NE(err.find("above the limit of 400"), std::string::npos) << err;
    EXPECT_NE(err.find("line 7: INVALID_ARGUMENT"), std::string::npos) << err;
    EXPECT_NE(err.find("UTF-8"), std::string::npos) << err;
    EXPECT_EQ(err.find("libprotobuf"), std::string::npos) << "invalid UTF-8 sent:\n" << err;
    EXPECT_NE(err.find("2 of 9 lines not translated"), std::string::npos) << err;
    EXPECT_EQ(err.find("line 5:"), std::string::npos) << err;
  }
  // With --json a failed line prints its status instead of an empty line.
  EXPECT_EQ(json.exit_code, 1) << json.all;
  const auto jl = Lines(json.out);
  ASSERT_EQ(jl.size(), lines.size()) << json.out;
  for (size_t i : {2, 6}) {
    v1::TranslateResponse failed;
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(jl[i], &failed).ok()) << jl[i];
    EXPECT_EQ(failed.status_code(), 3) << jl[i];
    EXPECT_EQ(failed.request_id(), "line-" + std::to_string(i + 1));
  }
  EXPECT_EQ(jl[4], "");
}

TEST_F(CliLinesE2E, LinesUnansweredWithinTheirDeadlineFailByNumber) {
  // Decoding held for good: no line is answered. Each line gets --deadline-ms from its first
  // send; 100 lines are two windows of 64, so the run ends after about two deadlines.
  const auto distinct = Sentences("en", 20);
  ASSERT_EQ(distinct.size(), 20u);
  std::string text;
  for (size_t i = 0; i < 100; ++i) text += distinct[i % distinct.size()] + "\n";
  server_->PauseDecoding();
  const auto t0 = std::chrono::steady_clock::now();
  const auto r =
      RunCli("--target=" + server_->address() + " --deadline-ms=1000" + kLinesArgs, text);
  const auto took = std::chrono::steady_clock::now() - t0;
  server_->ResumeDecoding();
  EXPECT_EQ(r.exit_code, 1) << r.all.substr(0, 2000);
  EXPECT_EQ(Lines(r.out), std::vector<std::string>(100, ""));
  const std::string err = r.all.substr(r.out.size());
  for (int line : {1, 64, 65, 100})
    EXPECT_NE(err.find("line " + std::to_string(line) + ": DEADLINE_EXCEEDED"),
              std::string::npos)
        << line << "\n" << err.substr(0, 2000);
  EXPECT_NE(err.find("100 of 100 lines not translated"), std::string::npos);
  EXPECT_LT(took, std::chrono::seconds(20));
  // The server still answers the same lines once decoding goes on.
  const auto again = RunCli("--target=" + server_->address() + kLinesArgs, text);
  EXPECT_EQ(again.exit_code, 0) << again.all.substr(0, 2000);
}

TEST_F(CliLinesE2E, AServerRestartMidFileLosesNoLine) {
  // A server of its own, killed while it holds the file's lines and started again on the
  // same port: the client reopens the stream and sends the unanswered lines again.
  ServerProcess first;
  first.EnablePauseHook();
  std::string error;
  ASSERT_TRUE(first.Start(Config(), {}, &error)) << error;
  const auto distinct = Sentences("en", 30, 200);
  ASSERT_EQ(distinct.size(), 30u);
  const auto [text, sources] = Repeated(distinct, 150);
  first.PauseDecoding();
  const std::string address = first.address();
  auto run = std::async(std::launch::async,
                        [&] { return RunCli("--target=" + address + kLinesArgs + kShortJson, text); });
  const std::string m = WaitForMetrics(first, [](const std::string& e) { return Held(e) >= 64; });
  EXPECT_EQ(Held(m), 64) << "the first server never held a window of lines";
  first.Stop(SIGKILL);
  ServerProcess second;
  const bool started = second.Start(Config(), {"--listen=" + address}, &error);
  const auto r = run.get();
  ASSERT_TRUE(started) << error;
  ASSERT_EQ(r.exit_code, 0) << r.all.substr(0, 2000);
  ExpectJsonLines(r.out, sources, Unary(second, distinct, 0, 12));
}

TEST_F(CliLinesE2E, DocumentsThroughTranslateDocument) {
  const auto s = Sentences("en", 3, 300);
  ASSERT_EQ(s.size(), 3u);
  const std::string doc = s[0] + " " + s[1] + "\n\n" + s[2] + "\n";
  // A beam of 4: translations that differ from sentence to sentence.
  const std::string base = "--target=" + server_->address() + kLinesArgs + " --beam=4 --document";
  const auto json = RunCli(base + " --segments --json", doc);
  if (json.exit_code == 1 && json.all.find("UNIMPLEMENTED") != std::string::npos)
    GTEST_SKIP() << "the server does not implement TranslateDocument yet: " << json.all;
  ASSERT_EQ(json.exit_code, 0) << json.all;
  v1::TranslateDocumentResponse resp;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json.out, &resp).ok()) << json.out;
  EXPECT_EQ(resp.sentences(), 3);
  ASSERT_EQ(resp.segments_size(), 3) << json.out;
  const auto unary = Unary(*server_, s, 4, 0);
  for (int i = 0; i < 3; ++i) {
    SCOPED_TRACE("sentence " + std::to_string(i));
    const auto& g = resp.segments(i);
    EXPECT_EQ(g.source(), s[i]);
    EXPECT_EQ(doc.substr(g.source_offset(), g.source_length()), s[i]);
    EXPECT_EQ(resp.translation().substr(g.translation_offset(), g.translation_length()),
              g.translation());
    EXPECT_FALSE(g.translation().empty());
    EXPECT_EQ(g.translation(), unary.at(s[i]).translation());
    EXPECT_EQ(g.input_tokens(), unary.at(s[i]).input_tokens());
  }
  // The white space between sentences is kept: "T0 T1\n\nT2\n".
  EXPECT_EQ(resp.translation(), resp.segments(0).translation() + " " +
                                    resp.segments(1).translation() + "\n\n" +
                                    resp.segments(2).translation() + "\n");
  // Plain output: the translated document; --segments alone: one JSON segment per line.
  const auto plain = RunCli(base, doc);
  ASSERT_EQ(plain.exit_code, 0) << plain.all;
  EXPECT_EQ(plain.out, resp.translation());
  const auto segments = RunCli(base + " --segments", doc);
  ASSERT_EQ(segments.exit_code, 0) << segments.all;
  const auto seg_lines = Lines(segments.out);
  ASSERT_EQ(seg_lines.size(), 3u) << segments.out;
  for (size_t i = 0; i < 3; ++i) {
    v1::Segment g;
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(seg_lines[i], &g).ok())
        << seg_lines[i];
    EXPECT_EQ(g.source(), s[i]);
    EXPECT_EQ(g.translation(), resp.segments(i).translation());
  }
  // The document from a file and from the arguments.
  const std::string dir = MakeTempDir("cli-doc");
  std::ofstream(dir + "/doc.txt") << doc;
  const auto from_file = RunCli(base + " --file=" + dir + "/doc.txt");
  RemoveTree(dir);
  EXPECT_EQ(from_file.out, plain.out) << from_file.all;
  std::string quoted;  // for the shell
  for (char c : s[0]) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  const auto args = RunCli(base + " '" + quoted + "'");
  ASSERT_EQ(args.exit_code, 0) << args.all;
  EXPECT_EQ(args.out, unary.at(s[0]).translation() + "\n");
}

}  // namespace
}  // namespace mixserve
