#include "config/model_spec_io.h"

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>

#include <fstream>
#include <map>
#include <sstream>

#include "mixserve/v1/config.pb.h"

namespace mixserve {
namespace {

namespace pb = ::mixserve::v1;

class ErrorCollector : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, int column, const std::string& message) override {
    if (first.empty())
      first = "line " + std::to_string(line + 1) + ":" + std::to_string(column + 1) + ": " +
              message;
  }
  std::string first;
};

MixerSpec FromProto(const pb::MixerConfig& m, const MixerSpec& fallback) {
  if (m.type().empty() && m.size().empty() && m.hidden() == 0 && m.window() == 0 &&
      m.heads() == 0)
    return fallback;
  MixerSpec s;
  s.type = m.type().empty() ? "mha" : m.type();
  s.size = m.size();
  s.hidden = m.hidden();
  s.window = m.window();
  s.heads = m.heads();
  return s;
}

void ToProto(const MixerSpec& s, pb::MixerConfig* m) {
  m->set_type(s.type);
  m->set_size(s.size);
  m->set_hidden(s.hidden);
  m->set_window(s.window);
  m->set_heads(s.heads);
}

template <typename T>
T MostCommon(const std::vector<T>& v) {
  std::vector<int> counts(v.size(), 0);
  size_t best = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    for (size_t j = 0; j < v.size(); ++j) counts[i] += v[i] == v[j];
    if (counts[i] > counts[best]) best = i;
  }
  return v.empty() ? T{} : v[best];
}

}  // namespace

bool ParseModelSpec(const std::string& text, ModelSpec* spec, std::string* error) {
  pb::ModelConfig c;
  google::protobuf::TextFormat::Parser parser;
  ErrorCollector errors;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(text, &c)) {
    *error = "model config: " + (errors.first.empty() ? "parse error" : errors.first);
    return false;
  }
  ModelSpec s;
  s.source_language = c.source_language();
  s.target_language = c.target_language();
  if (c.d_model()) s.d_model = c.d_model();
  if (c.ffn_dim()) s.ffn_dim = c.ffn_dim();
  if (c.heads()) s.heads = c.heads();
  s.dropout = c.dropout();
  if (c.max_len()) s.max_len = c.max_len();
  if (c.vocab_size()) s.vocab_size = c.vocab_size();
  s.share_embeddings = c.share_embeddings();
  if (c.encoder_layers() <= 0 || c.decoder_layers() <= 0) {
    *error = "model config: encoder_layers and decoder_layers must be > 0";
    return false;
  }
  const MixerSpec enc_self = FromProto(c.encoder_self(), MixerSpec{});
  const MixerSpec dec_self = FromProto(c.decoder_self(), MixerSpec{});
  const MixerSpec dec_cross = FromProto(c.decoder_cross(), MixerSpec{});
  s.encoder.assign(c.encoder_layers(), EncoderLayerSpec{enc_self});
  s.decoder.assign(c.decoder_layers(), DecoderLayerSpec{dec_self, dec_cross});
  for (const auto& o : c.overrides()) {
    const int n = o.site() == pb::SITE_ENCODER_SELF ? c.encoder_layers() : c.decoder_layers();
    if (o.layer() < 0 || o.layer() >= n) {
      *error = "model config: override layer " + std::to_string(o.layer()) + " out of range [0, " +
               std::to_string(n) + ")";
      return false;
    }
    switch (o.site()) {
      case pb::SITE_ENCODER_SELF: s.encoder[o.layer()].self = FromProto(o.mixer(), enc_self); break;
      case pb::SITE_DECODER_SELF: s.decoder[o.layer()].self = FromProto(o.mixer(), dec_self); break;
      case pb::SITE_DECODER_CROSS:
        s.decoder[o.layer()].cross = FromProto(o.mixer(), dec_cross);
        break;
      default:
        *error = "model config: override without a site";
        return false;
    }
  }
  if (!c.weights_file().empty()) s.weights_file = c.weights_file();
  if (!c.tokenizer_file().empty()) s.tokenizer_file = c.tokenizer_file();
  s.target_tokenizer_file = c.target_tokenizer_file();
  s.vocabulary_file = c.vocabulary_file();
  if (!c.norm().empty()) s.norm = c.norm();
  if (!c.activation().empty()) s.activation = c.activation();
  if (!c.positions().empty()) s.positions = c.positions();
  if (c.has_scale_embeddings()) s.scale_embeddings = c.scale_embeddings();
  s.final_logits_bias = c.final_logits_bias();
  const auto& ids = c.special_tokens();
  if (ids.has_pad()) s.ids.pad = ids.pad();
  if (ids.has_unk()) s.ids.unk = ids.unk();
  if (ids.has_decoder_start()) s.ids.decoder_start = ids.decoder_start();
  if (ids.has_eos()) s.ids.eos = ids.eos();
  const auto& dec = c.decoding();
  if (!dec.beam_rule().empty()) s.decoding.beam_rule = dec.beam_rule();
  if (dec.has_length_penalty()) s.decoding.length_penalty = dec.length_penalty();
  s.decoding.suppressed_tokens.assign(dec.suppressed_tokens().begin(),
                                      dec.suppressed_tokens().end());
  s.decoding.eos_at_max_len = dec.eos_at_max_len();
  const std::string invalid = ValidateSpec(s);
  if (!invalid.empty()) {
    *error = "model config: " + invalid;
    return false;
  }
  *spec = std::move(s);
  return true;
}

