// mixserve-offline import: .safetensors and torch.save files, the MarianMT config and tensor
// mapping, and whole imports of a small Hugging Face directory written here (random weights
// in model.safetensors, SentencePiece models trained on a few lines), with every refusal
// naming its file and field or tensor.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "base/remove_tree.h"
#include "config/hf_json.h"
#include "config/model_metadata.h"
#include "config/safetensors_header.h"
#include "model/checkpoint.h"
#include "model/marian_import.h"
#include "model/marian_layout.h"
#include "model/safetensors.h"
#include "model/torch_state_dict.h"
#include "offline/commands.h"
#include "tests/support/temp_dir.h"
#include "text/tokenizer.h"

namespace mixserve {
namespace {

namespace fs = std::filesystem;
using model::NamedTensors;
using testing::MakeTempDir;

void Write(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

// The message of what `f` throws ("" when it does not).
template <typename F>
std::string ErrorOf(F f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

#define EXPECT_CONTAINS(text, part) \
  EXPECT_NE(std::string(text).find(part), std::string::npos) << "in: " << (text)

// ---- .safetensors ----

TEST(SafetensorsTest, RoundTripKeepsNamesDtypesShapesAndValues) {
  const std::string dir = MakeTempDir("st");
  const NamedTensors in = {{"b.weight", torch::randn({3, 4})},
                           {"a", torch::randn({5}).to(torch::kHalf)},
                           {"c.bf16", torch::randn({2, 2, 2}).to(torch::kBFloat16)},
                           {"scalar", torch::tensor(3.5)}};
  model::WriteSafetensors(dir + "/m.safetensors", in, {{"format", "pt"}});
  const NamedTensors out = model::ReadSafetensors(dir + "/m.safetensors");
  ASSERT_EQ(out.size(), in.size());
  for (size_t i = 0; i < in.size(); ++i) {  // file order is the order written
    EXPECT_EQ(out[i].first, in[i].first);
    EXPECT_EQ(out[i].second.scalar_type(), in[i].second.scalar_type());
    EXPECT_TRUE(torch::equal(out[i].second, in[i].second)) << in[i].first;
  }
  // The header is JSON padded to 8 bytes; the metadata is there.
  std::ifstream f(dir + "/m.safetensors", std::ios::binary);
  unsigned char len[8];
  f.read(reinterpret_cast<char*>(len), 8);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | len[i];
  EXPECT_EQ(n % 8, 0u);
  std::string json(n, ' ');
  f.read(json.data(), static_cast<std::streamsize>(n));
  // Offsets and sizes as JSON integers, which other readers (serde's u64) require.
  EXPECT_CONTAINS(json, "\"data_offsets\":[0,48]");
  EXPECT_CONTAINS(json, "\"shape\":[3,4]");
  const SafetensorsHeader h = ParseSafetensorsHeader(json, "m");
  EXPECT_EQ(h.metadata.at("format"), "pt");
  ASSERT_EQ(h.tensors.size(), 4u);
  EXPECT_EQ(h.tensors[0].name, "b.weight");
  EXPECT_EQ(h.tensors[0].dtype, "F32");
  EXPECT_EQ(h.tensors[0].begin, 0u);
  EXPECT_EQ(h.tensors[0].end, 48u);
  mixserve::RemoveTree(dir);
}

// A file of `header` followed by `data_bytes` zero bytes.
void WriteRaw(const std::string& path, const std::string& header_json, size_t data_bytes) {
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((header_json.size() >> (8 * i)) & 0xff);
  Write(path, bytes + header_json + std::string(data_bytes, '\0'));
}

TEST(SafetensorsTest, TruncatedFilesAreRefusedNamingFileAndTensor) {
  const std::string dir = MakeTempDir("st");
  const std::string path = dir + "/m.safetensors";
  Write(path, "abc");
  EXPECT_CONTAINS(ErrorOf([&] { model::ReadSafetensors(path); }), path + ": truncated");
  WriteRaw(path, "{}", 0);
  {  // the header length beyond the file
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.put(static_cast<char>(200));
  }
  auto e = ErrorOf([&] { model::ReadSafetensors(path); });
  EXPECT_CONTAINS(e, path + ": truncated: the header length says 200 bytes");
  // Data offsets beyond the file: a written file cut short.
  model::WriteSafetensors(path, {{"x", torch::ones({4})}, {"y", torch::ones({8})}});
  fs::resize_file(path, fs::file_size(path) - 4);
  e = ErrorOf([&] { model::ReadSafetensors(path); });
  EXPECT_CONTAINS(e, path + ": tensor 'y': truncated: data_offsets [16, 48]");
  mixserve::RemoveTree(dir);
}

TEST(SafetensorsTest, BadEntriesAreRefusedNamingTheTensor) {
  const std::string dir = MakeTempDir("st");
  const std::string path = dir + "/m.safetensors";
  WriteRaw(path, R"({"w": {"dtype": "F8_E4M3", "shape": [2], "data_offsets": [0, 2]}})", 2);
  EXPECT_CONTAINS(ErrorOf([&] { model::ReadSafetensors(path); }),
                  path + ": tensor 'w': unknown dtype 'F8_E4M3'");
  WriteRaw(path, R"({"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 16]}})", 16);
  EXPECT_CONTAINS(ErrorOf([&] { model::ReadSafetensors(path); }),
                  path + ": tensor 'w': shape [2, 3] of F32 is 24 bytes, but its data_offsets "
                         "[0, 16] hold 16");
  WriteRaw(path, R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [8]}})", 8);
  EXPECT_CONTAINS(ErrorOf([&] { model::ReadSafetensors(path); }),
                  path + ": tensor 'w': 'data_offsets' must be two non-negative integers");
  WriteRaw(path, R"({"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}})", 8);
  EXPECT_CONTAINS(ErrorOf([&] { model::ReadSafetensors(path); }), "tensor 'w': 'shape'");
  WriteRaw(path, R"([1, 2])", 0);
  EXPECT_CONTAINS(ErrorOf([&] { model::ReadSafetensors(path); }),
                  path + ": the safetensors header is not a JSON object");
  mixserve::RemoveTree(dir);
}

