#include "config/server_config.h"

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>
#include <vector>

namespace mixserve {
namespace {

class ErrorCollector : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, int column, const std::string& message) override {
    if (first.empty())
      first = "line " + std::to_string(line + 1) + ":" + std::to_string(column + 1) + ": " +
              message;
  }
  std::string first;
};

void CheckBatching(const std::string& where, const v1::BatchingConfig& b,
                   std::vector<ConfigProblem>* out) {
  auto add = [&](const std::string& field, const std::string& problem) {
    out->push_back({where + ".batching." + field, problem});
  };
  if (b.max_batch_sentences() < 0)
    add("max_batch_sentences", "must not be negative (0 or unset: by device)");
  if (b.max_batch_tokens() < 0)
    add("max_batch_tokens", "must not be negative (0 or unset: by device)");
  if (b.max_queue_delay_us() < 0) add("max_queue_delay_us", "must not be negative");
  if (b.max_queue_size() <= 0) add("max_queue_size", "must be positive");
  if (b.join_min_sentences() < 0) add("join_min_sentences", "must not be negative");
  if (b.max_join_delay_us() < 0) add("max_join_delay_us", "must not be negative");
  if (b.decode_workers() < 0 || b.decode_workers() > 64)
    add("decode_workers", "must be within 0..64");
}

bool KnownDevice(const std::string& d) {
  if (d == "auto" || d == "cpu" || d == "cuda") return true;
  if (d.rfind("cuda:", 0) != 0 || d.size() == 5) return false;
  for (size_t i = 5; i < d.size(); ++i)
    if (d[i] < '0' || d[i] > '9') return false;
  return true;
}

}  // namespace

bool IsSafeModelName(const std::string& name) {
  if (name.empty() || name.size() > 128) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (i == 0 && !alnum) return false;
    if (!alnum && c != '.' && c != '_' && c != '-') return false;
  }
  return name.find("..") == std::string::npos;
}

void ApplyServingDefaults(v1::ModelServingConfig* m) {
  if (m->version_policy().policy_case() == v1::VersionPolicy::POLICY_NOT_SET)
    m->mutable_version_policy()->set_latest(1);
  if (m->device().empty()) m->set_device("auto");
  if (m->dtype().empty()) m->set_dtype("fp32");
  auto* b = m->mutable_batching();
  // max_batch_sentences, max_batch_tokens, join_min_sentences and max_join_delay_us stay
  // unset here: they depend on the device (ResolveBatchingForDevice, at load).
  if (b->max_queue_size() == 0) b->set_max_queue_size(1024);
  if (!b->has_continuous()) b->set_continuous(true);
  if (!b->has_max_queue_delay_us()) b->set_max_queue_delay_us(b->continuous() ? 0 : 2000);
  if (m->default_beam_size() == 0) m->set_default_beam_size(1);
}

void ResolveBatchingForDevice(v1::BatchingConfig* b, bool cuda, int cpu_cores) {
  if (b->decode_workers() == 0)
    b->set_decode_workers(cuda ? 1 : std::clamp(cpu_cores, 1, 8));
  if (b->max_batch_sentences() == 0) b->set_max_batch_sentences(cuda ? 256 : 64);
  if (b->max_batch_tokens() == 0) b->set_max_batch_tokens(cuda ? 16384 : 4096);
  if (b->join_min_sentences() == 0) b->set_join_min_sentences(cuda ? 16 : 1);
  if (!b->has_max_join_delay_us())
    b->set_max_join_delay_us(b->join_min_sentences() > 1 ? 5000 : 0);
}

