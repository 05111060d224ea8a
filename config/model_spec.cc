#include "config/model_spec.h"

#include <set>
#include <utility>

namespace mixserve {

const char* SiteName(Site site) {
  switch (site) {
    case Site::kEncoderSelf: return "encoder_self";
    case Site::kDecoderSelf: return "decoder_self";
    case Site::kDecoderCross: return "decoder_cross";
  }
  return "unknown";
}

ModelSpec UniformSpec(int d_model, int ffn_dim, int heads, int enc, int dec, int vocab,
                      const MixerSpec& enc_self, const MixerSpec& dec_self,
                      const MixerSpec& dec_cross) {
  ModelSpec s;
  s.d_model = d_model;
  s.ffn_dim = ffn_dim;
  s.heads = heads;
  s.vocab_size = vocab;
  s.encoder.assign(enc, EncoderLayerSpec{enc_self});
  s.decoder.assign(dec, DecoderLayerSpec{dec_self, dec_cross});
  return s;
}

namespace {
std::string CheckMixer(const MixerSpec& m, const std::string& where, const ModelSpec& s) {
  static const std::set<std::string> kSizes = {"", "xs", "s", "m", "l"};
  if (m.type.empty()) return where + ": mixer type is empty";
  if (!kSizes.count(m.size)) return where + ": unknown size '" + m.size + "' (xs, s, m, l)";
  if (m.hidden < 0) return where + ": hidden must be >= 0";
  if (m.window < 0) return where + ": window must be >= 0";
  const int heads = m.heads > 0 ? m.heads : s.heads;
  if (m.heads < 0 || s.d_model % heads != 0)
    return where + ": d_model " + std::to_string(s.d_model) + " is not divisible by heads " +
           std::to_string(heads);
  return "";
}
}  // namespace

std::string ValidateSpec(const ModelSpec& s) {
  if (s.d_model <= 0) return "d_model must be > 0";
  if (s.ffn_dim <= 0) return "ffn_dim must be > 0";
  if (s.heads <= 0) return "heads must be > 0";
  if (s.d_model % s.heads != 0) return "d_model must be divisible by heads";
  if (s.max_len < 3) return "max_len must be >= 3";
  if (s.vocab_size < 4) return "vocab_size must be >= 4";
  if (s.dropout < 0 || s.dropout >= 1) return "dropout must be in [0, 1)";
  if (s.encoder.empty()) return "encoder_layers must be > 0";
  if (s.decoder.empty()) return "decoder_layers must be > 0";
  if (s.norm != "pre" && s.norm != "post") return "norm must be \"pre\" or \"post\"";
  if (s.activation != "relu" && s.activation != "swish" && s.activation != "gelu")
    return "activation '" + s.activation + "' is not supported (relu, swish, gelu)";
  if (s.positions != "interleaved" && s.positions != "halves")
    return "positions must be \"interleaved\" or \"halves\"";
  for (const auto& [name, id] : {std::pair<const char*, int>{"pad", s.ids.pad},
                                 {"unk", s.ids.unk},
                                 {"decoder_start", s.ids.decoder_start},
                                 {"eos", s.ids.eos}})
    if (id < 0 || id >= s.vocab_size)
      return std::string("special token ") + name + " id " + std::to_string(id) +
             " is outside the vocabulary [0, " + std::to_string(s.vocab_size) + ")";
  if (s.ids.eos == s.ids.pad) return "eos and pad must be different tokens";
  if (s.decoding.beam_rule != "gnmt" && s.decoding.beam_rule != "huggingface")
    return "decoding.beam_rule must be \"gnmt\" or \"huggingface\"";
  if (!(s.decoding.length_penalty >= 0)) return "decoding.length_penalty must be >= 0";
  for (int t : s.decoding.suppressed_tokens) {
    if (t < 0 || t >= s.vocab_size)
      return "decoding.suppressed_tokens: " + std::to_string(t) + " is outside the vocabulary";
    if (t == s.ids.eos) return "decoding.suppressed_tokens: the EOS token cannot be suppressed";
  }
  for (size_t i = 0; i < s.encoder.size(); ++i) {
    auto e = CheckMixer(s.encoder[i].self, "encoder layer " + std::to_string(i) + " self", s);
    if (!e.empty()) return e;
  }
  for (size_t i = 0; i < s.decoder.size(); ++i) {
    auto e = CheckMixer(s.decoder[i].self, "decoder layer " + std::to_string(i) + " self", s);
    if (!e.empty()) return e;
    e = CheckMixer(s.decoder[i].cross, "decoder layer " + std::to_string(i) + " cross", s);
    if (!e.empty()) return e;
  }
  return "";
}

}  // namespace mixserve
