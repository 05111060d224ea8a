#include "base/flags.h"

#include <absl/flags/commandlineflag.h>
#include <absl/flags/reflection.h>
#include <absl/flags/usage.h>

#include <algorithm>
#include <cstdint>
#include <iostream>
#include <mutex>
#include <sstream>

#include "base/build_info.h"

namespace mixserve::flags {

namespace {

std::string Underscores(std::string name) {
  std::replace(name.begin(), name.end(), '-', '_');
  return name;
}

std::string Shown(std::string name, char separator) {
  std::replace(name.begin(), name.end(), '_', separator);
  return name;
}

absl::CommandLineFlag* Find(const std::string& absl_name) {
  absl::CommandLineFlag* flag = absl::FindCommandLineFlag(absl_name);
  if (flag == nullptr)
    throw std::logic_error("flag --" + absl_name + " is not declared (ABSL_FLAG)");
  return flag;
}

// Abseil's message for a value that does not parse, with the flag named as it was typed.
std::string IllegalValue(const std::string& typed, const std::string& absl_name,
                         const std::string& value, const std::string& absl_error) {
  const std::string prefix = "Illegal value '" + value + "' specified for flag '";
  std::string detail;
  const std::string absl_prefix = prefix + absl_name + "'";
  if (absl_error.rfind(absl_prefix, 0) == 0)
    detail = absl_error.substr(absl_prefix.size());
  else if (!absl_error.empty())
    detail = "; " + absl_error;
  return prefix + typed + "'" + detail;
}

bool IsHelp(const std::string& arg) { return arg == "--help" || arg == "-h"; }

}  // namespace

ParsedArgs ParseArgs(const std::vector<std::string>& args, const std::vector<FlagRef>& accepted,
                     const std::map<std::string, std::string>& defaults,
                     const std::string& context, bool allow_positionals) {
  std::map<std::string, std::pair<std::string, absl::CommandLineFlag*>> by_name;
  for (const auto& ref : accepted) {
    const std::string absl_name = ref.absl_name.empty() ? ref.name : ref.absl_name;
    absl::CommandLineFlag* flag = Find(absl_name);
    auto d = defaults.find(ref.name);
    const std::string value = d == defaults.end() ? flag->DefaultValue() : d->second;
    std::string error;
    if (!flag->ParseFrom(value, &error))
      throw std::logic_error("default of --" + ref.name + " for " + context + ": " + error);
    by_name[ref.name] = {absl_name, flag};
  }

  ParsedArgs out;
  // --help wins over any error of the rest of the command line.
  for (const auto& arg : args) {
    if (arg == "--") break;
    if (IsHelp(arg)) {
      out.help = true;
      return out;
    }
  }
  bool only_positionals = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (!only_positionals && arg == "--") {
      only_positionals = true;
      continue;
    }
    if (only_positionals || arg.size() < 3 || arg.compare(0, 2, "--") != 0) {
      if (!allow_positionals) throw UsageError("Unexpected argument '" + arg + "'");
      out.positionals.push_back(arg);
      continue;
    }
    const std::string body = arg.substr(2);
    const auto eq = body.find('=');
    const std::string typed = body.substr(0, eq);
    std::string name = Underscores(typed);
    bool has_value = eq != std::string::npos;
    std::string value = has_value ? body.substr(eq + 1) : "";
    auto it = by_name.find(name);
    if (it == by_name.end() && !has_value && name.rfind("no", 0) == 0) {
      auto negated = by_name.find(name.substr(2));
      if (negated != by_name.end() && negated->second.second->IsOfType<bool>()) {
        it = negated;
        name = name.substr(2);
        has_value = true;
        value = "false";
      }
    }
    if (it == by_name.end()) {
      if (absl::FindCommandLineFlag(name) != nullptr)
        throw UsageError("Unknown command line flag '" + typed + "' for " + context);
      throw UsageError("Unknown command line flag '" + typed + "'");
    }
    absl::CommandLineFlag* flag = it->second.second;
    if (!has_value) {
      if (flag->IsOfType<bool>()) {
        value = "true";
      } else if (i + 1 < args.size()) {
        value = args[++i];
      } else {
        throw UsageError("Missing the value for the flag '" + typed + "'");
      }
    }
    std::string error;
    if (!flag->ParseFrom(value, &error))
      throw UsageError(IllegalValue(typed, it->second.first, value, error));
    out.given.insert(name);
  }
  return out;
}

std::string CurrentValue(const std::string& absl_name) { return Find(absl_name)->CurrentValue(); }

bool IsBool(const std::string& absl_name) { return Find(absl_name)->IsOfType<bool>(); }

FlagHelp Describe(const std::string& absl_name, const std::string& shown_name) {
  const absl::CommandLineFlag* flag = Find(absl_name);
  FlagHelp h;
  h.name = shown_name;
  if (flag->IsOfType<bool>()) h.type = "";
  else if (flag->IsOfType<int32_t>() || flag->IsOfType<int64_t>()) h.type = "int";
  else if (flag->IsOfType<uint64_t>() || flag->IsOfType<uint32_t>()) h.type = "uint";
  else if (flag->IsOfType<double>() || flag->IsOfType<float>()) h.type = "number";
  else if (flag->IsOfType<std::string>()) h.type = "string";
  else h.type = "value";
  h.default_value = flag->DefaultValue();
  h.help = flag->Help();
  return h;
}

