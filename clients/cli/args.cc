#include "clients/cli/args.h"

#include <cstdlib>
#include <stdexcept>

namespace mixserve::cli {

Args::Args(int argc, char** argv, int first, const std::set<std::string>& flags) {
  bool only_positionals = false;
  for (int i = first; i < argc; ++i) {
    std::string a = argv[i];
    if (only_positionals || a.size() < 2 || a.compare(0, 2, "--") != 0) {
      positionals_.push_back(a);
      continue;
    }
    if (a == "--") {
      only_positionals = true;
      continue;
    }
    a = a.substr(2);
    const auto eq = a.find('=');
    if (eq != std::string::npos) {
      values_[a.substr(0, eq)] = a.substr(eq + 1);
    } else if (flags.count(a)) {
      values_[a] = "true";
    } else if (i + 1 < argc) {
      values_[a] = argv[++i];
    } else {
      error_ = "option --" + a + " needs a value";
    }
  }
}

std::string Args::Get(const std::string& name, const std::string& fallback) const {
  auto it = values_.find(name);
  return it == values_.end() ? fallback : it->second;
}

long Args::GetInt(const std::string& name, long fallback) {
  auto it = values_.find(name);
  if (it == values_.end()) return fallback;
  char* end = nullptr;
  const long v = std::strtol(it->second.c_str(), &end, 10);
  if (it->second.empty() || *end != '\0') {
    error_ = "option --" + name + " expects an integer, got '" + it->second + "'";
    return fallback;
  }
  return v;
}

std::vector<std::string> Args::Unknown(const std::set<std::string>& known) const {
  std::vector<std::string> unknown;
  for (const auto& [k, v] : values_)
    if (!known.count(k)) unknown.push_back(k);
  return unknown;
}

bool ParseVariantRef(const std::string& text, std::string* name, int64_t* version) {
  const auto colon = text.rfind(':');
  *name = text.substr(0, colon);
  *version = 0;
  if (name->empty()) return false;
  if (colon == std::string::npos) return true;
  const std::string num = text.substr(colon + 1);
  if (num.empty() || num.find_first_not_of("0123456789") != std::string::npos) return false;
  try {
    *version = std::stoll(num);
  } catch (const std::out_of_range&) {
    return false;
  }
  return true;
}

}  // namespace mixserve::cli