// ---- pytorch_model.bin ----

TEST(TorchStateDictTest, ReadsZipDictsAndRefusesOtherFilesNamingThem) {
  const std::string dir = MakeTempDir("bin");
  c10::Dict<std::string, torch::Tensor> d;
  d.insert("w", torch::randn({2, 3}));
  d.insert("b", torch::randn({3}).to(torch::kHalf));
  const auto bytes = torch::pickle_save(d);
  const std::string path = dir + "/pytorch_model.bin";
  Write(path, std::string(bytes.begin(), bytes.end()));
  const NamedTensors got = model::ReadTorchStateDict(path);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].first, "b");
  EXPECT_TRUE(torch::equal(got[0].second, d.at("b")));
  EXPECT_TRUE(torch::equal(got[1].second, d.at("w")));
  // Not a zip archive (torch.save before PyTorch 1.6): refused with the way out.
  Write(path, std::string("\x80\x02\x8a\x0alegacy", 10));
  auto e = ErrorOf([&] { model::ReadTorchStateDict(path); });
  EXPECT_CONTAINS(e, path + " is not a zip archive of torch.save");
  EXPECT_CONTAINS(e, "model.safetensors");
  Write(path, "PK not really a zip");
  EXPECT_CONTAINS(ErrorOf([&] { model::ReadTorchStateDict(path); }), path + ": LibTorch");
  mixserve::RemoveTree(dir);
}

// ---- a small MarianMT directory ----

constexpr int kV = 12, kD = 16, kF = 32, kLayers = 2, kPositions = 20, kPad = 11;

// config.json's fields as JSON text, so that a test can replace one.
std::map<std::string, std::string> ConfigFields() {
  return {{"model_type", "\"marian\""}, {"architectures", "[\"MarianMTModel\"]"},
          {"vocab_size", "12"}, {"decoder_vocab_size", "12"}, {"d_model", "16"},
          {"encoder_layers", "2"}, {"decoder_layers", "2"},
          {"encoder_attention_heads", "2"}, {"decoder_attention_heads", "2"},
          {"encoder_ffn_dim", "32"}, {"decoder_ffn_dim", "32"},
          {"activation_function", "\"swish\""}, {"max_position_embeddings", "20"},
          {"scale_embedding", "true"}, {"share_encoder_decoder_embeddings", "true"},
          {"pad_token_id", "11"}, {"eos_token_id", "0"}, {"decoder_start_token_id", "11"},
          {"forced_eos_token_id", "0"}, {"dropout", "0.1"}, {"normalize_before", "false"},
          {"bad_words_ids", "[[11]]"}, {"num_beams", "4"}, {"max_length", "20"}};
}

std::string JsonObject(const std::map<std::string, std::string>& fields) {
  std::string s = "{\n";
  for (const auto& [k, v] : fields) s += (s.size() > 2 ? ",\n" : "") + ("  \"" + k + "\": " + v);
  return s + "\n}\n";
}

