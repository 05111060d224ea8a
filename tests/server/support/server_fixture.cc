#include "tests/server/support/server_fixture.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <cstring>

#include <gtest/gtest.h>

#include "config/model_spec.h"
#include "engine/model_factory.h"
#include "text/tokenizer.h"
#include "base/remove_tree.h"

extern char** environ;

namespace mixserve {
namespace testing {
namespace fs = std::filesystem;

namespace {

std::string CacheDir() {
  std::string dir = std::string(MIXSERVE_BINARY_DIR) + "/tests/server/cache";
  fs::create_directories(dir);
  return dir;
}

// Holds an exclusive lock on a file for the scope (tests may run in parallel processes).
class FileLock {
 public:
  explicit FileLock(const std::string& path) {
    fd_ = ::open(path.c_str(), O_CREAT | O_RDWR, 0644);
    if (fd_ >= 0) ::flock(fd_, LOCK_EX);
  }
  ~FileLock() {
    if (fd_ >= 0) {
      ::flock(fd_, LOCK_UN);
      ::close(fd_);
    }
  }

 private:
  int fd_ = -1;
};

std::vector<std::string> ReadGzLines(const std::string& path, size_t n, size_t offset) {
  std::vector<std::string> out;
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) throw std::runtime_error("cannot open " + path);
  char buf[4096];
  size_t i = 0;
  while (out.size() < n && gzgets(f, buf, sizeof buf)) {
    std::string line(buf);
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
    if (i++ >= offset && !line.empty()) out.push_back(line);
  }
  gzclose(f);
  return out;
}

// Every line, empty ones included (so that line numbers of parallel files agree).
std::vector<std::string> ReadAllGzLines(const std::string& path) {
  std::vector<std::string> out;
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) throw std::runtime_error("cannot open " + path);
  std::string line;
  char buf[4096];
  while (gzgets(f, buf, sizeof buf)) {
    line += buf;
    if (line.back() != '\n') continue;  // a longer line goes on
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
    out.push_back(line);
    line.clear();
  }
  if (!line.empty()) out.push_back(line);
  gzclose(f);
  return out;
}

}  // namespace

std::string TokenizerPath() {
  std::string dir = CacheDir();
  std::string model = dir + "/spm.model";
  FileLock lock(dir + "/spm.lock");
  if (fs::exists(model)) return model;
  // A few thousand lines of each side are plenty for a tiny joint vocabulary.
  std::string data = std::string(MIXSERVE_SOURCE_DIR) + "/data/multi30k/";
  std::string corpus = dir + "/corpus.txt";
  {
    std::ofstream out(corpus);
    for (const char* lang : {"en", "de"})
      for (const auto& l : ReadGzLines(data + "train." + lang + ".gz", 3000, 0)) out << l << "\n";
  }
  Tokenizer::TrainOptions o;
  o.vocab_size = 600;
  o.model_type = "unigram";
  Tokenizer::Train({corpus}, dir + "/spm.tmp", o);
  fs::rename(dir + "/spm.tmp.model", model);
  return model;
}

void CreateModel(const std::string& repo, const ModelDef& def) {
  std::string tok = TokenizerPath();
  int vocab = Tokenizer::Load(tok)->vocab_size();
  MixerSpec dec_self;
  dec_self.type = def.decoder_self;
  ModelSpec spec = UniformSpec(32, 64, 2, 1, 1, vocab, MixerSpec{}, dec_self, MixerSpec{});
  spec.source_language = def.source;
  spec.target_language = def.target;
  spec.max_len = def.max_len;
  spec.dropout = 0;
  std::string dir = repo + "/" + def.name + "/" + std::to_string(def.version);
  fs::create_directories(dir);
  CreateRandomModel(spec, tok, dir, def.seed);
}

std::vector<ModelDef> StandardModels() {
  ModelDef base{"en-de-base", 1, "en", "de", "mha", 11};
  ModelDef alt{"en-de-alt", 1, "en", "de", "mha", 22};
  ModelDef back{"de-en-base", 1, "de", "en", "mha", 33};
  return {base, alt, back};
}

std::string StandardRepository() {
  // Built once per build of the test binary (its mtime keys the cache), then copied.
  struct stat st {};
  ::stat("/proc/self/exe", &st);
  std::string tmpl = CacheDir() + "/standard_repo_" + std::to_string(st.st_mtime);
  {
    FileLock lock(CacheDir() + "/repo.lock");
    if (!fs::exists(tmpl + "/complete")) {
      mixserve::RemoveTree(tmpl);
      for (const auto& d : StandardModels()) CreateModel(tmpl, d);
      std::ofstream(tmpl + "/complete") << "ok\n";
    }
  }
  std::string repo = MakeTempDir("repo");
  for (const auto& d : StandardModels())
    fs::copy(tmpl + "/" + d.name, repo + "/" + d.name, fs::copy_options::recursive);
  return repo;
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0) Stop(SIGKILL);
  // A failed test shows the end of the server's log, wherever it failed.
  if (::testing::Test::HasFailure() && !log_path_.empty()) {
    std::string log = Log();
    constexpr size_t kTail = 20000;
    if (log.size() > kTail) log = "...\n" + log.substr(log.size() - kTail);
    std::cerr << "--- server log " << log_path_ << " ---\n" << log << "--- end of server log ---\n";
  }
}

