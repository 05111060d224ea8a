#include "server/config_check.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <vector>

#include "config/model_spec_io.h"
#include "config/server_config.h"

namespace mixserve {
namespace {

namespace fs = std::filesystem;

bool ReadAll(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::stringstream ss;
  ss << in.rdbuf();
  *out = ss.str();
  return true;
}

// Version directories are positive integers without leading zeros (as the repository reads
// them).
bool IsVersionName(const std::string& s) {
  if (s.empty() || s.size() > 18 || s[0] == '0') return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

struct ModelOnDisk {
  std::map<int64_t, ModelSpec> versions;  // the versions whose model.pbtxt is valid
  std::vector<int64_t> all_versions;
};

class Checker {
 public:
  explicit Checker(std::ostream& out) : out_(out) {}

  void Problem(const std::string& file, const std::string& what) {
    out_ << file << ": " << what << "\n";
    ++problems_;
    ++per_file_[file];
  }
  void Ok(const std::string& file) { out_ << file << ": ok\n"; }
  int problems() const { return problems_; }
  int problems(const std::string& file) const {
    auto it = per_file_.find(file);
    return it == per_file_.end() ? 0 : it->second;
  }

 private:
  std::ostream& out_;
  int problems_ = 0;
  std::map<std::string, int> per_file_;
};

// The files a model.pbtxt names must be in its directory (they are not read).
void CheckModelFiles(Checker* check, const std::string& file, const fs::path& dir,
                     const ModelSpec& spec) {
  const std::pair<const char*, std::string> files[] = {
      {"weights_file", spec.weights_file},
      {"tokenizer_file", spec.tokenizer_file},
      {"target_tokenizer_file", spec.target_tokenizer_file},
      {"vocabulary_file", spec.vocabulary_file}};
  for (const auto& [field, name] : files) {
    if (name.empty()) continue;
    std::error_code ec;
    if (!fs::is_regular_file(dir / name, ec))
      check->Problem(file, std::string(field) + ": no file '" + name + "' in " + dir.string());
  }
}

std::map<std::string, ModelOnDisk> CheckRepository(Checker* check, const std::string& repo) {
  std::map<std::string, ModelOnDisk> models;
  std::vector<fs::path> model_dirs;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(repo, ec))
    if (e.is_directory(ec) && IsSafeModelName(e.path().filename().string()))
      model_dirs.push_back(e.path());
  std::sort(model_dirs.begin(), model_dirs.end());
  for (const auto& dir : model_dirs) {
    ModelOnDisk& model = models[dir.filename().string()];
    std::vector<fs::path> version_dirs;
    for (const auto& e : fs::directory_iterator(dir, ec))
      if (e.is_directory(ec) && IsVersionName(e.path().filename().string()))
        version_dirs.push_back(e.path());
    std::sort(version_dirs.begin(), version_dirs.end());
    for (const auto& vdir : version_dirs) {
      const int64_t version = std::stoll(vdir.filename().string());
      model.all_versions.push_back(version);
      const std::string file = (vdir / "model.pbtxt").string();
      ModelSpec spec;
      std::string error;
      if (!fs::exists(file, ec)) {
        check->Problem(vdir.string(), "no model.pbtxt");
        continue;
      }
      if (!ReadModelSpec(file, &spec, &error)) {
        // "FILE: model config: problem": the file is named once.
        if (error.rfind(file + ": ", 0) == 0) error = error.substr(file.size() + 2);
        check->Problem(file, error);
        continue;
      }
      CheckModelFiles(check, file, vdir, spec);
      if (check->problems(file) == 0) {
        model.versions[version] = spec;
        check->Ok(file);
      }
    }
  }
  return models;
}

// A variant a route names must exist in the repository and translate the route's pair.
void CheckVariant(Checker* check, const std::string& file, const std::string& field,
                  const v1::VariantRefConfig& ref, const v1::RouteConfig& route,
                  const std::map<std::string, ModelOnDisk>& models, const std::string& repo) {
  if (!IsSafeModelName(ref.name())) return;  // reported with the route's own checks
  auto it = models.find(ref.name());
  if (it == models.end()) {
    check->Problem(file, field + ".name: no model '" + ref.name() + "' in " + repo);
    return;
  }
  const ModelOnDisk& m = it->second;
  if (ref.version() > 0 && std::find(m.all_versions.begin(), m.all_versions.end(),
                                     ref.version()) == m.all_versions.end()) {
    check->Problem(file, field + ".version: no version " + std::to_string(ref.version()) +
                             " of '" + ref.name() + "' in " + repo);
    return;
  }
  if (m.versions.empty()) return;  // its model.pbtxt problems are reported already
  const ModelSpec& spec = ref.version() > 0 && m.versions.count(ref.version())
                              ? m.versions.at(ref.version())
                              : m.versions.rbegin()->second;
  if (spec.source_language != route.source_language() ||
      spec.target_language != route.target_language())
    check->Problem(file, field + ".name: '" + ref.name() + "' translates " +
                             spec.source_language + "-" + spec.target_language +
                             ", the route is " + route.source_language() + "-" +
                             route.target_language());
}

}  // namespace

int CheckConfig(const std::string& path,
                const std::function<void(v1::ServerConfig*)>& apply_flags, std::ostream& out) {
  Checker check(out);
  const std::string file = path.empty() ? "(no --config: defaults and flags)" : path;
  v1::ServerConfig config;
  if (!path.empty()) {
    std::string text, error;
    if (!ReadAll(path, &text)) {
      check.Problem(file, "cannot read the file");
      out << "1 problem\n";
      return check.problems();
    }
    if (!ParseServerConfigText(text, &config, &error)) {
      check.Problem(file, error);
      out << "1 problem\n";
      return check.problems();
    }
  }
  apply_flags(&config);
  ApplyServerDefaults(&config);
  for (const auto& p : ServerConfigProblems(config))
    check.Problem(file, p.field + ": " + p.problem);

  // Files the server reads at start-up.
  std::string content;
  if (!config.admin_token_file().empty()) {
    if (!ReadAll(config.admin_token_file(), &content))
      check.Problem(file, "admin_token_file: cannot read '" + config.admin_token_file() + "'");
    else if (content.find_first_not_of(" \t\r\n") == std::string::npos)
      check.Problem(file, "admin_token_file: '" + config.admin_token_file() + "' is empty");
  }
  const std::pair<const char*, std::string> tls[] = {
      {"tls.cert_file", config.tls().cert_file()},
      {"tls.key_file", config.tls().key_file()},
      {"tls.client_ca_file", config.tls().client_ca_file()}};
  for (const auto& [field, name] : tls)
    if (!name.empty() && !ReadAll(name, &content))
      check.Problem(file, std::string(field) + ": cannot read '" + name + "'");

  const std::string& repo = config.model_repository();
  std::error_code ec;
  if (!fs::is_directory(repo, ec)) {
    check.Problem(file, "model_repository: no directory '" + repo + "'");
  } else {
    auto models = CheckRepository(&check, repo);
    for (int i = 0; i < config.models_size(); ++i) {
      const auto& m = config.models(i);
      const std::string at = "models[" + std::to_string(i) + "]";
      auto it = models.find(m.name());
      if (it == models.end()) {
        if (IsSafeModelName(m.name()))
          check.Problem(file, at + ".name: no model '" + m.name() + "' in " + repo);
        continue;
      }
      if (it->second.all_versions.empty())
        check.Problem(file, at + ".name: '" + m.name() + "' has no version directory in " + repo);
      if (m.version_policy().has_specific())
        for (auto v : m.version_policy().specific().versions())
          if (v > 0 && std::find(it->second.all_versions.begin(), it->second.all_versions.end(),
                                 v) == it->second.all_versions.end())
            check.Problem(file, at + ".version_policy.specific.versions: no version " +
                                    std::to_string(v) + " of '" + m.name() + "' in " + repo);
    }
    for (int i = 0; i < config.routes_size(); ++i) {
      const auto& r = config.routes(i);
      const std::string at = "routes[" + std::to_string(i) + "]";
      for (int j = 0; j < r.targets_size(); ++j)
        CheckVariant(&check, file, at + ".targets[" + std::to_string(j) + "].variant",
                     r.targets(j).variant(), r, models, repo);
      if (r.has_shadow()) CheckVariant(&check, file, at + ".shadow", r.shadow(), r, models, repo);
    }
  }
  if (check.problems(file) == 0) check.Ok(file);
  if (check.problems() == 0) {
    out << "configuration ok\n";
  } else {
    out << check.problems() << (check.problems() == 1 ? " problem\n" : " problems\n");
  }
  return check.problems();
}

}  // namespace mixserve