// A state dict as transformers' MarianMTModel saves it (tied copies included).
NamedTensors HfTensors() {
  torch::manual_seed(3);
  NamedTensors t;
  auto add = [&](const std::string& n, std::vector<int64_t> shape) {
    t.emplace_back(n, torch::randn(shape));
  };
  const auto shared = torch::randn({kV, kD});
  for (const char* n : {"model.shared.weight", "model.encoder.embed_tokens.weight",
                        "model.decoder.embed_tokens.weight", "lm_head.weight"})
    t.emplace_back(n, shared.clone());
  const auto positions = model::MarianSinusoids(kPositions, kD);
  t.emplace_back("model.encoder.embed_positions.weight", positions.clone());
  t.emplace_back("model.decoder.embed_positions.weight", positions.clone());
  add("final_logits_bias", {1, kV});
  for (const std::string side : {"encoder", "decoder"}) {
    for (int i = 0; i < kLayers; ++i) {
      const std::string l = "model." + side + ".layers." + std::to_string(i) + ".";
      std::vector<std::string> attns = {"self_attn"};
      if (side == "decoder") attns.push_back("encoder_attn");
      for (const auto& a : attns) {
        for (const char* p : {"q_proj", "k_proj", "v_proj", "out_proj"}) {
          add(l + a + "." + p + ".weight", {kD, kD});
          add(l + a + "." + p + ".bias", {kD});
        }
        add(l + a + "_layer_norm.weight", {kD});
        add(l + a + "_layer_norm.bias", {kD});
      }
      add(l + "fc1.weight", {kF, kD});
      add(l + "fc1.bias", {kF});
      add(l + "fc2.weight", {kD, kF});
      add(l + "fc2.bias", {kD});
      add(l + "final_layer_norm.weight", {kD});
      add(l + "final_layer_norm.bias", {kD});
    }
  }
  return t;
}

// mixserve name -> state-dict name, spelled out independently of model/marian_layout.cc.
std::map<std::string, std::string> ExpectedNames() {
  std::map<std::string, std::string> m = {{"embed.weight", "model.shared.weight"},
                                          {"positions", "model.encoder.embed_positions.weight"}};
  const std::map<std::string, std::string> proj = {
      {"q", "q_proj"}, {"k", "k_proj"}, {"v", "v_proj"}, {"o", "out_proj"}};
  for (const std::string side : {"encoder", "decoder"}) {
    for (int i = 0; i < kLayers; ++i) {
      const std::string ms = side + "." + std::to_string(i) + ".";
      const std::string hf = "model." + side + ".layers." + std::to_string(i) + ".";
      std::vector<std::pair<std::string, std::string>> blocks = {{"self", "self_attn"}};
      if (side == "decoder") blocks.push_back({"cross", "encoder_attn"});
      for (const std::string wb : {"weight", "bias"}) {
        for (const auto& [b, a] : blocks) {
          for (const auto& [q, p] : proj)
            m[ms + b + ".mixer." + q + "." + wb] = hf + a + "." + p + "." + wb;
          m[ms + b + ".norm." + wb] = hf + a + "_layer_norm." + wb;
        }
        m[ms + "ffn.fc1." + wb] = hf + "fc1." + wb;
        m[ms + "ffn.fc2." + wb] = hf + "fc2." + wb;
        m[ms + "ffn.norm." + wb] = hf + "final_layer_norm." + wb;
      }
    }
  }
  return m;
}

// The parameters and buffers of the Transformer of `spec`.
std::vector<model::NamedShape> TransformerNames(const ModelSpec& spec) {
  model::Transformer m(spec);
  std::vector<model::NamedShape> out;
  for (const auto& p : m->named_parameters(true)) out.push_back({p.key(), p.value().sizes().vec()});
  for (const auto& b : m->named_buffers(true)) out.push_back({b.key(), b.value().sizes().vec()});
  return out;
}

class MarianDirTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    spm_dir_ = new std::string(MakeTempDir("spm"));
    const std::string corpus = *spm_dir_ + "/text.txt";
    Write(corpus, "a small house\nthe small cat\na cat sat\nthe house is small\n"
                  "ein kleines Haus\ndie kleine Katze\n");
    Tokenizer::TrainOptions o;
    o.vocab_size = 24;
    o.hard_vocab_limit = false;
    Tokenizer::Train({corpus}, *spm_dir_ + "/m", o);
  }
  static void TearDownTestSuite() {
    mixserve::RemoveTree(*spm_dir_);
    delete spm_dir_;
  }

  void SetUp() override {
    root_ = MakeTempDir("import");
    dir_ = root_ + "/opus-mt-xx-yy";
    fs::create_directories(dir_);
    WriteConfig(ConfigFields());
    Write(dir_ + "/generation_config.json",
          R"({"bad_words_ids": [[11]], "decoder_start_token_id": 11, "eos_token_id": 0,
              "forced_eos_token_id": 0, "max_length": 20, "num_beams": 4,
              "pad_token_id": 11, "length_penalty": 0.8,
              "transformers_version": "4.27.0.dev0"})");
    Write(dir_ + "/tokenizer_config.json",
          R"({"source_lang": "xx", "target_lang": "yy", "separate_vocabs": false,
              "model_max_length": 512, "unk_token": "<unk>"})");
    std::string vocab = "{\"</s>\": 0, \"<unk>\": 1";
    for (int i = 2; i < kPad; ++i) vocab += ", \"\xe2\x96\x81p" + std::to_string(i) + "\": " + std::to_string(i);
    Write(dir_ + "/vocab.json", vocab + ", \"<pad>\": 11}");
    fs::copy_file(*spm_dir_ + "/m.model", dir_ + "/source.spm");
    fs::copy_file(*spm_dir_ + "/m.model", dir_ + "/target.spm");
    tensors_ = HfTensors();
    WriteWeights(tensors_);
  }
  void TearDown() override { mixserve::RemoveTree(root_); }

  void WriteConfig(const std::map<std::string, std::string>& fields) {
    Write(dir_ + "/config.json", JsonObject(fields));
  }
  void WriteConfigWith(const std::string& field, const std::string& value) {
    auto f = ConfigFields();
    f[field] = value;
    WriteConfig(f);
  }
  void WriteWeights(const NamedTensors& t) {
    model::WriteSafetensors(dir_ + "/model.safetensors", t, {{"format", "pt"}});
  }
  std::string ImportError() {
    return ErrorOf([&] { model::ImportMarian(dir_); });
  }
  torch::Tensor Hf(const std::string& name) const {
    for (const auto& [n, t] : tensors_)
      if (n == name) return t;
    throw std::runtime_error("no " + name);
  }
  static std::string* spm_dir_;
  std::string root_, dir_;
  NamedTensors tensors_;
};
std::string* MarianDirTest::spm_dir_ = nullptr;

TEST_F(MarianDirTest, SpecFromConfigAndGenerationConfig) {
  const auto config = ReadHfJsonObject(dir_ + "/config.json");
  const auto gen = ReadHfJsonObject(dir_ + "/generation_config.json");
  const auto vocab = ReadHfVocabularySummary(dir_ + "/vocab.json", {"<unk>"});
  EXPECT_EQ(vocab.entries, 12u);
  const ModelSpec s = model::MarianSpec(config, gen, vocab);
  EXPECT_EQ(s.d_model, kD);
  EXPECT_EQ(s.heads, 2);
  EXPECT_EQ(s.ffn_dim, kF);
  EXPECT_EQ(s.encoder.size(), 2u);
  EXPECT_EQ(s.decoder.size(), 2u);
  EXPECT_EQ(s.decoder[1].cross.type, "mha");
  EXPECT_EQ(s.vocab_size, kV);
  EXPECT_EQ(s.max_len, kPositions);
  EXPECT_TRUE(s.share_embeddings);
  EXPECT_EQ(s.norm, "post");
  EXPECT_EQ(s.activation, "swish");
  EXPECT_EQ(s.positions, "halves");
  EXPECT_TRUE(s.scale_embeddings);
  EXPECT_TRUE(s.final_logits_bias);
  EXPECT_EQ(s.ids.pad, kPad);
  EXPECT_EQ(s.ids.unk, 1);
  EXPECT_EQ(s.ids.eos, 0);
  EXPECT_EQ(s.ids.decoder_start, kPad);
  EXPECT_EQ(s.decoding.beam_rule, "huggingface");
  EXPECT_FLOAT_EQ(s.decoding.length_penalty, 0.8f);
  EXPECT_EQ(s.decoding.suppressed_tokens, std::vector<int>{kPad});
  EXPECT_TRUE(s.decoding.eos_at_max_len);
  EXPECT_EQ(s.vocabulary_file, "vocab.json");
  EXPECT_EQ(s.tokenizer_file, "source.spm");
  EXPECT_EQ(s.target_tokenizer_file, "target.spm");
  // --max_len lowers max_len; raising it is an error naming the field.
  EXPECT_EQ(model::MarianSpec(config, gen, vocab, 12).max_len, 12);
  EXPECT_CONTAINS(ErrorOf([&] { model::MarianSpec(config, gen, vocab, 30); }),
                  "max_position_embeddings 20");
  // Without generation_config.json the generation fields come from config.json.
  const ModelSpec c = model::MarianSpec(config, config, vocab);
  EXPECT_FLOAT_EQ(c.decoding.length_penalty, 1.0f);
  EXPECT_EQ(c.decoding.suppressed_tokens, std::vector<int>{kPad});
  EXPECT_TRUE(c.decoding.eos_at_max_len);
}

