#include "offline/commands.h"

#include <cstdio>
#include <exception>
#include <map>

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
      {"sweep", {RunSweep, "distill + eval over a grid; ablation table (md, csv) and plot (svg)"}},
  };
  return kCommands;
}

void PrintUsage(FILE* out) {
  std::fprintf(out, "usage: mixserve-offline <command> [--flag=value ...]\n\ncommands:\n");
  for (const auto& [name, c] : Commands()) std::fprintf(out, "  %-9s %s\n", name.c_str(), c.summary);
  std::fprintf(out, "\n'mixserve-offline <command> --help' lists the flags of a command.\n");
}

}  // namespace

int Main(const std::string& command, const Args& args) {
  if (command == "--help" || command == "-h" || command == "help") {
    PrintUsage(stdout);
    return 0;
  }
  auto it = Commands().find(command);
  if (it == Commands().end()) {
    std::fprintf(stderr, "mixserve-offline: unknown command '%s'\n\n", command.c_str());
    PrintUsage(stderr);
    return 2;
  }
  try {
    return it->second.run(args);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "mixserve-offline %s: error: %s\n", command.c_str(), e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mixserve-offline %s: error: %s\n", command.c_str(), e.what());
    return 1;
  }
}

int Main(int argc, char** argv) {
  if (argc < 2) {
    PrintUsage(stderr);
    return 2;
  }
  return Main(argv[1], Args(argv + 2, argv + argc));
}

}  // namespace mixserve::offline
