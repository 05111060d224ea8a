#include "offline/commands.h"

#include <cstdio>
#include <exception>
#include <map>

#include "base/build_info.h"
#include "base/flags.h"
#include "engine/engine.h"
#include "offline/flags.h"

namespace mixserve::offline {

namespace {

struct Command {
  int (*run)(const Args&);
  const char* summary;
};

const std::map<std::string, Command>& Commands() {
  static const std::map<std::string, Command> kCommands = {
      {"spm", {RunSpm, "train the joint SentencePiece model over source and target text"}},
      {"train", {RunTrain, "train a Transformer (baseline teacher, or any mixers from scratch)"}},
      {"distill", {RunDistill, "fit attention replacements to a frozen teacher and assemble the student"}},
      {"finetune", {RunFinetune, "fine-tune a model end to end (cross-entropy + distillation)"}},
      {"eval", {RunEval, "BLEU (greedy, beam), latency and throughput on test sets"}},
      {"export", {RunExport, "write a versioned model directory into a model repository"}},
      {"import", {RunImport, "a Hugging Face MarianMT directory as a versioned model directory"}},
      {"sweep", {RunSweep, "distill + eval over a grid; ablation table (md, csv) and plot (svg)"}},
  };
  return kCommands;
}

const flags::Program& OfflineProgram() {
  static const flags::Program kProgram = [] {
    flags::Program p;
    p.name = "mixserve-offline";
    p.usage =
        "usage: mixserve-offline COMMAND [flags]\n"
        "The pipeline from parallel text to servable models (docs/offline.md).\n"
        "Exit status: 0 on success, 1 on a failure, 2 on usage errors.\n";
    for (const auto& [name, c] : Commands()) p.commands.push_back({name, c.summary, "", {}});
    p.version_details = "LibTorch " + TorchVersion() + "\n";
    return p;
  }();
  return kProgram;
}

}  // namespace

int Main(const std::string& command, const Args& args) {
  const flags::Program& program = OfflineProgram();
  flags::SetUsageMessage(program.usage);
  if (command == "--help" || command == "-h" || command == "help") {
    std::printf("%s", flags::ProgramHelp(program).c_str());
    return 0;
  }
  if (command == "--version") {
    std::printf("%s\n%s", VersionLine(program.name).c_str(), program.version_details.c_str());
    return 0;
  }
  auto it = Commands().find(command);
  if (it == Commands().end()) {
    const bool flag = command.rfind("--", 0) == 0;
    return flags::ReportUsageError(
        program.name, flag ? "Unknown command line flag '" + command.substr(2) +
                                 "' (flags come after the command)"
                           : "Unknown command '" + command + "'");
  }
  try {
    return it->second.run(args);
  } catch (const UsageError& e) {
    return flags::ReportUsageError(program.name + " " + command, e.what());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mixserve-offline %s: error: %s\n", command.c_str(), e.what());
    return 1;
  }
}

int Main(int argc, char** argv) {
  if (argc < 2) {
    std::string names;
    for (const auto& [name, c] : Commands()) names += (names.empty() ? "" : ", ") + name;
    return flags::ReportUsageError("mixserve-offline", "No command given (" + names + ")");
  }
  return Main(argv[1], Args(argv + 2, argv + argc));
}

}  // namespace mixserve::offline
