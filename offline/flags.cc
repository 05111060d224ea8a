#include "offline/flags.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <sstream>

namespace mixserve::offline {

FlagSet::FlagSet(std::string command, std::string summary, std::vector<FlagDef> defs)
    : command_(std::move(command)), summary_(std::move(summary)), defs_(std::move(defs)) {}

bool FlagSet::Parse(const std::vector<std::string>& args) {
  for (const auto& arg : args) {
    if (arg == "--help" || arg == "-h" || arg == "help") return false;
    if (arg.rfind("--", 0) != 0 || arg.size() == 2)
      throw UsageError("unexpected argument '" + arg + "' (flags are --name=value; see " +
                       command_ + " --help)");
    const auto eq = arg.find('=');
    std::string name = arg.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
    std::string value = eq == std::string::npos ? "true" : arg.substr(eq + 1);
    std::replace(name.begin(), name.end(), '-', '_');
    const bool known = std::any_of(defs_.begin(), defs_.end(),
                                   [&](const FlagDef& d) { return d.name == name; });
    if (!known)
      throw UsageError("unknown flag --" + name + " for '" + command_ + "' (see " + command_ +
                       " --help)");
    given_[name] = value;
  }
  for (const auto& d : defs_) {
    if (d.required && (!given_.count(d.name) || given_[d.name].empty()))
      throw UsageError("missing required flag --" + d.name + " (" + d.help + ")");
  }
  return true;
}

std::string FlagSet::Usage() const {
  std::ostringstream os;
  os << "usage: mixserve-offline " << command_ << " [--flag=value ...]\n" << summary_ << "\n\nflags:\n";
  for (const auto& d : defs_) {
    os << "  --" << d.name;
    if (d.required) os << " (required)";
    else if (!d.default_value.empty()) os << " (default: " << d.default_value << ")";
    os << "\n      " << d.help << "\n";
  }
  return os.str();
}

const FlagDef& FlagSet::Def(const std::string& name) const {
  for (const auto& d : defs_)
    if (d.name == name) return d;
  throw std::logic_error("flag --" + name + " is not declared for " + command_);
}

bool FlagSet::Given(const std::string& name) const {
  Def(name);
  return given_.count(name) > 0;
}

std::string FlagSet::Get(const std::string& name) const {
  const auto& d = Def(name);
  auto it = given_.find(name);
  return it == given_.end() ? d.default_value : it->second;
}

int64_t FlagSet::GetInt64(const std::string& name) const {
  const std::string v = Get(name);
  errno = 0;
  char* end = nullptr;
  const long long x = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || errno != 0)
    throw UsageError("flag --" + name + ": '" + v + "' is not an integer");
  return x;
}

int FlagSet::GetInt(const std::string& name) const {
  const int64_t x = GetInt64(name);
  if (x < INT32_MIN || x > INT32_MAX) throw UsageError("flag --" + name + ": value out of range");
  return static_cast<int>(x);
}

double FlagSet::GetDouble(const std::string& name) const {
  const std::string v = Get(name);
  char* end = nullptr;
  const double x = std::strtod(v.c_str(), &end);
  if (v.empty() || *end != '\0') throw UsageError("flag --" + name + ": '" + v + "' is not a number");
  return x;
}

bool FlagSet::GetBool(const std::string& name) const {
  const std::string v = Get(name);
  if (v == "true" || v == "1" || v == "yes") return true;
  if (v == "false" || v == "0" || v == "no" || v.empty()) return false;
  throw UsageError("flag --" + name + ": '" + v + "' is not a boolean (true/false)");
}

std::vector<std::string> FlagSet::GetList(const std::string& name) const {
  return SplitList(Get(name));
}

std::map<std::string, std::string> FlagSet::Values() const {
  std::map<std::string, std::string> out;
  for (const auto& d : defs_) out[d.name] = Get(d.name);
  return out;
}

std::vector<std::string> SplitList(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream is(s);
  while (std::getline(is, cur, sep)) {
    // trim
    const auto b = cur.find_first_not_of(" \t");
    const auto e = cur.find_last_not_of(" \t");
    if (b != std::string::npos) out.push_back(cur.substr(b, e - b + 1));
  }
  return out;
}

}  // namespace mixserve::offline
