#include "offline/repository.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <stdexcept>

#include "base/remove_tree.h"
#include "offline/flags.h"

namespace mixserve::offline {

namespace fs = std::filesystem;

int NextModelVersion(const std::string& dir) {
  int v = 0;
  if (fs::is_directory(dir)) {
    for (const auto& e : fs::directory_iterator(dir)) {
      const std::string n = e.path().filename().string();
      if (!e.is_directory() || n.empty() || n.find_first_not_of("0123456789") != std::string::npos)
        continue;
      v = std::max(v, std::stoi(n));
    }
  }
  return v + 1;
}

bool ValidModelName(const std::string& n) {
  if (n.empty() || n[0] == '.') return false;
  for (char c : n)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) return false;
  return true;
}

NewVersion PrepareNewVersion(const std::string& repo, const std::string& name, int version) {
  if (!ValidModelName(name))
    throw UsageError("--name '" + name + "' must be letters, digits, '-', '_' or '.'");
  if (version < 0) throw UsageError("--version must be >= 0");
  const std::string model_dir = repo + "/" + name;
  NewVersion v;
  v.version = version == 0 ? NextModelVersion(model_dir) : version;
  v.dir = model_dir + "/" + std::to_string(v.version);
  if (fs::exists(v.dir))
    throw std::runtime_error("version " + v.dir +
                             " already exists (use --version=0 for the next free one)");
  v.tmp = model_dir + "/.tmp-" + std::to_string(v.version);
  RemoveTree(v.tmp);
  return v;
}

}  // namespace mixserve::offline
