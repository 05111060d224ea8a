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