void ServerProcess::EnablePauseHook() { pause_file_ = MakeTempDir("pause") + "/pause"; }

void ServerProcess::PauseDecoding() {
  if (pause_file_.empty()) throw std::logic_error("PauseDecoding without EnablePauseHook");
  std::ofstream(pause_file_) << "paused\n";
}

void ServerProcess::ResumeDecoding() {
  if (!pause_file_.empty()) fs::remove(pause_file_);
}

std::string ServerBinary() {
  return std::string(MIXSERVE_BINARY_DIR) + "/server/mixserve-server";
}

int RunServerCommand(const std::vector<std::string>& args, std::string* output) {
  std::string command = "'" + ServerBinary() + "'";
  for (const auto& a : args) {
    std::string quoted;
    for (char c : a) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
    command += " '" + quoted + "'";
  }
  command += " 2>&1";
  output->clear();
  FILE* p = popen(command.c_str(), "r");
  if (!p) return -1;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) output->append(buf, n);
  int status = pclose(p);
  if (status == -1) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

bool ServerProcess::Start(const std::string& config_text, const std::vector<std::string>& args,
                          std::string* error) {
  dir_ = MakeTempDir("server");
  std::string config = dir_ + "/server.pbtxt";
  std::ofstream(config) << config_text;
  log_path_ = dir_ + "/server.log";
  std::string bin = ServerBinary();
  std::vector<std::string> argv_s = {bin, "--config=" + config, "--listen=127.0.0.1:0",
                                     "--metrics=127.0.0.1:0"};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);

  int out[2];
  if (pipe(out) != 0) {
    *error = "pipe failed";
    return false;
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_addclose(&fa, out[0]);
  posix_spawn_file_actions_addopen(&fa, 2, log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<std::string> env_s;
  for (char** e = environ; *e; ++e) env_s.push_back(*e);
  if (!pause_file_.empty()) env_s.push_back("MIXSERVE_TEST_PAUSE_FILE=" + pause_file_);
  env_s.insert(env_s.end(), env_.begin(), env_.end());
  std::vector<char*> envp;
  for (auto& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);
  int rc = posix_spawn(&pid_, bin.c_str(), &fa, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  close(out[1]);
  if (rc != 0) {
    close(out[0]);
    pid_ = -1;
    *error = "cannot start " + bin + ": " + std::strerror(rc);
    return false;
  }
  // Read the ready line (start-up loads every model: allow a generous minute).
  std::string line;
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(90);
  while (line.find('\n') == std::string::npos && std::chrono::steady_clock::now() < until) {
    pollfd p{out[0], POLLIN, 0};
    if (poll(&p, 1, 200) <= 0) {
      int status;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        break;
      }
      continue;
    }
    char buf[256];
    ssize_t n = read(out[0], buf, sizeof buf);
    if (n <= 0) break;
    line.append(buf, static_cast<size_t>(n));
  }
  close(out[0]);
  ready_line_ = line.substr(0, line.find('\n'));
  // "mixserve-server listening on 127.0.0.1:PORT metrics 127.0.0.1:PORT"
  auto on = ready_line_.find("listening on ");
  if (on == std::string::npos) {
    *error = "no ready line from the server; log:\n" + Log();
    if (pid_ > 0) Stop(SIGKILL);
    return false;
  }
  std::string rest = ready_line_.substr(on + 13);
  port_ = std::atoi(rest.substr(rest.find(':') + 1).c_str());
  auto m = rest.find(" metrics ");
  std::string metrics = rest.substr(m + 9);
  auto colon = metrics.rfind(':');
  metrics_port_ = colon == std::string::npos ? 0 : std::atoi(metrics.substr(colon + 1).c_str());
  return port_ > 0;
}

void ServerProcess::Signal(int sig) {
  if (pid_ > 0) kill(pid_, sig);
}

int ServerProcess::Wait(std::chrono::seconds limit) {
  if (pid_ <= 0) return -1;
  int status = 0;
  const auto until = std::chrono::steady_clock::now() + limit;
  pid_t r = 0;
  while ((r = waitpid(pid_, &status, WNOHANG)) == 0 && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  if (r == 0) {  // still running: a hang becomes a bounded failure, not a stuck test
    kill(pid_, SIGKILL);
    waitpid(pid_, &status, 0);
    pid_ = -1;
    std::ofstream(log_path_, std::ios::app)
        << "[test fixture] the server did not exit within " << limit.count()
        << " s and was killed\n";
    return kWaitTimedOut;
  }
  pid_ = -1;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + WTERMSIG(status);
}

int ServerProcess::Stop(int sig) {
  Signal(sig);
  return Wait();
}

long ServerProcess::RssBytes() const {
  if (pid_ <= 0) return 0;
  std::ifstream in("/proc/" + std::to_string(pid_) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6) * 1024;  // kB
  return 0;
}

std::string ServerProcess::Log() const {
  std::ifstream in(log_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::shared_ptr<grpc::Channel> ServerProcess::Channel() {
  std::lock_guard<std::mutex> lock(channel_mu_);
  if (!channel_) channel_ = grpc::CreateChannel(address(), grpc::InsecureChannelCredentials());
  return channel_;
}
std::unique_ptr<v1::TranslationService::Stub> ServerProcess::Translation() {
  return v1::TranslationService::NewStub(Channel());
}
std::unique_ptr<v1::ModelService::Stub> ServerProcess::Models() {
  return v1::ModelService::NewStub(Channel());
}

std::string HttpGet(int port, const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return "";
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return "";
  }
  std::string req = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  if (write(fd, req.data(), req.size()) < 0) {
    close(fd);
    return "";
  }
  std::string resp;
  char buf[8192];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) resp.append(buf, static_cast<size_t>(n));
  close(fd);
  auto body = resp.find("\r\n\r\n");
  return body == std::string::npos ? "" : resp.substr(body + 4);
}

namespace {

// Parses one exposition line "name{a="x",b="y"} value" (no escapes in our label values).
bool ParseSample(const std::string& line, std::string* name,
                 std::map<std::string, std::string>* labels, double* value) {
  if (line.empty() || line[0] == '#') return false;
  size_t brace = line.find('{'), space;
  labels->clear();
  if (brace != std::string::npos && brace < line.find(' ')) {
    *name = line.substr(0, brace);
    size_t close = line.find('}', brace);
    std::string body = line.substr(brace + 1, close - brace - 1);
    size_t i = 0;
    while (i < body.size()) {
      size_t eq = body.find('=', i);
      size_t q1 = body.find('"', eq), q2 = body.find('"', q1 + 1);
      (*labels)[body.substr(i, eq - i)] = body.substr(q1 + 1, q2 - q1 - 1);
      i = q2 + 1;
      if (i < body.size() && body[i] == ',') ++i;
    }
    space = close + 1;
  } else {
    space = line.find(' ');
    *name = line.substr(0, space);
  }
  *value = std::strtod(line.c_str() + space + 1, nullptr);
  return true;
}

}  // namespace

double MetricSum(const std::string& text, const std::string& name,
                 const std::map<std::string, std::string>& want) {
  std::istringstream in(text);
  std::string line, n;
  std::map<std::string, std::string> labels;
  double v, sum = 0;
  while (std::getline(in, line)) {
    if (!ParseSample(line, &n, &labels, &v) || n != name) continue;
    bool ok = true;
    for (const auto& [k, val] : want) {
      auto it = labels.find(k);
      if (it == labels.end() || it->second != val) ok = false;
    }
    if (ok) sum += v;
  }
  return sum;
}

bool MetricExists(const std::string& text, const std::string& name,
                  const std::map<std::string, std::string>& want) {
  std::istringstream in(text);
  std::string line, n;
  std::map<std::string, std::string> labels;
  double v;
  while (std::getline(in, line)) {
    if (!ParseSample(line, &n, &labels, &v) || n != name) continue;
    bool ok = true;
    for (const auto& [k, val] : want) {
      auto it = labels.find(k);
      if (it == labels.end() || it->second != val) ok = false;
    }
    if (ok) return true;
  }
  return false;
}

v1::TranslateRequest Request(const std::string& text, const std::string& src,
                             const std::string& tgt) {
  v1::TranslateRequest r;
  r.set_text(text);
  r.set_source_language(src);
  r.set_target_language(tgt);
  r.mutable_options()->set_max_output_tokens(8);
  return r;
}

int MaxTestTokens() { return (ModelDef{}.max_len - 2) * 3 / 4; }

std::vector<std::string> Sentences(const std::string& lang, size_t n, size_t offset) {
  if (lang != "en" && lang != "de") throw std::invalid_argument("no test sentences for " + lang);
  std::string base = std::string(MIXSERVE_SOURCE_DIR) + "/data/multi30k/test_2016_flickr.";
  auto en = ReadAllGzLines(base + "en.gz");
  auto de = ReadAllGzLines(base + "de.gz");
  if (en.size() != de.size()) throw std::runtime_error("test_2016_flickr en/de differ in size");
  auto tok = Tokenizer::Load(TokenizerPath());
  auto fits = [&](const std::string& s) {
    return !s.empty() && static_cast<int>(tok->Encode(s).size()) <= MaxTestTokens();
  };
  const auto& side = lang == "de" ? de : en;
  std::vector<std::string> out;
  for (size_t i = offset; i < en.size() && out.size() < n; ++i)
    if (fits(en[i]) && fits(de[i])) out.push_back(side[i]);
  return out;
}

v1::ModelState StateIn(const v1::ListModelsResponse& listed, const std::string& name,
                       int64_t version, std::string* message) {
  for (const auto& m : listed.models())
    if (m.name() == name)
      for (const auto& v : m.versions())
        if (v.version() == version) {
          if (message) *message = v.message();
          return v.state();
        }
  return v1::MODEL_STATE_UNSPECIFIED;
}

}  // namespace testing
}  // namespace mixserve
