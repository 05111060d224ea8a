// The command-line parser of every mixserve binary, built on Abseil flags:
//  - flags are declared with ABSL_FLAG (names with '_'); on the command line '-' and '_' in a
//    name are the same, so --deadline-ms and --deadline_ms both set FLAGS_deadline_ms;
//  - --name=value, --name value (not for booleans), --name and --noname (booleans); "--" ends
//    the flags; values are parsed by Abseil (absl::CommandLineFlag::ParseFrom);
//  - Abseil knows no subcommands: each command lists the flags it takes, and a flag of the
//    binary that the chosen command does not take is rejected like an unknown one;
//  - errors read as Abseil's (what mixserve-server prints), then a pointer to --help:
//        ERROR: Unknown command line flag 'frobnicate'
//        Try 'mixserve-cli translate --help'.
//    and the exit status of a usage error is 2;
//  - --help prints the usage message (absl::SetProgramUsageMessage) and the flags of the
//    program, `PROGRAM COMMAND --help` those of the command; --version prints
//    VersionLine(program) (base/build_info.h) and the program's details; both exit 0.
#pragma once

#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace mixserve::flags {

// A bad command line. what() is the message without the "ERROR: " prefix.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A flag a command takes.
struct FlagRef {
  std::string name;       // on the command line, with '_' (e.g. "deadline_ms")
  std::string absl_name;  // the ABSL_FLAG's name; empty: the same as `name`
};

// Flags given on a command line, after parsing.
struct ParsedArgs {
  std::vector<std::string> positionals;
  std::set<std::string> given;  // names (FlagRef::name) set on the command line
  bool help = false;            // --help (or -h) was given
};

// Parses `args` (no program name, no command name) against the flags in `accepted`. Every
// accepted flag is first reset to defaults[name] when present, else to its declared default,
// so that a second parse in the same process starts from the same state. `context` names the
// program and command in errors ("mixserve-cli health"); positionals are rejected unless
// `allow_positionals`. Throws UsageError; throws std::logic_error when an accepted flag is
// not declared or a default does not parse (a bug of the caller).
ParsedArgs ParseArgs(const std::vector<std::string>& args, const std::vector<FlagRef>& accepted,
                     const std::map<std::string, std::string>& defaults,
                     const std::string& context, bool allow_positionals);

// The current value of a declared flag as text (absl::CommandLineFlag::CurrentValue), and
// whether it is a boolean flag. Throw std::logic_error when `absl_name` is not declared.
std::string CurrentValue(const std::string& absl_name);
bool IsBool(const std::string& absl_name);

// One entry of a --help listing.
struct FlagHelp {
  std::string name;           // as printed, without "--"
  std::string type;           // "int", "string", ...; empty for booleans
  std::string default_value;  // printed unless required
  std::string help;
  bool required = false;
};

// The entry of a declared flag: its type, declared default and help. `shown_name` is the
// name printed (e.g. with '-' where the program's documentation spells it so).
FlagHelp Describe(const std::string& absl_name, const std::string& shown_name);
// The listing: "  --name=TYPE  (default: X)" then the help on an indented line.
std::string FormatFlags(const std::vector<FlagHelp>& flags);

// Prints a usage error in the shared format to stderr and returns 2, the exit status of
// usage errors. `help_for` is what --help is suggested for ("mixserve-cli translate").
int ReportUsageError(const std::string& help_for, const std::string& message);

// Registers the usage message with Abseil (absl::SetProgramUsageMessage; once per process,
// later calls are ignored).
void SetUsageMessage(const std::string& usage);

// A subcommand of a program.
struct Command {
  std::string name;
  std::string summary;  // one line, listed in the program's --help
  std::string args;     // the synopsis after the flags, e.g. "[TEXT...]"; empty: none taken
  std::vector<std::string> flags;  // the flags it takes besides the program's common flags
};

// A program: its usage message, its common flags (taken before or after the command) and its
// commands (none: a program without subcommands).
struct Program {
  std::string name;
  std::string usage;  // the usage message: what --help prints before the flags
  std::vector<std::string> flags;
  std::vector<Command> commands;
  bool allow_positionals = false;  // for a program without commands
  char separator = '_';            // how --help prints '_' in names (the documented spelling)
  std::string version_details;     // lines --version prints after the version line
};

// The parsed command line of a program.
struct Invocation {
  std::string command;                   // empty for a program without commands
  std::vector<std::string> positionals;  // the command first, then its arguments
  std::set<std::string> given;           // flags set on the command line ('_' names)
};

// Parses argv of `program`. Returns -1 when the program is to run (*out filled); otherwise
// the exit status, with the output printed: 0 after --help or --version, 2 after a usage
// error (no command, an unknown command or flag, a bad value). With `error`, a usage error
// is not printed but left in *error (the message, for ReportUsageError).
int Parse(const Program& program, int argc, const char* const* argv, Invocation* out,
          std::string* error = nullptr);

// The --help text of the program, or of one of its commands.
std::string ProgramHelp(const Program& program);
std::string CommandHelp(const Program& program, const Command& command);

}  // namespace mixserve::flags
