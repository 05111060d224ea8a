#include "clients/cli/flags.h"

#include <absl/flags/flag.h>

#include <cstdint>
#include <string>

// Common flags.
ABSL_FLAG(std::string, target, "localhost:8500", "server address HOST:PORT");
ABSL_FLAG(int64_t, deadline_ms, 30000,
          "deadline of each call in milliseconds; of each line for --file and stdin");
ABSL_FLAG(std::string, token, "", "bearer token for administration");
ABSL_FLAG(std::string, token_file, "", "file whose first line is the bearer token");
ABSL_FLAG(std::string, tls_ca, "", "use TLS, trusting this CA certificate (PEM file)");
// translate, set-route, models.
ABSL_FLAG(std::string, from, "", "source language (required)");
ABSL_FLAG(std::string, to, "", "target language (required)");
ABSL_FLAG(std::string, variant, "",
          "ask for one model variant NAME[:VERSION] (default: the server's routing)");
ABSL_FLAG(std::string, routing_key, "", "sticky A/B assignment key");
ABSL_FLAG(int32_t, beam, 0, "beam size (0: the variant's default)");
ABSL_FLAG(int32_t, max_tokens, 0, "maximum output tokens (0: the variant's default)");
ABSL_FLAG(double, length_penalty, 0, "length penalty of beam search (0: the variant's default)");
ABSL_FLAG(int32_t, n_best, 0, "hypotheses to return (printed with their scores when > 1)");
ABSL_FLAG(std::string, file, "", "one sentence per line, streamed through TranslateStream");
ABSL_FLAG(int32_t, window, 64, "lines sent and not yet translated, at most");
ABSL_FLAG(bool, document, false,
          "the input (TEXT, --file or stdin) is one document: TranslateDocument splits it into "
          "sentences and keeps its paragraphs and white space");
ABSL_FLAG(bool, segments, false,
          "with --document: print the sentence alignment, one JSON object per sentence (with "
          "--json: the whole response)");
ABSL_FLAG(std::string, reference, "", "reference translation (single sentence, online BLEU)");
ABSL_FLAG(bool, json, false, "print each response as JSON");
ABSL_FLAG(std::string, targets, "", "NAME[:VER]=WEIGHT,... the variants of the route (required)");
ABSL_FLAG(std::string, shadow, "", "NAME[:VER] that gets a copy of the route's traffic");
ABSL_FLAG(double, shadow_fraction, 1, "fraction of the traffic copied to --shadow");

namespace mixserve::cli {

const flags::Program& CliProgram() {
  static const flags::Program kProgram = [] {
    flags::Program p;
    p.name = "mixserve-cli";
    p.usage =
        "usage: mixserve-cli [flags] COMMAND [flags] [args]\n"
        "Translates text and administers a mixserve server (ModelService: --token or\n"
        "--token-file when the server requires one).\n"
        "Lines (--file, stdin): one output line per input line, in input order. --deadline-ms\n"
        "applies to each line, from its first send, retries included. RESOURCE_EXHAUSTED and\n"
        "UNAVAILABLE are retried with jittered backoff, a broken stream is reopened and its\n"
        "unanswered lines sent again. A blank line is echoed without asking the server. A line\n"
        "that still fails prints an empty line (with --json: its status), `mixserve-cli: line\n"
        "N: CODE: message` on stderr, and the exit status is 1. A line refused as retryable for\n"
        "its whole deadline stops the run: the rest of the input is not read.\n"
        "Exit status: 0 on success (every line translated), 1 on an RPC error (the status is\n"
        "printed; for lines, any line not translated), 2 on usage errors.\n";
    p.flags = {"target", "deadline_ms", "token", "token_file", "tls_ca"};
    p.commands = {
        {"translate",
         "translate the arguments (joined into one sentence), or stdin / --file line by line",
         "[TEXT...]",
         {"from", "to", "variant", "routing_key", "beam", "max_tokens", "length_penalty",
          "n_best", "file", "window", "document", "segments", "reference", "json"}},
        {"health", "grpc.health.v1 status of the server (or of one service)", "[SERVICE]", {}},
        {"models", "list models, versions, states", "[NAME]", {"json"}},
        {"load", "load a version (default: the latest in the repository)", "NAME [VERSION]", {}},
        {"unload", "unload a version (default: all versions)", "NAME [VERSION]", {}},
        {"routes", "show routes", "", {}},
        {"set-route", "replace the route of a language pair", "",
         {"from", "to", "targets", "shadow", "shadow_fraction"}},
    };
    p.separator = '-';
    return p;
  }();
  return kProgram;
}

}  // namespace mixserve::cli