std::string FormatFlags(const std::vector<FlagHelp>& flags) {
  std::ostringstream os;
  for (const auto& f : flags) {
    os << "  --" << f.name;
    if (!f.type.empty()) os << "=" << f.type;
    if (f.required) os << "  (required)";
    else if (!f.default_value.empty()) os << "  (default: " << f.default_value << ")";
    os << "\n";
    if (!f.help.empty()) os << "      " << f.help << "\n";
  }
  return os.str();
}

int ReportUsageError(const std::string& help_for, const std::string& message) {
  std::cerr << "ERROR: " << message << "\nTry '" << help_for << " --help'.\n";
  return 2;
}

void SetUsageMessage(const std::string& usage) {
  static std::once_flag once;
  std::call_once(once, [&] { absl::SetProgramUsageMessage(usage); });
}

namespace {

std::vector<FlagHelp> Listing(const std::vector<std::string>& names, char separator) {
  std::vector<FlagHelp> out;
  for (const auto& n : names) out.push_back(Describe(n, Shown(n, separator)));
  return out;
}

const Command* FindCommand(const Program& p, const std::string& name) {
  for (const auto& c : p.commands)
    if (c.name == name) return &c;
  return nullptr;
}

// The index of the first positional argument in `args`, or args.size(): flags are skipped,
// with the next argument when it is the value of a non-boolean flag ("--target HOST").
size_t FirstPositional(const std::vector<std::string>& args) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--") return i + 1 < args.size() ? i + 1 : args.size();
    if (IsHelp(a)) continue;
    if (a.size() < 3 || a.compare(0, 2, "--") != 0) return i;
    if (a.find('=') != std::string::npos) continue;
    const absl::CommandLineFlag* flag = absl::FindCommandLineFlag(Underscores(a.substr(2)));
    if (flag != nullptr && !flag->IsOfType<bool>()) ++i;
  }
  return args.size();
}

}  // namespace

std::string ProgramHelp(const Program& p) {
  std::ostringstream os;
  os << p.usage;
  if (!p.commands.empty()) {
    os << "\nCommands:\n";
    size_t width = 0;
    for (const auto& c : p.commands) width = std::max(width, c.name.size());
    for (const auto& c : p.commands)
      os << "  " << c.name << std::string(width + 2 - c.name.size(), ' ') << c.summary << "\n";
  }
  const bool common = !p.flags.empty() && !p.commands.empty();
  os << "\n" << (common ? "Common flags (before or after the command)" : "Flags") << ":\n"
     << FormatFlags(Listing(p.flags, p.separator)) << "  --help\n      print this text"
     << (p.commands.empty() ? "" : "; 'COMMAND --help': the flags of a command")
     << "\n  --version\n      print the version and exit\n";
  return os.str();
}

std::string CommandHelp(const Program& p, const Command& c) {
  std::ostringstream os;
  os << "usage: " << p.name << " " << c.name << " [flags]" << (c.args.empty() ? "" : " " + c.args)
     << "\n" << c.summary << "\n";
  if (!c.flags.empty()) os << "\nFlags:\n" << FormatFlags(Listing(c.flags, p.separator));
  if (!p.flags.empty())
    os << "\nCommon flags:\n" << FormatFlags(Listing(p.flags, p.separator));
  return os.str();
}

int Parse(const Program& p, int argc, const char* const* argv, Invocation* out,
          std::string* error) {
  SetUsageMessage(p.usage);
  auto fail = [&](const std::string& help_for, const std::string& message) {
    if (error == nullptr) return ReportUsageError(help_for, message);
    *error = message;
    return 2;
  };
  std::vector<std::string> args(argv + 1, argv + argc);
  for (const auto& a : args) {
    if (a == "--") break;
    if (a == "--version") {
      std::cout << VersionLine(p.name) << "\n" << p.version_details;
      return 0;
    }
  }
  *out = Invocation();
  const Command* command = nullptr;
  std::string context = p.name;
  if (!p.commands.empty()) {
    const size_t at = FirstPositional(args);
    if (at == args.size()) {
      if (std::any_of(args.begin(), args.end(), IsHelp)) {
        std::cout << ProgramHelp(p);
        return 0;
      }
      std::string names;
      for (const auto& c : p.commands) names += (names.empty() ? "" : ", ") + c.name;
      return fail(p.name, "No command given (" + names + ")");
    }
    command = FindCommand(p, args[at]);
    if (command == nullptr) return fail(p.name, "Unknown command '" + args[at] + "'");
    out->command = command->name;
    out->positionals.push_back(command->name);
    context += " " + command->name;
    args.erase(args.begin() + static_cast<std::ptrdiff_t>(at));
  }
  std::vector<FlagRef> accepted;
  for (const auto& n : p.flags) accepted.push_back({n, ""});
  if (command != nullptr)
    for (const auto& n : command->flags) accepted.push_back({n, ""});
  ParsedArgs parsed;
  try {
    parsed = ParseArgs(args, accepted, {}, context,
                       command != nullptr ? !command->args.empty() : p.allow_positionals);
  } catch (const UsageError& e) {
    return fail(context, e.what());
  }
  if (parsed.help) {
    std::cout << (command != nullptr ? CommandHelp(p, *command) : ProgramHelp(p));
    return 0;
  }
  out->positionals.insert(out->positionals.end(), parsed.positionals.begin(),
                          parsed.positionals.end());
  out->given = std::move(parsed.given);
  return -1;
}

}  // namespace mixserve::flags