TEST_F(MarianDirTest, MapsEveryTensorOfTheStateDict) {
  const auto vocab = ReadHfVocabularySummary(dir_ + "/vocab.json", {"<unk>"});
  const auto config = ReadHfJsonObject(dir_ + "/config.json");
  ModelSpec spec = model::MarianSpec(config, config, vocab);
  const std::vector<model::NamedShape> ms = TransformerNames(spec);
  // norm "pre" adds final norms, which a MarianMT model lacks (refused below).
  ModelSpec pre = spec;
  pre.norm = "pre";
  const std::vector<model::NamedShape> ms_pre = TransformerNames(pre);
  std::vector<model::NamedShape> hf;
  for (const auto& [n, t] : tensors_) hf.push_back({n, t.sizes().vec()});

  const model::MarianMapping map = model::MapMarianTensors(spec, hf, ms, "w");
  const auto expected = ExpectedNames();
  ASSERT_EQ(map.tensors.size(), ms.size());
  std::set<std::string> seen;
  for (const auto& s : map.tensors) {
    seen.insert(s.target);
    if (s.target == "final_logits_bias") {
      EXPECT_EQ(s.source, "final_logits_bias");
      EXPECT_EQ(s.fill, model::Fill::kRow);
      continue;
    }
    ASSERT_TRUE(expected.count(s.target)) << s.target;
    EXPECT_EQ(s.source, expected.at(s.target)) << s.target;
    EXPECT_EQ(s.fill, model::Fill::kCopy) << s.target;
  }
  EXPECT_EQ(seen.size(), expected.size() + 1);  // every layer tensor, embeddings, positions
  std::set<std::pair<std::string, std::string>> dups(map.duplicates.begin(),
                                                     map.duplicates.end());
  EXPECT_EQ(dups, (std::set<std::pair<std::string, std::string>>{
                      {"model.encoder.embed_tokens.weight", "model.shared.weight"},
                      {"model.decoder.embed_tokens.weight", "model.shared.weight"},
                      {"lm_head.weight", "model.shared.weight"},
                      {"model.decoder.embed_positions.weight",
                       "model.encoder.embed_positions.weight"}}));

  // A shorter max_len takes the first rows of the position table; no table: computed; no
  // final_logits_bias: zeros.
  std::vector<model::NamedShape> hf_less;
  for (const auto& t : hf)
    if (t.name.find("embed_positions") == std::string::npos && t.name != "final_logits_bias")
      hf_less.push_back(t);
  auto short_ms = ms;
  for (auto& t : short_ms)
    if (t.name == "positions") t.shape[0] = 8;
  for (const auto& s : model::MapMarianTensors(spec, hf, short_ms, "w").tensors)
    if (s.target == "positions") {
      EXPECT_EQ(s.fill, model::Fill::kFirstRows);
    }
  for (const auto& s : model::MapMarianTensors(spec, hf_less, ms, "w").tensors) {
    if (s.target == "positions") {
      EXPECT_EQ(s.fill, model::Fill::kSinusoids);
    }
    if (s.target == "final_logits_bias") {
      EXPECT_EQ(s.fill, model::Fill::kZeros);
    }
  }

  // Refusals name the tensor.
  EXPECT_CONTAINS(ErrorOf([&] { model::MapMarianTensors(spec, hf, ms_pre, "w"); }),
                  "mixserve tensor 'encoder_norm.weight'");
  auto hf_missing = hf;
  hf_missing.erase(std::find_if(hf_missing.begin(), hf_missing.end(), [](const auto& t) {
    return t.name == "model.decoder.layers.1.encoder_attn.v_proj.bias";
  }));
  EXPECT_CONTAINS(ErrorOf([&] { model::MapMarianTensors(spec, hf_missing, ms, "w"); }),
                  "w lacks tensor 'model.decoder.layers.1.encoder_attn.v_proj.bias' "
                  "(mixserve's 'decoder.1.cross.mixer.v.bias', shape [16])");
  auto hf_extra = hf;
  hf_extra.push_back({"model.encoder.layernorm_embedding.weight", {kD}});
  EXPECT_CONTAINS(ErrorOf([&] { model::MapMarianTensors(spec, hf_extra, ms, "w"); }),
                  "w: tensor 'model.encoder.layernorm_embedding.weight' (shape [16]) has no "
                  "place");
}

