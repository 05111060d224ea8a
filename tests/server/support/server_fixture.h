// Support for the end-to-end server tests: a tiny tokenizer trained once on Multi30k (cached
// in the build tree), repositories of random-weight tiny models, the real mixserve-server
// binary started on a loopback port, gRPC stubs, and /metrics scraping.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "mixserve/v1/model_service.grpc.pb.h"
#include "mixserve/v1/translation.grpc.pb.h"
#include "tests/support/temp_dir.h"  // MakeTempDir

namespace mixserve {
namespace testing {

// The joint en/de SentencePiece model (trained on first use; later tests reuse it).
std::string TokenizerPath();

struct ModelDef {
  std::string name;
  int64_t version = 1;
  std::string source = "en", target = "de";
  std::string decoder_self = "mha";  // mixer of the decoder self-attention site
  uint64_t seed = 1;
  int max_len = 48;
};

// Writes <repo>/<name>/<version>/ with random weights and the shared tokenizer.
void CreateModel(const std::string& repo, const ModelDef& def);
// en-de-base/1, en-de-alt/1 (another mixer or seed), de-en-base/1.
std::vector<ModelDef> StandardModels();
std::string StandardRepository();

// Calls made while decoding is held get a deadline far beyond any test's needs, so that a
// failed assertion (which returns before ResumeDecoding) cannot leave them, and the test,
// waiting forever for an answer the held server never gives.
inline void BoundWhilePaused(grpc::ClientContext* c) {
  c->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(90));
}

// The mixserve-server binary of this build.
std::string ServerBinary();
// Runs mixserve-server with `args` to its end (--version, --check-config); returns its exit
// status (-1 when it cannot run) and sets *output to its stdout and stderr together.
int RunServerCommand(const std::vector<std::string>& args, std::string* output);

class ServerProcess {
 public:
  ServerProcess() = default;
  ~ServerProcess();
  // Test hook of the scheduler (MIXSERVE_TEST_PAUSE_FILE): call before Start; then
  // PauseDecoding() holds every decoding step (sentences are still queued, admitted, and
  // dropped on cancellation or deadline) until ResumeDecoding().
  void EnablePauseHook();
  void PauseDecoding();
  void ResumeDecoding();

  // Adds NAME=VALUE to the server's environment (test hooks such as MIXSERVE_TEST_FAIL_DECODE);
  // call before Start.
  void SetEnv(const std::string& name, const std::string& value) {
    env_.push_back(name + "=" + value);
  }

  // Writes `config_text` to a file and starts the binary with --config plus `args`
  // (listen and metrics default to 127.0.0.1:0). Waits for the ready line.
  bool Start(const std::string& config_text, const std::vector<std::string>& args,
             std::string* error);
  // Sends `sig` and waits for the exit; returns the exit status (or 128 + signal).
  int Stop(int sig = 15);
  void Signal(int sig);
  // Waits for the process to exit (after Signal); returns as Stop, or kWaitTimedOut after
  // killing a server that has not exited within `limit` (the log says so).
  static constexpr int kWaitTimedOut = -2;
  int Wait(std::chrono::seconds limit = std::chrono::seconds(120));

  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  // Resident set size of the running server from /proc/<pid>/status (VmRSS), in bytes; 0 when
  // it cannot be read.
  long RssBytes() const;
  int metrics_port() const { return metrics_port_; }
  const std::string& ready_line() const { return ready_line_; }
  // The server.pbtxt written by Start (rewrite it and Signal(SIGHUP) to reload).
  std::string config_path() const { return dir_ + "/server.pbtxt"; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  std::string Log() const;  // stderr so far

  // Thread-safe: tests open stubs from many client threads at once.
  std::shared_ptr<grpc::Channel> Channel();
  std::unique_ptr<v1::TranslationService::Stub> Translation();
  std::unique_ptr<v1::ModelService::Stub> Models();

 private:
  pid_t pid_ = -1;
  int port_ = 0, metrics_port_ = 0;
  std::string ready_line_, log_path_, dir_, pause_file_;
  std::vector<std::string> env_;
  std::mutex channel_mu_;
  std::shared_ptr<grpc::Channel> channel_;  // guarded by channel_mu_
};

// Plain HTTP GET on 127.0.0.1:port; returns the body ("" on failure).
std::string HttpGet(int port, const std::string& path);

// State and message of one version in a ListModels answer (UNSPECIFIED when not listed).
v1::ModelState StateIn(const v1::ListModelsResponse& listed, const std::string& name,
                       int64_t version, std::string* message = nullptr);

// Sum of the samples of `name` whose labels include every pair of `labels`.
double MetricSum(const std::string& exposition, const std::string& name,
                 const std::map<std::string, std::string>& labels = {});
// Whether any sample of `name` with those labels exists.
bool MetricExists(const std::string& exposition, const std::string& name,
                  const std::map<std::string, std::string>& labels = {});

v1::TranslateRequest Request(const std::string& text, const std::string& src = "en",
                             const std::string& tgt = "de");

// The longest source the standard test models translate whole (three quarters of max_len
// minus BOS/EOS; longer ones are cut into pieces: docs/server.md, "Long sentences").
int MaxTestTokens();
// Multi30k sentences (test_2016_flickr) of a language, for traffic: the first n lines from
// line `offset` whose English and German sides both fit the test models (MaxTestTokens), so
// that Sentences("en", n, k) and Sentences("de", n, k) stay parallel.
std::vector<std::string> Sentences(const std::string& lang, size_t n, size_t offset = 0);

}  // namespace testing
}  // namespace mixserve
