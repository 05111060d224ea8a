#include "server/model_repository.h"

#include <google/protobuf/text_format.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "config/model_spec_io.h"
#include "config/model_tokenizers.h"
#include "config/server_config.h"
#include "server/log.h"

namespace mixserve {
namespace fs = std::filesystem;
namespace {

bool ReadFile(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::stringstream ss;
  ss << in.rdbuf();
  *out = ss.str();
  return true;
}

// A version directory name: a positive integer without sign or leading zeros.
bool ParseVersion(const std::string& s, int64_t* v) {
  if (s.empty() || s.size() > 18 || s[0] == '0') return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  *v = std::stoll(s);
  return true;
}

const char* StateName(v1::ModelState s) {
  switch (s) {
    case v1::MODEL_STATE_LOADING: return "loading";
    case v1::MODEL_STATE_READY: return "ready";
    case v1::MODEL_STATE_UNAVAILABLE: return "unavailable";
    default: return "unloaded";
  }
}

}  // namespace

ModelRepository::ModelRepository(const v1::ServerConfig& config, Metrics* metrics)
    : config_(config), metrics_(metrics) {
  default_serving_.set_name("");
  ApplyServingDefaults(&default_serving_);
}

ModelRepository::~ModelRepository() {
  {
    std::lock_guard<std::mutex> lock(poll_mu_);
    stop_poll_ = true;
  }
  poll_cv_.notify_all();
  if (poller_.joinable()) poller_.join();
  DrainAll(config_.drain_grace_seconds());
}

const v1::ModelServingConfig& ModelRepository::ServingFor(const std::string& name) const {
  for (const auto& m : config_.models())
    if (m.name() == name) return m;
  return default_serving_;
}

std::string ModelRepository::VersionDir(const std::string& name, int64_t version) const {
  return (fs::path(config_.model_repository()) / name / std::to_string(version)).string();
}

std::vector<std::string> ModelRepository::ModelNames() const {
  std::vector<std::string> names;
  if (config_.models_size() > 0) {
    for (const auto& m : config_.models()) names.push_back(m.name());
  } else {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(config_.model_repository(), ec)) {
      std::string n = e.path().filename().string();
      if (e.is_directory(ec) && IsSafeModelName(n)) names.push_back(n);
    }
    std::sort(names.begin(), names.end());
  }
  // Models loaded through ModelService stay under management too, and so do loaded models
  // whose whole directory was removed (their versions are then unloaded like removed ones).
  std::vector<std::string> more;
  for (const auto& id : pinned_in_) more.push_back(id.name);
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& kv : loaded_) more.push_back(kv.first.name);
  }
  for (const auto& n : more)
    if (std::find(names.begin(), names.end(), n) == names.end()) names.push_back(n);
  return names;
}

std::vector<int64_t> ModelRepository::VersionsOnDisk(const std::string& name) const {
  std::vector<int64_t> versions;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(fs::path(config_.model_repository()) / name, ec)) {
    int64_t v;
    if (e.is_directory(ec) && ParseVersion(e.path().filename().string(), &v))
      versions.push_back(v);
  }
  std::sort(versions.begin(), versions.end());
  return versions;
}

std::string ModelRepository::Fingerprint(const std::string& dir) const {
  std::string fp;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    struct stat st {};
    if (::stat(e.path().c_str(), &st) != 0) continue;
    fp += e.path().filename().string() + ":" + std::to_string(st.st_size) + ":" +
          std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec) + ";";
  }
  return fp;
}

void ModelRepository::SetRecord(const VariantId& id, v1::ModelState state,
                                const std::string& message) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    Record& r = records_[id];
    r.state = state;
    r.message = message;
  }
  metrics_->SetModelState(id.name, id.version, StateName(state));
}