TEST_F(MarianDirTest, UnsharedEmbeddingsMapToTheirOwnTables) {
  auto f = ConfigFields();
  f["share_encoder_decoder_embeddings"] = "false";
  WriteConfig(f);
  const auto vocab = ReadHfVocabularySummary(dir_ + "/vocab.json", {"<unk>"});
  const auto config = ReadHfJsonObject(dir_ + "/config.json");
  ModelSpec spec = model::MarianSpec(config, config, vocab);
  ASSERT_FALSE(spec.share_embeddings);
  const std::vector<model::NamedShape> ms = TransformerNames(spec);
  // transformers' unshared model has no model.shared; lm_head separate, or tied to the
  // decoder's embeddings and then absent from the file.
  std::vector<model::NamedShape> hf;
  for (const auto& [n, t] : tensors_)
    if (n != "model.shared.weight") hf.push_back({n, t.sizes().vec()});
  auto source_of = [](const model::MarianMapping& map, const std::string& target) {
    for (const auto& s : map.tensors)
      if (s.target == target) return s.source;
    return std::string("(none)");
  };
  auto map = model::MapMarianTensors(spec, hf, ms, "w");
  EXPECT_EQ(source_of(map, "src_embed.weight"), "model.encoder.embed_tokens.weight");
  EXPECT_EQ(source_of(map, "tgt_embed.weight"), "model.decoder.embed_tokens.weight");
  EXPECT_EQ(source_of(map, "out_proj.weight"), "lm_head.weight");
  hf.erase(std::find_if(hf.begin(), hf.end(),
                        [](const auto& t) { return t.name == "lm_head.weight"; }));
  map = model::MapMarianTensors(spec, hf, ms, "w");
  EXPECT_EQ(source_of(map, "out_proj.weight"), "model.decoder.embed_tokens.weight");
}

TEST_F(MarianDirTest, ImportWritesAVersionWithTheSourceTensors) {
  const std::string repo = root_ + "/repo";
  ::testing::internal::CaptureStdout();
  const int code = offline::Main(
      "import", {"--hf_dir", dir_, "--repository", repo, "--name", "opus-mt-xx-yy"});
  const std::string out = ::testing::internal::GetCapturedStdout();
  ASSERT_EQ(code, 0) << out;
  EXPECT_CONTAINS(out, "imported " + dir_ + " -> " + repo + "/opus-mt-xx-yy/1");
  const std::string v1 = repo + "/opus-mt-xx-yy/1";
  for (const char* f : {"model.pbtxt", "model.pt", "metadata.json", "source.spm", "target.spm",
                        "vocab.json"})
    EXPECT_TRUE(fs::exists(v1 + "/" + f)) << f;
  const FlatRecord meta = ReadModelMetadata(v1 + "/metadata.json");
  EXPECT_EQ(meta.strings.at("imported_from"), fs::absolute(dir_).lexically_normal().string());
  EXPECT_EQ(meta.strings.at("created_by"), "mixserve-offline import");
  EXPECT_EQ(meta.strings.at("source_language"), "xx");

  model::Transformer m = model::LoadCheckpoint(v1);
  EXPECT_EQ(m->spec().activation, "swish");
  std::map<std::string, torch::Tensor> saved;
  for (const auto& p : m->named_parameters(true)) saved.emplace(p.key(), p.value());
  for (const auto& b : m->named_buffers(true)) saved.emplace(b.key(), b.value());
  for (const auto& [ms, hf] : ExpectedNames())
    EXPECT_TRUE(torch::equal(saved.at(ms), Hf(hf))) << ms << " <- " << hf;
  EXPECT_TRUE(torch::equal(saved.at("final_logits_bias"), Hf("final_logits_bias")[0]));
  EXPECT_EQ(saved.size(), ExpectedNames().size() + 1);

  // The next import is version 2, with a shorter max_len.
  ::testing::internal::CaptureStdout();
  ASSERT_EQ(offline::Main("import", {"--hf_dir", dir_, "--repository", repo, "--name",
                                     "opus-mt-xx-yy", "--max_len", "8"}),
            0);
  ::testing::internal::GetCapturedStdout();
  model::Transformer m2 = model::LoadCheckpoint(repo + "/opus-mt-xx-yy/2");
  EXPECT_EQ(m2->spec().max_len, 8);
}

