// The subcommands of mixserve-offline. Each takes the arguments after its name, prints
// progress on stdout, returns 0 on success and throws (UsageError for a bad command line,
// std::exception otherwise) on failure; Main turns exceptions into a message and exit code.
#pragma once

#include <string>
#include <vector>

namespace mixserve::offline {

using Args = std::vector<std::string>;

int RunSpm(const Args& args);       // train the joint SentencePiece model
int RunTrain(const Args& args);     // train a Transformer (teacher or from-scratch control)
int RunDistill(const Args& args);   // fit attention replacements to a teacher, assemble
int RunFinetune(const Args& args);  // end-to-end fine-tuning with knowledge distillation
int RunEval(const Args& args);      // BLEU greedy/beam, latency, throughput
int RunExport(const Args& args);    // versioned model directory in a repository
int RunImport(const Args& args);    // Hugging Face MarianMT directory -> repository version
int RunSweep(const Args& args);     // grid of distill + eval, table and plot

// Dispatches argv[1] to a subcommand. Exit codes: 0 success, 1 failure, 2 bad command line.
int Main(int argc, char** argv);
int Main(const std::string& command, const Args& args);

}  // namespace mixserve::offline