grpc::Status ModelRepository::LoadLocked(const std::string& name, int64_t version) {
  VariantId id{name, version};
  std::string dir = VersionDir(name, version);
  SetRecord(id, v1::MODEL_STATE_LOADING, "");
  auto fail = [&](std::string why) {
    // Torch errors carry a native stack trace after the message: keep the message.
    const size_t trace = why.find("\nException raised from");
    if (trace != std::string::npos) why.resize(trace);
    LOG_ERROR("model load failed model=" << name << " version=" << version
                                         << " error=" << LogQuote(why));
    SetRecord(id, v1::MODEL_STATE_UNAVAILABLE, why);
    std::string fp = Fingerprint(dir);
    {
      std::lock_guard<std::mutex> lock(mu_);
      records_[id].fingerprint = fp;
      records_[id].public_reason = "its files failed to load";
    }
    metrics_->CountLoadFailure(name);
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        "cannot load " + name + " version " + std::to_string(version) + ": " +
                            why);
  };
  auto v = std::make_shared<Variant>();
  v->id = id;
  v->dir = dir;
  v->serving = ServingFor(name);
  std::string error, text;
  std::string spec_path = (fs::path(dir) / "model.pbtxt").string();
  if (!ReadModelSpec(spec_path, &v->spec, &error)) return fail(error);
  if (ReadFile(spec_path, &text))
    google::protobuf::TextFormat::ParseFromString(text, &v->config);
  if (v->spec.source_language.empty() || v->spec.target_language.empty())
    return fail(spec_path + ": source_language and target_language are required");
  ReadFile((fs::path(dir) / "metadata.json").string(), &v->metadata_json);
  try {
    ModelTokenizers tokenizers = LoadModelTokenizers(dir, v->spec);
    v->tokenizer = std::move(tokenizers.source);
    v->target_tokenizer = std::move(tokenizers.target);
    EngineOptions eo;
    eo.device = v->serving.device();
    eo.dtype = v->serving.dtype();
    eo.threads = config_.compute_threads();
    eo.cuda_graphs = !v->serving.disable_cuda_graphs();
    eo.step_lookahead = !v->serving.disable_step_lookahead();
    // Test hook: the search modes of a CUDA variant on any device (EngineOptions).
    eo.cuda_search_modes = std::getenv("MIXSERVE_TEST_CUDA_SEARCH") != nullptr;
    v->engine = Engine::Load(dir, eo);
  } catch (const std::exception& e) {
    return fail(e.what());
  }
  // Ids beyond either tokenizer would fail or crash at detokenization: refuse them here.
  const auto ids_file = [&](const std::string& tokenizer_file) {
    return !v->spec.vocabulary_file.empty() ? v->spec.vocabulary_file : tokenizer_file;
  };
  for (const auto& [tok, file] :
       {std::make_pair(v->tokenizer, ids_file(v->spec.tokenizer_file)),
        std::make_pair(v->target_tokenizer, ids_file(v->spec.target_tokenizer_file.empty()
                                                         ? v->spec.tokenizer_file
                                                         : v->spec.target_tokenizer_file))})
    if (tok->vocab_size() != v->spec.vocab_size)
      return fail(file + " has " + std::to_string(tok->vocab_size()) +
                  " pieces but model.pbtxt says vocab_size " +
                  std::to_string(v->spec.vocab_size) + " (tokenizer and model do not match)");
  v->max_output_tokens = std::max(1, v->spec.max_len - 2);
  v->max_input_tokens = v->serving.max_input_tokens();
  // Whole sentences and the pieces of longer ones leave a quarter of the model's length free
  // for the translation, which is often longer than its source.
  v->piece_tokens = std::max(1, v->max_output_tokens * 3 / 4);
  v->whole_tokens = v->piece_tokens;
  const int sentence_tokens = v->serving.max_sentence_tokens();
  if (sentence_tokens > v->max_output_tokens) {
    // Long sentences get the same weights built for their length, translations half as long
    // again as the source included; the model's own engine keeps the sentences whose
    // translation fits it.
    EngineOptions lo;
    lo.device = v->serving.device();
    lo.dtype = v->serving.dtype();
    lo.threads = config_.compute_threads();
    lo.cuda_graphs = false;
    lo.cuda_search_modes = std::getenv("MIXSERVE_TEST_CUDA_SEARCH") != nullptr;
    lo.max_len = sentence_tokens + sentence_tokens / 2 + 2;
    try {
      v->long_engine = Engine::Load(dir, lo);
      v->long_tokens = sentence_tokens;
      v->long_output_tokens = lo.max_len - 2;
    } catch (const std::exception& e) {
      LOG_WARNING("model " << name << " version " << version
                           << ": max_sentence_tokens ignored, sentences above "
                           << v->whole_tokens << " tokens are translated in pieces: "
                           << e.what());
    }
  }
  v->metrics = metrics_->ForVariant(name, version, v->spec.source_language,
                                    v->spec.target_language, v->engine->info().device);
  const bool cuda = v->engine->info().device.rfind("cuda", 0) == 0;
  ResolveBatchingForDevice(v->serving.mutable_batching(), cuda,
                           static_cast<int>(std::thread::hardware_concurrency()));
  if (cuda && v->serving.batching().decode_workers() > 1) {
    // Decoding steps replayed from CUDA graphs share the graphs' buffers: one loop per device.
    LOG_WARNING("model=" << name << " version=" << version << ": decode_workers "
                         << v->serving.batching().decode_workers()
                         << " ignored on CUDA (one decoding loop per device)");
    v->serving.mutable_batching()->set_decode_workers(1);
  }
  const auto& b = v->serving.batching();
  LOG_INFO("batching model=" << name << " version=" << version
                            << " device=" << (cuda ? "cuda" : "cpu")
                            << " max_batch_sentences=" << b.max_batch_sentences()
                            << " max_batch_tokens=" << b.max_batch_tokens()
                            << " join_min_sentences=" << b.join_min_sentences()
                            << " max_join_delay_us=" << b.max_join_delay_us()
                            << " decode_workers=" << b.decode_workers());
  SchedulerOptions so;
  so.max_batch_sentences = b.max_batch_sentences();
  so.max_batch_tokens = b.max_batch_tokens();
  so.max_queue_delay_us = b.max_queue_delay_us();
  so.max_queue_size = b.max_queue_size();
  so.continuous = b.continuous();
  so.join_min_sentences = b.join_min_sentences();
  so.max_join_delay_us = b.max_join_delay_us();
  so.workers = b.decode_workers();
  // Several loops on the CPU compute on one thread each, unless compute_threads says otherwise.
  if (!cuda && so.workers > 1 && config_.compute_threads() == 0)
    so.on_worker_start = [] { SetComputeThreads(1); };
  // Test hooks (see SchedulerOptions::pause_file, fail_steps); never set in production.
  if (const char* pause = std::getenv("MIXSERVE_TEST_PAUSE_FILE")) so.pause_file = pause;
  if (const char* fail = std::getenv("MIXSERVE_TEST_FAIL_DECODE")) {
    std::string list = std::string(",") + fail + ",";
    so.fail_steps = list.find("," + name + ",") != std::string::npos;
  }
  VariantMetrics* m = v->metrics;
  Engine* engine = v->engine.get();
  SchedulerObserver obs;
  obs.queue_depth = [m](size_t n) { m->queue_depth->Set(static_cast<double>(n)); };
  // Device memory is sampled at most once a second (the query is not free on CUDA).
  auto last_sample = std::make_shared<std::chrono::steady_clock::time_point>();
  obs.in_flight = [m, engine, last_sample](size_t n) {
    m->inflight->Set(static_cast<double>(n));
    auto now = std::chrono::steady_clock::now();
    if (now - *last_sample >= std::chrono::seconds(1)) {
      *last_sample = now;
      m->device_memory->Set(static_cast<double>(engine->DeviceMemoryBytes()));
    }
  };
  obs.step_batch = [m](size_t n) { m->batch_size->Observe(static_cast<double>(n)); };
  obs.phase_seconds = [m](SchedulerObserver::Phase phase, double seconds) {
    using P = SchedulerObserver::Phase;
    (phase == P::kAdmit ? m->admit_seconds : phase == P::kStep ? m->step_seconds
                                                              : m->finish_seconds)
        ->Observe(seconds);
  };
  const Variant* raw = v.get();
  obs.failed = [this, id, raw](const std::string& error) { MarkFailed(id, raw, error); };
  v->scheduler = std::make_unique<Scheduler>(v->engine.get(), so, obs, v->long_engine.get());
  {
    std::lock_guard<std::mutex> lock(mu_);
    loaded_[id] = v;
    Record& r = records_[id];
    r.fingerprint.clear();
    r.source = v->spec.source_language;
    r.target = v->spec.target_language;
  }
  SetRecord(id, v1::MODEL_STATE_READY, "");
  LOG_INFO("model loaded model=" << name << " version=" << version << " pair="
                                 << v->spec.source_language << "-" << v->spec.target_language
                                 << " device=" << v->engine->info().device
                                 << " dtype=" << v->engine->info().dtype
                                 << (v->engine->info().cpu_kernel.empty() ? "" : " cpu_kernel=")
                                 << v->engine->info().cpu_kernel << " cuda_graphs="
                                 << (v->engine->info().step_graphs ? "on" : "off")
                                 << " lookahead="
                                 << (v->engine->info().step_lookahead ? "on" : "off")
                                 << " whole_tokens=" << v->whole_tokens << " long_tokens="
                                 << v->long_tokens
                                 << " parameters=" << v->engine->info().parameters);
  if (v->engine->info().dtype == "int8" && v->engine->info().cpu_kernel == "portable")
    LOG_WARNING("model=" << name << " version=" << version
                         << ": this CPU has no AVX-512 VNNI, so its int8 products run the "
                            "portable kernel, which is slower than fp32 here; dtype fp32 is "
                            "the faster choice on this machine");
  return grpc::Status::OK;
}

