// spm: one SentencePiece model over the source and target training text (joint vocabulary).
#include <filesystem>

#include "offline/commands.h"
#include "offline/common.h"
#include "offline/progress.h"

namespace mixserve::offline {

int RunSpm(const Args& args) {
  FlagSet flags("spm",
                "Trains one SentencePiece model on the training text of both languages (joint\n"
                "vocabulary, shared embeddings) and writes <out>.model and <out>.vocab.",
                Concat({DataFlags(true),
                        {{"split", "train", "split whose text is used"},
                         {"vocab_size", "8000", "vocabulary size (ids 0-3: pad, unk, bos, eos)"},
                         {"model_type", "unigram", "unigram or bpe"},
                         {"character_coverage", "1.0", "SentencePiece character coverage"},
                         {"out", "", "output prefix: writes <out>.model and <out>.vocab", true}}}));
  if (!flags.Parse(args)) {
    Print("%s", flags.Usage().c_str());
    return 0;
  }
  const int vocab = flags.GetInt("vocab_size");
  if (vocab < 8) throw UsageError("--vocab_size must be at least 8");
  const std::string type = flags.Get("model_type");
  if (type != "unigram" && type != "bpe")
    throw UsageError("--model_type must be unigram or bpe, not '" + type + "'");
  const std::string out = flags.Get("out");
  const size_t limit = static_cast<size_t>(flags.GetInt64("limit"));

  std::vector<std::string> inputs;
  for (const auto& lang : {flags.Get("src"), flags.Get("tgt")}) {
    std::string path = DataFile(flags.Get("data"), flags.Get("split"), lang);
    if (limit > 0) {
      // SentencePiece reads whole files: hand it the first `limit` lines.
      const std::string tmp = out + ".input." + lang + ".txt";
      WriteLines(tmp, ReadLines(path, limit));
      path = tmp;
    }
    inputs.push_back(path);
  }
  Tokenizer::TrainOptions opt;
  opt.vocab_size = vocab;
  opt.model_type = type;
  opt.character_coverage = static_cast<float>(flags.GetDouble("character_coverage"));
  const auto parent = std::filesystem::path(out).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent);
  Stopwatch sw;
  Print("spm: training %s vocabulary of %d on %s, %s\n", type.c_str(), vocab, inputs[0].c_str(),
        inputs[1].c_str());
  Tokenizer::Train(inputs, out, opt);
  if (limit > 0)
    for (const auto& p : inputs) std::filesystem::remove(p);
  auto tok = LoadTokenizer(out + ".model");
  Print("spm: wrote %s.model (%d pieces) in %s\n", out.c_str(), tok->vocab_size(),
        FormatDuration(sw.Seconds()).c_str());
  return 0;
}

}  // namespace mixserve::offline
