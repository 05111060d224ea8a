#include "clients/cli/args.h"

#include <algorithm>
#include <stdexcept>
#include <utility>

namespace mixserve::cli {

namespace {

std::string Declared(std::string name) {
  std::replace(name.begin(), name.end(), '-', '_');
  return name;
}

}  // namespace

Args::Args(flags::Invocation invocation) : invocation_(std::move(invocation)) {}

bool Args::Has(const std::string& name) const {
  const std::string n = Declared(name);
  if (!invocation_.given.count(n)) return false;
  return !flags::IsBool(n) || flags::CurrentValue(n) == "true";
}

std::string Args::Get(const std::string& name, const std::string& fallback) const {
  const std::string n = Declared(name);
  return invocation_.given.count(n) ? flags::CurrentValue(n) : fallback;
}

long Args::GetInt(const std::string& name, long fallback) const {
  const std::string n = Declared(name);
  return invocation_.given.count(n) ? std::stol(flags::CurrentValue(n)) : fallback;
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