void ModelRepository::UnloadLocked(const VariantId& id, const std::string& why) {
  std::shared_ptr<Variant> v;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = loaded_.find(id);
    if (it == loaded_.end()) return;
    v = it->second;
    loaded_.erase(it);
    retired_.push_back(v);
  }
  // New work is refused from now on; accepted sentences still complete before it is freed.
  v->scheduler->Stop();
  SetRecord(id, v1::MODEL_STATE_UNSPECIFIED, "");
  LOG_INFO("model unloaded model=" << id.name << " version=" << id.version << " reason=" << why);
}

void ModelRepository::MarkFailed(const VariantId& id, const Variant* raw,
                                 const std::string& error) {
  std::shared_ptr<Variant> v;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = loaded_.find(id);
    if (it == loaded_.end() || it->second.get() != raw) return;  // already gone or replaced
    v = it->second;
    loaded_.erase(it);
    retired_.push_back(v);
  }
  // Queued sentences are still answered (with the engine's error), never left hanging.
  v->scheduler->Stop();
  const std::string why = "taken out of service after repeated engine failures: " + error;
  SetRecord(id, v1::MODEL_STATE_UNAVAILABLE, why);
  std::string fp = Fingerprint(v->dir);
  {
    std::lock_guard<std::mutex> lock(mu_);
    records_[id].fingerprint = fp;
    records_[id].public_reason = "its engine failed repeatedly while decoding";
  }
  LOG_ERROR("model unavailable model=" << id.name << " version=" << id.version
                                       << " error=" << LogQuote(why));
}