TEST_F(MarianDirTest, WithoutPositionTableOrBiasTheyAreComputed) {
  NamedTensors less;
  for (const auto& [n, t] : tensors_)
    if (n.find("embed_positions") == std::string::npos && n != "final_logits_bias" &&
        n != "lm_head.weight" && n.find("embed_tokens") == std::string::npos)
      less.emplace_back(n, t);
  WriteWeights(less);
  const model::MarianImport imp = model::ImportMarian(dir_);
  std::map<std::string, torch::Tensor> got;
  for (const auto& b : imp.model->named_buffers(true)) got.emplace(b.key(), b.value());
  EXPECT_TRUE(torch::equal(got.at("positions"), Hf("model.encoder.embed_positions.weight")));
  EXPECT_TRUE(torch::equal(got.at("final_logits_bias"), torch::zeros({kV})));
}

TEST_F(MarianDirTest, ConfigRefusalsNameTheFileAndField) {
  const std::string config = dir_ + "/config.json";
  WriteConfigWith("model_type", "\"bart\"");
  EXPECT_CONTAINS(ImportError(), config + ": model_type 'bart' is not supported");
  WriteConfigWith("activation_function", "\"gelu_new\"");
  EXPECT_CONTAINS(ImportError(), config + ": activation_function 'gelu_new' is not supported");
  WriteConfigWith("decoder_attention_heads", "4");
  EXPECT_CONTAINS(ImportError(), config + ": encoder_attention_heads 2 and "
                                          "decoder_attention_heads 4 differ");
  WriteConfigWith("decoder_ffn_dim", "64");
  EXPECT_CONTAINS(ImportError(), config + ": encoder_ffn_dim 32 and decoder_ffn_dim 64 differ");
  WriteConfigWith("normalize_before", "true");
  EXPECT_CONTAINS(ImportError(), config + ": normalize_before is true");
  WriteConfigWith("add_final_layer_norm", "true");
  EXPECT_CONTAINS(ImportError(), config + ": add_final_layer_norm is true");
  WriteConfigWith("decoder_vocab_size", "13");
  EXPECT_CONTAINS(ImportError(), config + ": decoder_vocab_size 13 differs from vocab_size 12");
  auto f = ConfigFields();
  f["vocab_size"] = f["decoder_vocab_size"] = "13";
  WriteConfig(f);
  EXPECT_CONTAINS(ImportError(), config + ": vocab_size is 13 but vocab.json has 12 entries");
  WriteConfigWith("d_model", "\"16\"");
  EXPECT_CONTAINS(ImportError(), config + ": field 'd_model' must be an integer, not a string");
  f = ConfigFields();
  f.erase("encoder_layers");
  WriteConfig(f);
  EXPECT_CONTAINS(ImportError(), config + ": field 'encoder_layers' is missing");
  Write(config, "{ not json");
  EXPECT_CONTAINS(ImportError(), config + ": not a JSON object");
  WriteConfig(ConfigFields());
  Write(dir_ + "/generation_config.json", R"({"bad_words_ids": [[11, 3]]})");
  EXPECT_CONTAINS(ImportError(), dir_ + "/generation_config.json: bad_words_ids entry [11, 3]");
  Write(dir_ + "/tokenizer_config.json", R"({"separate_vocabs": true})");
  Write(dir_ + "/generation_config.json", "{}");
  EXPECT_CONTAINS(ImportError(), dir_ + "/tokenizer_config.json: separate_vocabs is true");
  fs::remove(dir_ + "/vocab.json");
  EXPECT_CONTAINS(ImportError(), dir_ + " has no vocab.json");
}

TEST_F(MarianDirTest, WeightRefusalsNameTheFileAndTensor) {
  const std::string st = dir_ + "/model.safetensors";
  // A missing tensor.
  NamedTensors t = tensors_;
  t.erase(t.begin() + 10);
  const std::string dropped = tensors_[10].first;
  WriteWeights(t);
  EXPECT_CONTAINS(ImportError(), st + " lacks tensor '" + dropped + "'");
  // A tensor of the wrong shape.
  t = tensors_;
  for (auto& [n, v] : t)
    if (n == "model.encoder.layers.1.fc1.weight") v = torch::randn({kF + 1, kD});
  WriteWeights(t);
  EXPECT_CONTAINS(ImportError(), st + ": tensor 'model.encoder.layers.1.fc1.weight' has shape "
                                      "[33, 16] but mixserve's 'encoder.1.ffn.fc1.weight' "
                                      "needs [32, 16]");
  // Embeddings of another vocabulary size than config.json's.
  t = tensors_;
  for (auto& [n, v] : t)
    if (n.find("embed_tokens") != std::string::npos || n == "model.shared.weight" ||
        n == "lm_head.weight")
      v = torch::zeros({kV + 1, kD});
  WriteWeights(t);
  EXPECT_CONTAINS(ImportError(), st + ": tensor 'model.shared.weight' has shape [13, 16] but "
                                      "mixserve's 'embed.weight' needs [12, 16]");
  // An untied output projection that the shared embeddings cannot stand for.
  t = tensors_;
  for (auto& [n, v] : t)
    if (n == "lm_head.weight") v = torch::randn({kV, kD});
  WriteWeights(t);
  EXPECT_CONTAINS(ImportError(), st + ": tensor 'lm_head.weight' differs from "
                                      "'model.shared.weight'");
  // A truncated file.
  WriteWeights(tensors_);
  fs::resize_file(st, fs::file_size(st) - 100);
  EXPECT_CONTAINS(ImportError(), st + ": tensor '");
  EXPECT_CONTAINS(ImportError(), "truncated");
  // No weights at all.
  fs::remove(st);
  EXPECT_CONTAINS(ImportError(), dir_ + " has neither model.safetensors nor pytorch_model.bin");
}