bool ReadModelSpec(const std::string& path, ModelSpec* spec, std::string* error) {
  std::ifstream in(path);
  if (!in) {
    *error = "cannot open model config " + path;
    return false;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  if (!ParseModelSpec(ss.str(), spec, error)) {
    *error = path + ": " + *error;
    return false;
  }
  return true;
}

std::string FormatModelSpec(const ModelSpec& s) {
  pb::ModelConfig c;
  c.set_source_language(s.source_language);
  c.set_target_language(s.target_language);
  c.set_d_model(s.d_model);
  c.set_ffn_dim(s.ffn_dim);
  c.set_heads(s.heads);
  c.set_dropout(s.dropout);
  c.set_max_len(s.max_len);
  c.set_vocab_size(s.vocab_size);
  c.set_share_embeddings(s.share_embeddings);
  c.set_encoder_layers(static_cast<int>(s.encoder.size()));
  c.set_decoder_layers(static_cast<int>(s.decoder.size()));
  std::vector<MixerSpec> es, ds, dc;
  for (const auto& l : s.encoder) es.push_back(l.self);
  for (const auto& l : s.decoder) {
    ds.push_back(l.self);
    dc.push_back(l.cross);
  }
  const MixerSpec des = MostCommon(es), dds = MostCommon(ds), ddc = MostCommon(dc);
  ToProto(des, c.mutable_encoder_self());
  ToProto(dds, c.mutable_decoder_self());
  ToProto(ddc, c.mutable_decoder_cross());
  auto add = [&](pb::Site site, int layer, const MixerSpec& m) {
    auto* o = c.add_overrides();
    o->set_site(site);
    o->set_layer(layer);
    ToProto(m, o->mutable_mixer());
  };
  for (size_t i = 0; i < es.size(); ++i)
    if (!(es[i] == des)) add(pb::SITE_ENCODER_SELF, static_cast<int>(i), es[i]);
  for (size_t i = 0; i < ds.size(); ++i)
    if (!(ds[i] == dds)) add(pb::SITE_DECODER_SELF, static_cast<int>(i), ds[i]);
  for (size_t i = 0; i < dc.size(); ++i)
    if (!(dc[i] == ddc)) add(pb::SITE_DECODER_CROSS, static_cast<int>(i), dc[i]);
  c.set_weights_file(s.weights_file);
  c.set_tokenizer_file(s.tokenizer_file);
  c.set_target_tokenizer_file(s.target_tokenizer_file);
  // Options at their defaults are left out, so that mixserve's own models read as before.
  const ModelSpec d;
  c.set_vocabulary_file(s.vocabulary_file);
  if (s.norm != d.norm) c.set_norm(s.norm);
  if (s.activation != d.activation) c.set_activation(s.activation);
  if (s.positions != d.positions) c.set_positions(s.positions);
  if (s.scale_embeddings != d.scale_embeddings) c.set_scale_embeddings(s.scale_embeddings);
  c.set_final_logits_bias(s.final_logits_bias);
  auto* ids = c.mutable_special_tokens();
  if (s.ids.pad != d.ids.pad) ids->set_pad(s.ids.pad);
  if (s.ids.unk != d.ids.unk) ids->set_unk(s.ids.unk);
  if (s.ids.decoder_start != d.ids.decoder_start) ids->set_decoder_start(s.ids.decoder_start);
  if (s.ids.eos != d.ids.eos) ids->set_eos(s.ids.eos);
  if (ids->ByteSizeLong() == 0) c.clear_special_tokens();
  auto* dec = c.mutable_decoding();
  if (s.decoding.beam_rule != d.decoding.beam_rule) dec->set_beam_rule(s.decoding.beam_rule);
  if (s.decoding.length_penalty != d.decoding.length_penalty)
    dec->set_length_penalty(s.decoding.length_penalty);
  for (int t : s.decoding.suppressed_tokens) dec->add_suppressed_tokens(t);
  dec->set_eos_at_max_len(s.decoding.eos_at_max_len);
  if (dec->ByteSizeLong() == 0) c.clear_decoding();
  std::string out;
  google::protobuf::TextFormat::PrintToString(c, &out);
  return out;
}

bool WriteModelSpec(const std::string& path, const ModelSpec& spec, std::string* error) {
  std::ofstream out(path);
  out << FormatModelSpec(spec);
  if (!out) {
    *error = "cannot write model config " + path;
    return false;
  }
  return true;
}

}  // namespace mixserve