std::string ModelRepository::UnavailableReason(const std::string& name, int64_t version) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = records_.rbegin(); it != records_.rend(); ++it) {
    const VariantId& id = it->first;
    if (id.name != name || (version != 0 && id.version != version)) continue;
    if (it->second.state != v1::MODEL_STATE_UNAVAILABLE || loaded_.count(id)) continue;
    return "variant " + id.ToString() + " is unavailable: " + it->second.public_reason;
  }
  return "";
}

void ModelRepository::ReapRetired() {
  std::vector<std::shared_ptr<Variant>> done;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = retired_.begin(); it != retired_.end();) {
      if ((*it)->scheduler->Idle() && it->use_count() == 1) {
        done.push_back(std::move(*it));
        it = retired_.erase(it);
      } else {
        ++it;
      }
    }
  }
  done.clear();  // joins the stopped workers outside the lock
}

void ModelRepository::Sync() {
  std::lock_guard<std::mutex> guard(load_mu_);
  ReapRetired();
  for (const std::string& name : ModelNames()) {
    std::vector<int64_t> on_disk = VersionsOnDisk(name);
    // Versions that failed with the same files are skipped until the files change, so a
    // corrupt new version never replaces the one that serves.
    std::vector<int64_t> candidates;
    for (int64_t v : on_disk) {
      VariantId id{name, v};
      std::string fp;
      bool failed = false;
      {
        std::lock_guard<std::mutex> lock(mu_);
        auto r = records_.find(id);
        if (r != records_.end() && r->second.state == v1::MODEL_STATE_UNAVAILABLE) {
          failed = true;
          fp = r->second.fingerprint;
        }
      }
      if (failed && fp == Fingerprint(VersionDir(name, v))) continue;
      if (pinned_out_.count(id)) continue;
      candidates.push_back(v);
    }
    std::set<int64_t> want;
    const auto& policy = ServingFor(name).version_policy();
    switch (policy.policy_case()) {
      case v1::VersionPolicy::kAll:
        want.insert(candidates.begin(), candidates.end());
        break;
      case v1::VersionPolicy::kSpecific:
        for (int64_t v : policy.specific().versions())
          if (std::count(candidates.begin(), candidates.end(), v)) want.insert(v);
        break;
      default: {
        int n = policy.policy_case() == v1::VersionPolicy::kLatest ? policy.latest() : 1;
        for (auto it = candidates.rbegin(); it != candidates.rend() && n > 0; ++it, --n)
          want.insert(*it);
      }
    }
    // Versions loaded through ModelService stay, unless they failed since (same files).
    for (const auto& id : pinned_in_)
      if (id.name == name && std::count(candidates.begin(), candidates.end(), id.version))
        want.insert(id.version);
    // Load first, then unload what is no longer wanted: no gap in service.
    for (int64_t v : want) {
      bool have;
      {
        std::lock_guard<std::mutex> lock(mu_);
        have = loaded_.count({name, v}) > 0;
      }
      if (!have) LoadLocked(name, v);
    }
    std::vector<VariantId> drop;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const auto& kv : loaded_)
        if (kv.first.name == name && !want.count(kv.first.version)) drop.push_back(kv.first);
    }
    for (const auto& id : drop) {
      bool still_on_disk = std::count(on_disk.begin(), on_disk.end(), id.version) > 0;
      UnloadLocked(id, still_on_disk ? "version policy" : "version directory removed");
    }
  }
}

