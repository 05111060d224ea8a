#include "model/marian_layout.h"

#include <map>
#include <set>
#include <sstream>
#include <stdexcept>

namespace mixserve::model {
namespace {

std::string Shape(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::vector<std::string> Split(const std::string& s) {
  std::vector<std::string> parts;
  std::stringstream in(s);
  std::string p;
  while (std::getline(in, p, '.')) parts.push_back(p);
  return parts;
}

// The state-dict name of a parameter inside a layer ("encoder.3.self.mixer.q.weight" ->
// "model.encoder.layers.3.self_attn.q_proj.weight"); empty for names of no layer.
std::string LayerSource(const std::string& name) {
  const auto p = Split(name);
  if (p.size() < 5 || (p[0] != "encoder" && p[0] != "decoder") || p[1].empty() ||
      p[1].find_first_not_of("0123456789") != std::string::npos)
    return "";
  const std::string layer = "model." + p[0] + ".layers." + p[1] + ".";
  const std::string& wb = p.back();
  if (wb != "weight" && wb != "bias") return "";
  const bool attention = p[2] == "self" || (p[2] == "cross" && p[0] == "decoder");
  const std::string attn = p[2] == "self" ? "self_attn" : "encoder_attn";
  if (attention && p.size() == 6 && p[3] == "mixer") {
    static const std::map<std::string, std::string> kProj = {
        {"q", "q_proj"}, {"k", "k_proj"}, {"v", "v_proj"}, {"o", "out_proj"}};
    auto it = kProj.find(p[4]);
    return it == kProj.end() ? "" : layer + attn + "." + it->second + "." + wb;
  }
  if (attention && p.size() == 5 && p[3] == "norm") return layer + attn + "_layer_norm." + wb;
  if (p[2] == "ffn" && p.size() == 5) {
    if (p[3] == "fc1" || p[3] == "fc2") return layer + p[3] + "." + wb;
    if (p[3] == "norm") return layer + "final_layer_norm." + wb;
  }
  return "";
}

}  // namespace

ModelSpec MarianSpec(const HfJsonObject& config, const HfJsonObject& generation,
                     const HfVocabularySummary& vocabulary, int max_len) {
  const std::string& file = config.source();
  auto refuse = [&](const std::string& what) {
    throw std::runtime_error(file + ": " + what);
  };
  const std::string model_type = config.String("model_type");
  if (model_type != "marian")
    refuse("model_type '" + model_type +
           "' is not supported: mixserve imports MarianMT models (model_type \"marian\")");
  for (const char* field : {"normalize_before", "add_final_layer_norm", "layernorm_embedding"})
    if (config.Bool(field, false))
      refuse(std::string(field) + " is true: mixserve imports Marian's layout (norms after "
                                  "each block, no other norms)");
  const int enc_heads = config.Int("encoder_attention_heads");
  const int dec_heads = config.Int("decoder_attention_heads");
  if (enc_heads != dec_heads)
    refuse("encoder_attention_heads " + std::to_string(enc_heads) +
           " and decoder_attention_heads " + std::to_string(dec_heads) +
           " differ: a mixserve model has one number of heads");
  const int enc_ffn = config.Int("encoder_ffn_dim");
  const int dec_ffn = config.Int("decoder_ffn_dim");
  if (enc_ffn != dec_ffn)
    refuse("encoder_ffn_dim " + std::to_string(enc_ffn) + " and decoder_ffn_dim " +
           std::to_string(dec_ffn) + " differ: a mixserve model has one feed-forward width");
  const std::string act = config.String("activation_function", "gelu");  // MarianConfig's
  std::string activation;
  if (act == "swish" || act == "silu")
    activation = "swish";
  else if (act == "gelu" || act == "relu")
    activation = act;
  else
    refuse("activation_function '" + act + "' is not supported (swish, silu, gelu, relu)");
  const int vocab_size = config.Int("vocab_size");
  if (config.Has("decoder_vocab_size") && config.Int("decoder_vocab_size") != vocab_size)
    refuse("decoder_vocab_size " + std::to_string(config.Int("decoder_vocab_size")) +
           " differs from vocab_size " + std::to_string(vocab_size) +
           ": a mixserve model has one vocabulary");
  if (vocabulary.entries != static_cast<size_t>(vocab_size))
    refuse("vocab_size is " + std::to_string(vocab_size) + " but vocab.json has " +
           std::to_string(vocabulary.entries) + " entries");
  auto unk = vocabulary.ids.find("<unk>");
  if (unk == vocabulary.ids.end() || unk->second < 0)
    throw std::runtime_error("vocab.json has no \"<unk>\" piece (the unknown token)");

  ModelSpec spec;
  spec.d_model = config.Int("d_model");
  spec.heads = enc_heads;
  spec.ffn_dim = enc_ffn;
  spec.vocab_size = vocab_size;
  spec.dropout = static_cast<float>(config.Number("dropout", 0.1));
  const int positions = config.Int("max_position_embeddings");
  spec.max_len = positions;
  if (max_len > positions)
    throw std::invalid_argument("--max_len " + std::to_string(max_len) + " exceeds " + file +
                                "'s max_position_embeddings " + std::to_string(positions));
  if (max_len > 0) spec.max_len = max_len;
  const int enc_layers = config.Int("encoder_layers"), dec_layers = config.Int("decoder_layers");
  if (enc_layers <= 0 || dec_layers <= 0) refuse("encoder_layers and decoder_layers must be > 0");
  spec.encoder.assign(enc_layers, EncoderLayerSpec{});
  spec.decoder.assign(dec_layers, DecoderLayerSpec{});
  spec.share_embeddings = config.Bool("share_encoder_decoder_embeddings", true);
  spec.norm = "post";
  spec.activation = activation;
  spec.positions = "halves";
  spec.scale_embeddings = config.Bool("scale_embedding", false);  // MarianConfig's default
  spec.final_logits_bias = true;
  spec.ids.pad = config.Int("pad_token_id");
  spec.ids.eos = config.Int("eos_token_id");
  spec.ids.decoder_start = config.Int("decoder_start_token_id", spec.ids.pad);
  spec.ids.unk = unk->second;
  spec.decoding.beam_rule = "huggingface";
  spec.decoding.length_penalty = static_cast<float>(generation.Number("length_penalty", 1.0));
  for (const auto& words : generation.IntLists("bad_words_ids")) {
    if (words.size() != 1) {
      std::string w;
      for (int t : words) w += (w.empty() ? "" : ", ") + std::to_string(t);
      throw std::runtime_error(generation.source() + ": bad_words_ids entry [" + w +
                               "] is not a single token: mixserve suppresses single tokens");
    }
    spec.decoding.suppressed_tokens.push_back(words[0]);
  }
  spec.decoding.eos_at_max_len = generation.Has("forced_eos_token_id") &&
                                 generation.Int("forced_eos_token_id") == spec.ids.eos;
  spec.vocabulary_file = "vocab.json";
  spec.tokenizer_file = "source.spm";
  spec.target_tokenizer_file = "target.spm";
  const std::string err = ValidateSpec(spec);
  if (!err.empty()) refuse("the model is not a valid mixserve model: " + err);
  return spec;
}

MarianMapping MapMarianTensors(const ModelSpec& spec, const std::vector<NamedShape>& hf,
                               const std::vector<NamedShape>& mixserve,
                               const std::string& file) {
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& t : hf) shapes[t.name] = t.shape;
  auto has = [&](const std::string& n) { return shapes.count(n) > 0; };
  auto first_of = [&](std::initializer_list<const char*> names) -> std::string {
    for (const char* n : names)
      if (has(n)) return n;
    return "";
  };
  MarianMapping m;
  std::set<std::string> used;
  auto duplicate = [&](const std::string& copy, const std::string& original) {
    if (copy == original || !has(copy)) return;
    if (shapes[copy] != shapes[original])
      throw std::runtime_error(file + ": tensor '" + copy + "' has shape " +
                               Shape(shapes[copy]) + " but '" + original + "', of which it " +
                               "must be a copy, has " + Shape(shapes[original]));
    m.duplicates.emplace_back(copy, original);
    used.insert(copy);
  };
  for (const auto& t : mixserve) {
    TensorSource s{t.name, "", Fill::kCopy};
    std::string wanted;  // what the source would be called, for the message
    if (t.name == "embed.weight") {
      wanted = "model.shared.weight";
      s.source = first_of({"model.shared.weight", "model.encoder.embed_tokens.weight",
                           "model.decoder.embed_tokens.weight"});
      for (const char* c : {"model.shared.weight", "model.encoder.embed_tokens.weight",
                            "model.decoder.embed_tokens.weight", "lm_head.weight"})
        if (!s.source.empty()) duplicate(c, s.source);
    } else if (t.name == "src_embed.weight") {
      s.source = wanted = "model.encoder.embed_tokens.weight";
    } else if (t.name == "tgt_embed.weight") {
      s.source = wanted = "model.decoder.embed_tokens.weight";
    } else if (t.name == "out_proj.weight") {
      wanted = "lm_head.weight";
      s.source = first_of({"lm_head.weight", "model.decoder.embed_tokens.weight"});
    } else if (t.name == "final_logits_bias") {
      s.source = wanted = "final_logits_bias";
      s.fill = Fill::kRow;
      if (!has(s.source)) {  // a buffer transformers starts at zero where a file lacks it
        s.source.clear();
        s.fill = Fill::kZeros;
      }
    } else if (t.name == "positions") {
      s.source = first_of(
          {"model.encoder.embed_positions.weight", "model.decoder.embed_positions.weight"});
      if (s.source.empty()) {
        s.fill = Fill::kSinusoids;
      } else {
        duplicate("model.decoder.embed_positions.weight", s.source);
        if (shapes[s.source].size() == 2 && t.shape.size() == 2 &&
            shapes[s.source][0] > t.shape[0] && shapes[s.source][1] == t.shape[1])
          s.fill = Fill::kFirstRows;
      }
    } else {
      wanted = LayerSource(t.name);
      if (wanted.empty()) {
        std::string why;
        if (t.name.rfind("encoder_norm.", 0) == 0 || t.name.rfind("decoder_norm.", 0) == 0)
          why = " (a final norm, of norm \"" + spec.norm +
                "\"; MarianMT's layout, norm \"post\", has none)";
        throw std::runtime_error("mixserve tensor '" + t.name + "' of shape " +
                                 Shape(t.shape) + " has no counterpart in a MarianMT model" +
                                 why);
      }
      s.source = wanted;
    }
    if (s.fill != Fill::kZeros && s.fill != Fill::kSinusoids) {
      if (s.source.empty() || !has(s.source))
        throw std::runtime_error(file + " lacks tensor '" + (s.source.empty() ? wanted : s.source) +
                                 "' (mixserve's '" + t.name + "', shape " + Shape(t.shape) + ")");
      const auto& from = shapes[s.source];
      std::vector<int64_t> got = from;
      if (s.fill == Fill::kRow) {
        if (from.size() != 2 || from[0] != 1) got = {-1};
        else got = {from[1]};
      } else if (s.fill == Fill::kFirstRows) {
        got[0] = t.shape[0];
      }
      if (got != t.shape)
        throw std::runtime_error(file + ": tensor '" + s.source + "' has shape " + Shape(from) +
                                 " but mixserve's '" + t.name + "' needs " + Shape(t.shape) +
                                 (s.fill == Fill::kRow ? " (as [1, " +
                                                             std::to_string(t.shape.at(0)) + "])"
                                                       : ""));
      used.insert(s.source);
    }
    m.tensors.push_back(s);
  }
  for (const auto& t : hf)
    if (!used.count(t.name))
      throw std::runtime_error(file + ": tensor '" + t.name + "' (shape " + Shape(t.shape) +
                               ") has no place in the mixserve model of this config.json");
  return m;
}

}  // namespace mixserve::model