TEST_F(MarianDirTest, CommandLineErrorsExitNonZero) {
  const std::string repo = root_ + "/repo";
  WriteConfigWith("model_type", "\"t5\"");
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(offline::Main("import", {"--hf_dir", dir_, "--repository", repo, "--name", "m"}), 1);
  EXPECT_CONTAINS(::testing::internal::GetCapturedStderr(),
                  "mixserve-offline import: error: " + dir_ + "/config.json: model_type 't5'");
  EXPECT_FALSE(fs::exists(repo + "/m/1"));
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(offline::Main("import", {"--repository", repo, "--name", "m"}), 2);
  EXPECT_CONTAINS(::testing::internal::GetCapturedStderr(), "hf_dir");
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(offline::Main("import", {"--hf_dir", dir_, "--repository", repo, "--name", "a/b"}),
            2);
  ::testing::internal::GetCapturedStderr();
}

// ---- the model transformers wrote (tests/data/marian-tiny) ----

const std::string kTiny = MIXSERVE_SOURCE_DIR "/tests/data/marian-tiny";

TEST(MarianTinyTest, ImportTakesEveryTensorOfTheSafetensorsFile) {
  const model::MarianImport imp = model::ImportMarian(kTiny);
  EXPECT_EQ(imp.weights_file, kTiny + "/model.safetensors");
  std::map<std::string, torch::Tensor> got;
  for (const auto& p : imp.model->named_parameters(true)) got.emplace(p.key(), p.value());
  for (const auto& b : imp.model->named_buffers(true)) got.emplace(b.key(), b.value());
  const auto spec = imp.model->spec();
  EXPECT_EQ(spec.ids.unk, 1);
  EXPECT_EQ(spec.source_language, "en");
  std::vector<model::NamedShape> ms;
  for (const auto& [n, t] : got) ms.push_back({n, t.sizes().vec()});
  const NamedTensors file = model::ReadSafetensors(imp.weights_file);
  std::vector<model::NamedShape> hf;
  std::map<std::string, torch::Tensor> by_name;
  for (const auto& [n, t] : file) {
    hf.push_back({n, t.sizes().vec()});
    by_name[n] = t;
  }
  for (const auto& s : model::MapMarianTensors(spec, hf, ms, "f").tensors) {
    if (s.source.empty()) continue;
    auto want = by_name.at(s.source);
    if (s.fill == model::Fill::kRow) want = want[0];
    EXPECT_TRUE(torch::equal(got.at(s.target), want)) << s.target;
  }
  // transformers does not save the position table: computed, as the Transformer computes it.
  model::Transformer fresh(spec);
  std::map<std::string, torch::Tensor> buffers;
  for (const auto& b : fresh->named_buffers(true)) buffers.emplace(b.key(), b.value());
  EXPECT_TRUE(torch::allclose(got.at("positions"), buffers.at("positions"), 0, 1e-6));
}

TEST(MarianTinyTest, PytorchModelBinIsReadOrRefusedWithTheReason) {
  const std::string bin = kTiny + "/pytorch_model.bin";
  NamedTensors tensors;
  const std::string e = ErrorOf([&] { tensors = model::ReadTorchStateDict(bin); });
  if (!e.empty()) {  // LibTorch 1.13: the OrderedDict of torch.save comes back as None
    EXPECT_CONTAINS(e, bin + ": LibTorch");
    EXPECT_CONTAINS(e, "collections.OrderedDict");
    return;
  }
  std::map<std::string, torch::Tensor> st;
  for (const auto& [n, t] : model::ReadSafetensors(kTiny + "/model.safetensors")) st[n] = t;
  for (const auto& [n, t] : tensors) {
    if (st.count(n)) {
      EXPECT_TRUE(torch::equal(t, st.at(n))) << n;
    }
  }
}

}  // namespace
}  // namespace mixserve