void ModelRepository::StartPolling(int seconds) {
  if (seconds <= 0) return;
  poller_ = std::thread([this, seconds] {
    std::unique_lock<std::mutex> lock(poll_mu_);
    while (!stop_poll_) {
      poll_cv_.wait_for(lock, std::chrono::seconds(seconds));
      if (stop_poll_) break;
      lock.unlock();
      Sync();
      lock.lock();
    }
  });
}

grpc::Status ModelRepository::Load(const std::string& name, int64_t version,
                                   v1::ModelVersionStatus* status) {
  if (!IsSafeModelName(name))
    return {grpc::StatusCode::INVALID_ARGUMENT, "'" + name + "' is not a valid model name"};
  if (version < 0)
    return {grpc::StatusCode::INVALID_ARGUMENT, "version must be positive (or 0 for latest)"};
  std::lock_guard<std::mutex> guard(load_mu_);
  ReapRetired();
  std::vector<int64_t> on_disk = VersionsOnDisk(name);
  if (on_disk.empty())
    return {grpc::StatusCode::NOT_FOUND, "model " + name + " has no version in the repository"};
  if (version == 0) version = on_disk.back();
  if (!std::count(on_disk.begin(), on_disk.end(), version))
    return {grpc::StatusCode::NOT_FOUND,
            "model " + name + " has no version " + std::to_string(version)};
  VariantId id{name, version};
  pinned_out_.erase(id);
  bool have;
  {
    std::lock_guard<std::mutex> lock(mu_);
    have = loaded_.count(id) > 0;
  }
  grpc::Status s = grpc::Status::OK;
  if (!have) s = LoadLocked(name, version);
  if (s.ok()) pinned_in_.insert(id);
  if (status) FillStatus(id, status);
  return s;
}