void ApplyServerDefaults(v1::ServerConfig* c) {
  if (c->listen_address().empty()) c->set_listen_address("0.0.0.0:8500");
  if (c->metrics_address().empty()) c->set_metrics_address("0.0.0.0:9500");
  if (c->model_repository().empty()) c->set_model_repository("models");
  if (c->drain_grace_seconds() == 0) c->set_drain_grace_seconds(20);
  if (c->log_level().empty()) c->set_log_level("info");
  if (c->log_format().empty()) c->set_log_format("text");
  auto* l = c->mutable_limits();
  if (l->max_text_bytes() == 0) l->set_max_text_bytes(65536);
  if (l->max_document_bytes() == 0) l->set_max_document_bytes(1 << 20);
  if (l->max_document_sentences() == 0) l->set_max_document_sentences(10000);
  if (l->max_batch_texts() == 0) l->set_max_batch_texts(256);
  if (l->max_message_bytes() == 0) l->set_max_message_bytes(4 << 20);
  if (l->max_concurrent_streams() == 0) l->set_max_concurrent_streams(100);
  for (auto& m : *c->mutable_models()) ApplyServingDefaults(&m);
  for (auto& r : *c->mutable_routes())
    if (r.has_shadow() && r.shadow_fraction() == 0) r.set_shadow_fraction(1.0);
}

std::string ValidateRoute(const v1::RouteConfig& r) {
  std::string pair = r.source_language() + "-" + r.target_language();
  if (r.source_language().empty() || r.target_language().empty())
    return "route needs source_language and target_language";
  double total = 0;
  for (const auto& t : r.targets()) {
    if (!IsSafeModelName(t.variant().name()))
      return "route " + pair + ": bad target model name '" + t.variant().name() + "'";
    if (t.variant().version() < 0) return "route " + pair + ": negative target version";
    if (!(t.weight() >= 0) || std::isinf(t.weight()))
      return "route " + pair + ": target weight must be a finite non-negative number";
    total += t.weight();
  }
  if (r.targets_size() > 0 && total <= 0)
    return "route " + pair + ": target weights sum to zero";
  if (r.has_shadow()) {
    if (!IsSafeModelName(r.shadow().name()))
      return "route " + pair + ": bad shadow model name '" + r.shadow().name() + "'";
    if (r.shadow().version() < 0) return "route " + pair + ": negative shadow version";
  }
  if (!(r.shadow_fraction() >= 0 && r.shadow_fraction() <= 1))
    return "route " + pair + ": shadow_fraction must be within [0, 1]";
  return "";
}

