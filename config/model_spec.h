// Plain C++ description of a model: what model.pbtxt says, with defaults applied and every
// layer's mixers spelled out. Neither protobuf nor Torch appears here, so both sides of the
// codebase can share it (docs/architecture.md).
#pragma once

#include <string>
#include <vector>

namespace mixserve {

enum class Site { kEncoderSelf, kDecoderSelf, kDecoderCross };

const char* SiteName(Site site);  // "encoder_self", "decoder_self", "decoder_cross"

struct MixerSpec {
  std::string type = "mha";  // registered mixer name
  std::string size;          // feed-forward family: xs, s, m, l
  int hidden = 0;            // explicit hidden width; 0: from size
  int window = 0;            // aft_local / aft_conv
  int heads = 0;             // 0: the model's heads
  bool operator==(const MixerSpec& o) const {
    return type == o.type && size == o.size && hidden == o.hidden && window == o.window &&
           heads == o.heads;
  }
};

struct EncoderLayerSpec {
  MixerSpec self;
};

struct DecoderLayerSpec {
  MixerSpec self;
  MixerSpec cross;
};

// Token ids with a meaning of their own. mixserve's tokenizers fix them (ModelSpec::kPad ..
// below); imported models bring theirs (MarianMT: EOS 0, UNK 1, pad = decoder start = the
// last id).
struct SpecialIds {
  int pad = 0;
  int unk = 1;
  int decoder_start = 2;  // the decoder's first input (mixserve: BOS)
  int eos = 3;
};

// How search ranks, stops and restricts hypotheses (model/search.h).
struct DecodingSpec {
  // "gnmt" (mixserve's own): score = log_prob / ((5 + len) / 6)^alpha, a sentence ends once
  // beam_size hypotheses have finished. "huggingface": score = log_prob / len^alpha, and a
  // sentence ends once no live hypothesis can beat the worst of beam_size finished ones
  // (transformers' generate with early_stopping=False).
  std::string beam_rule = "gnmt";
  float length_penalty = 1.0f;       // alpha, where a request gives none
  std::vector<int> suppressed_tokens;  // never generated (MarianMT: the pad token)
  bool eos_at_max_len = false;       // the last token a hypothesis may take is EOS, forced
};

struct ModelSpec {
  std::string source_language;
  std::string target_language;
  int d_model = 128;
  int ffn_dim = 512;
  int heads = 8;
  float dropout = 0.1f;
  int max_len = 50;  // tokens including BOS/EOS
  int vocab_size = 8000;
  bool share_embeddings = true;
  std::vector<EncoderLayerSpec> encoder;
  std::vector<DecoderLayerSpec> decoder;
  std::string weights_file = "model.pt";
  std::string tokenizer_file = "spm.model";
  std::string target_tokenizer_file;  // empty: the joint tokenizer
  // A JSON object of piece -> id (MarianMT's vocab.json): ids are the vocabulary's, the
  // tokenizer files only cut text into pieces (source) and join pieces (target). Empty: the
  // tokenizer's own ids.
  std::string vocabulary_file;

  // Layout options for imported architectures; the defaults are mixserve's own layout.
  std::string norm = "pre";  // "pre": x + f(norm(x)), final norms; "post": norm(x + f(x)), none
  std::string activation = "relu";  // feed-forward: "relu", "swish", "gelu"
  // Sinusoid table: "interleaved" (sin, cos alternate) or "halves" (sin in the first half of
  // the dimensions, cos in the second: MarianMT).
  std::string positions = "interleaved";
  bool scale_embeddings = true;    // embeddings times sqrt(d_model)
  bool final_logits_bias = false;  // a bias over the vocabulary on the output logits
  SpecialIds ids;
  DecodingSpec decoding;

  // Special token ids, fixed for every mixserve tokenizer (text/tokenizer.h).
  static constexpr int kPad = 0;
  static constexpr int kUnk = 1;
  static constexpr int kBos = 2;
  static constexpr int kEos = 3;
};

// A model of `enc` x `dec` layers with the same mixers everywhere (a convenience for tests
// and tools).
ModelSpec UniformSpec(int d_model, int ffn_dim, int heads, int enc, int dec, int vocab,
                      const MixerSpec& enc_self = {}, const MixerSpec& dec_self = {},
                      const MixerSpec& dec_cross = {});

// Empty when valid, else a message naming the first problem.
std::string ValidateSpec(const ModelSpec& spec);

}  // namespace mixserve