grpc::Status ModelRepository::Unload(const std::string& name, int64_t version) {
  if (!IsSafeModelName(name))
    return {grpc::StatusCode::INVALID_ARGUMENT, "'" + name + "' is not a valid model name"};
  if (version < 0)
    return {grpc::StatusCode::INVALID_ARGUMENT, "version must be positive (or 0 for all)"};
  std::lock_guard<std::mutex> guard(load_mu_);
  std::vector<VariantId> ids;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& kv : loaded_)
      if (kv.first.name == name && (version == 0 || kv.first.version == version))
        ids.push_back(kv.first);
  }
  if (ids.empty())
    return {grpc::StatusCode::NOT_FOUND,
            "model " + name + (version ? " version " + std::to_string(version) : "") +
                " is not loaded"};
  for (const auto& id : ids) {
    pinned_in_.erase(id);
    pinned_out_.insert(id);
    UnloadLocked(id, "ModelService request");
  }
  ReapRetired();
  return grpc::Status::OK;
}

std::shared_ptr<Variant> ModelRepository::Get(const VariantId& id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = loaded_.find(id);
  return it == loaded_.end() ? nullptr : it->second;
}

std::vector<LoadedVariant> ModelRepository::Loaded() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<LoadedVariant> out;
  for (const auto& kv : loaded_)
    out.push_back({kv.first, kv.second->spec.source_language, kv.second->spec.target_language});
  return out;
}

void ModelRepository::FillStatus(const VariantId& id, v1::ModelVersionStatus* st) const {
  std::lock_guard<std::mutex> lock(mu_);
  st->set_version(id.version);
  auto r = records_.find(id);
  if (r != records_.end()) {
    st->set_state(r->second.state);
    st->set_message(r->second.message);
  }
  auto it = loaded_.find(id);
  if (it != loaded_.end()) {
    const Variant& v = *it->second;
    *st->mutable_config() = v.config;
    st->set_metadata_json(v.metadata_json);
    st->set_parameter_count(v.engine->info().parameters);
    st->set_device(v.engine->info().device);
  }
}

v1::ListModelsResponse ModelRepository::List(const std::string& filter) const {
  std::map<std::string, v1::ModelStatus> models;
  std::vector<VariantId> ids;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& kv : records_) {
      if (!filter.empty() && kv.first.name != filter) continue;
      if (kv.second.state == v1::MODEL_STATE_UNSPECIFIED) continue;  // unloaded
      ids.push_back(kv.first);
      auto& m = models[kv.first.name];
      m.set_name(kv.first.name);
      if (!kv.second.source.empty()) {
        m.set_source_language(kv.second.source);
        m.set_target_language(kv.second.target);
      }
    }
  }
  for (const auto& id : ids) FillStatus(id, models[id.name].add_versions());
  v1::ListModelsResponse out;
  for (auto& kv : models) *out.add_models() = std::move(kv.second);
  return out;
}

void ModelRepository::DrainAll(double timeout_s) {
  std::vector<std::shared_ptr<Variant>> all;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& kv : loaded_) all.push_back(kv.second);
    for (auto& v : retired_) all.push_back(v);
  }
  for (auto& v : all) v->scheduler->Stop();
  auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  for (auto& v : all)
    while (!v->scheduler->Idle() && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
}

}  // namespace mixserve