std::vector<ConfigProblem> ServerConfigProblems(const v1::ServerConfig& c) {
  std::vector<ConfigProblem> out;
  auto add = [&out](const std::string& field, const std::string& problem) {
    out.push_back({field, problem});
  };
  if (c.listen_address().find(':') == std::string::npos)
    add("listen_address", "'" + c.listen_address() + "' needs host:port");
  if (c.metrics_address() != "off" && c.metrics_address().find(':') == std::string::npos)
    add("metrics_address", "'" + c.metrics_address() + "' needs host:port or \"off\"");
  std::set<std::string> names;
  for (int i = 0; i < c.models_size(); ++i) {
    const auto& m = c.models(i);
    const std::string at = "models[" + std::to_string(i) + "]";
    if (!IsSafeModelName(m.name())) add(at + ".name", "bad model name '" + m.name() + "'");
    else if (!names.insert(m.name()).second) add(at + ".name", "'" + m.name() + "' listed twice");
    const auto& p = m.version_policy();
    if (p.policy_case() == v1::VersionPolicy::kLatest && p.latest() <= 0)
      add(at + ".version_policy.latest", "latest must be positive");
    if (p.policy_case() == v1::VersionPolicy::kSpecific) {
      if (p.specific().versions_size() == 0)
        add(at + ".version_policy.specific", "lists no versions");
      for (auto v : p.specific().versions())
        if (v <= 0)
          add(at + ".version_policy.specific.versions",
              "versions must be positive integers, not " + std::to_string(v));
    }
    if (!KnownDevice(m.device()))
      add(at + ".device", "unknown device '" + m.device() + "' (auto, cpu, cuda, cuda:N)");
    if (m.dtype() != "fp32" && m.dtype() != "fp16" && m.dtype() != "bf16" &&
        m.dtype() != "int8")
      add(at + ".dtype", "unknown dtype '" + m.dtype() + "' (fp32, fp16, bf16, int8)");
    if (m.dtype() == "int8" && m.device().rfind("cuda", 0) == 0)
      add(at + ".dtype", "int8 runs on the CPU only, not on " + m.device());
    CheckBatching(at, m.batching(), &out);
    if (m.default_beam_size() < 1 || m.default_beam_size() > 16)
      add(at + ".default_beam_size", "must be within 1..16");
    if (m.max_input_tokens() < 0) add(at + ".max_input_tokens", "must not be negative");
    if (m.max_sentence_tokens() < 0)
      add(at + ".max_sentence_tokens", "must not be negative (0: off)");
    if (m.max_sentence_tokens() > 65536) add(at + ".max_sentence_tokens", "is above 65536");
  }
  std::set<std::string> pairs;
  for (int i = 0; i < c.routes_size(); ++i) {
    const auto& r = c.routes(i);
    const std::string at = "routes[" + std::to_string(i) + "]";
    std::string e = ValidateRoute(r);
    if (!e.empty()) add(at, e);
    if (!pairs.insert(r.source_language() + "-" + r.target_language()).second)
      add(at, "two routes for " + r.source_language() + "-" + r.target_language());
  }
  if (c.repository_poll_seconds() < 0) add("repository_poll_seconds", "must not be negative");
  if (c.drain_grace_seconds() < 0) add("drain_grace_seconds", "must not be negative");
  const auto& l = c.limits();
  if (l.max_text_bytes() < 0) add("limits.max_text_bytes", "must not be negative");
  if (l.max_batch_texts() < 0) add("limits.max_batch_texts", "must not be negative");
  if (l.max_message_bytes() < 0) add("limits.max_message_bytes", "must not be negative");
  if (l.max_concurrent_streams() < 0) add("limits.max_concurrent_streams", "must not be negative");
  if (l.rate_limit_rps() < 0) add("limits.rate_limit_rps", "must not be negative");
  if (l.max_document_bytes() < 0) add("limits.max_document_bytes", "must not be negative");
  if (l.max_document_sentences() < 0)
    add("limits.max_document_sentences", "must not be negative");
  const std::string& lv = c.log_level();
  if (lv != "debug" && lv != "info" && lv != "warning" && lv != "error")
    add("log_level", "'" + lv + "' is not one of debug, info, warning, error");
  if (c.log_format() != "text" && c.log_format() != "json")
    add("log_format", "'" + c.log_format() + "' is not one of text, json");
  if (c.compute_threads() < 0) add("compute_threads", "must not be negative");
  if (c.tls().cert_file().empty() != c.tls().key_file().empty())
    add("tls", "needs both cert_file and key_file");
  return out;
}

std::string ValidateServerConfig(const v1::ServerConfig& c) {
  std::vector<ConfigProblem> problems = ServerConfigProblems(c);
  if (problems.empty()) return "";
  return problems[0].field + ": " + problems[0].problem;
}

bool ParseServerConfigText(const std::string& text, v1::ServerConfig* config,
                           std::string* error) {
  google::protobuf::TextFormat::Parser parser;
  ErrorCollector errors;
  parser.RecordErrorsTo(&errors);
  config->Clear();
  if (!parser.ParseFromString(text, config)) {
    *error = errors.first.empty() ? "parse error" : errors.first;
    return false;
  }
  return true;
}

bool ParseServerConfig(const std::string& text, v1::ServerConfig* config, std::string* error) {
  if (!ParseServerConfigText(text, config, error)) {
    *error = "server config: " + *error;
    return false;
  }
  ApplyServerDefaults(config);
  std::string v = ValidateServerConfig(*config);
  if (!v.empty()) {
    *error = "server config: " + v;
    return false;
  }
  return true;
}

bool ReadServerConfig(const std::string& path, v1::ServerConfig* config, std::string* error) {
  std::ifstream in(path);
  if (!in) {
    *error = "cannot read server config " + path;
    return false;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  if (!ParseServerConfig(ss.str(), config, error)) {
    *error = path + ": " + *error;
    return false;
  }
  return true;
}

}  // namespace mixserve
