// libmixserve_spm_shim: SentencePiece behind the C ABI of text/spm_shim.h.
//
// This is the only translation unit of the project that includes SentencePiece headers. It must
// include no Abseil header: sentencepiece_processor.h declares absl::string_view itself and the
// two clash (docs/text.md).
#include "text/spm_shim.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <unordered_map>
#include <vector>

struct MixserveSpm {
  sentencepiece::SentencePieceProcessor processor;
};

namespace {

thread_local std::string g_last_error;

void SetError(std::string message) { g_last_error = std::move(message); }

// Copies n elements into a buffer from malloc, released by mixserve_spm_free_buffer.
template <typename T>
T* CopyOut(const T* src, size_t n, size_t extra = 0) {
  T* out = static_cast<T*>(std::malloc((n + extra) * sizeof(T) + 1));
  if (out == nullptr) return nullptr;
  if (n > 0) std::memcpy(out, src, n * sizeof(T));
  return out;
}

// A decode's result for the caller: `out` copied into *text (NUL-terminated, its length in
// *text_len), or the status's error. Throws std::bad_alloc (for Guard) when out of memory.
template <typename Status>
int TextOut(const Status& status, const std::string& out, char** text, size_t* text_len) {
  if (!status.ok()) {
    SetError(status.ToString());
    return -1;
  }
  char* t = CopyOut(out.data(), out.size());
  if (t == nullptr) throw std::bad_alloc();
  t[out.size()] = '\0';
  *text = t;
  *text_len = out.size();
  return 0;
}

// Runs f, turning exceptions into an error message and the failure value.
template <typename R, typename F>
R Guard(R failure, F&& f) {
  try {
    return f();
  } catch (const std::exception& e) {
    SetError(std::string("sentencepiece: ") + e.what());
  } catch (...) {
    SetError("sentencepiece: unknown exception");
  }
  return failure;
}

}  // namespace

extern "C" {

int mixserve_spm_abi_version(void) { return MIXSERVE_SPM_SHIM_ABI_VERSION; }

const char* mixserve_spm_last_error(void) { return g_last_error.c_str(); }

MixserveSpm* mixserve_spm_load(const char* path) {
  return Guard<MixserveSpm*>(nullptr, [&]() -> MixserveSpm* {
    if (path == nullptr) {
      SetError("null model path");
      return nullptr;
    }
    auto* model = new MixserveSpm;
    const auto status = model->processor.Load(path);
    if (!status.ok()) {
      SetError(status.ToString());
      delete model;
      return nullptr;
    }
    return model;
  });
}

void mixserve_spm_free(MixserveSpm* model) { delete model; }

void mixserve_spm_free_buffer(void* buffer) { std::free(buffer); }

int mixserve_spm_vocab_size(const MixserveSpm* model) {
  return model == nullptr ? -1 : model->processor.GetPieceSize();
}

int mixserve_spm_piece_to_id(const MixserveSpm* model, const char* piece, size_t piece_len) {
  if (model == nullptr || (piece == nullptr && piece_len > 0)) return -1;
  return Guard<int>(-1, [&]() {
    return model->processor.PieceToId(std::string_view(piece, piece_len));
  });
}

int mixserve_spm_encode_ids(const MixserveSpm* model, const char* text, size_t text_len,
                            int** ids, size_t* n_ids) {
  if (model == nullptr || ids == nullptr || n_ids == nullptr ||
      (text == nullptr && text_len > 0)) {
    SetError("encode: null argument");
    return -1;
  }
  return Guard<int>(-1, [&]() {
    std::vector<int> out;
    const auto status = model->processor.Encode(std::string_view(text, text_len), &out);
    if (!status.ok()) {
      SetError(status.ToString());
      return -1;
    }
    *ids = CopyOut(out.data(), out.size());
    if (*ids == nullptr) throw std::bad_alloc();
    *n_ids = out.size();
    return 0;
  });
}

int mixserve_spm_encode_pieces(const MixserveSpm* model, const char* text, size_t text_len,
                               char** data, size_t** ends, size_t* n_pieces) {
  if (model == nullptr || data == nullptr || ends == nullptr || n_pieces == nullptr ||
      (text == nullptr && text_len > 0)) {
    SetError("encode: null argument");
    return -1;
  }
  return Guard<int>(-1, [&]() {
    std::vector<std::string> pieces;
    const auto status = model->processor.Encode(std::string_view(text, text_len), &pieces);
    if (!status.ok()) {
      SetError(status.ToString());
      return -1;
    }
    std::string joined;
    std::vector<size_t> offsets;
    offsets.reserve(pieces.size());
    for (const auto& p : pieces) {
      joined += p;
      offsets.push_back(joined.size());
    }
    char* d = CopyOut(joined.data(), joined.size());
    size_t* e = CopyOut(offsets.data(), offsets.size());
    if (d == nullptr || e == nullptr) {
      std::free(d);
      std::free(e);
      throw std::bad_alloc();
    }
    *data = d;
    *ends = e;
    *n_pieces = pieces.size();
    return 0;
  });
}

int mixserve_spm_decode_ids(const MixserveSpm* model, const int* ids, size_t n_ids, char** text,
                            size_t* text_len) {
  if (model == nullptr || text == nullptr || text_len == nullptr ||
      (ids == nullptr && n_ids > 0)) {
    SetError("decode: null argument");
    return -1;
  }
  return Guard<int>(-1, [&]() {
    // SentencePiece does not range-check ids before indexing its piece table.
    const int size = model->processor.GetPieceSize();
    for (size_t i = 0; i < n_ids; ++i) {
      if (ids[i] < 0 || ids[i] >= size) {
        SetError("decode: id " + std::to_string(ids[i]) + " at position " + std::to_string(i) +
                 " is outside the vocabulary [0, " + std::to_string(size) + ")");
        return -1;
      }
    }
    std::string out;
    return TextOut(model->processor.Decode(std::vector<int>(ids, ids + n_ids), &out), out, text,
                   text_len);
  });
}

int mixserve_spm_decode_pieces(const MixserveSpm* model, const char* data, const size_t* ends,
                               size_t n_pieces, char** text, size_t* text_len) {
  if (model == nullptr || text == nullptr || text_len == nullptr ||
      (n_pieces > 0 && (data == nullptr || ends == nullptr))) {
    SetError("decode: null argument");
    return -1;
  }
  return Guard<int>(-1, [&]() {
    std::vector<std::string> pieces;
    pieces.reserve(n_pieces);
    size_t begin = 0;
    for (size_t i = 0; i < n_pieces; ++i) {
      if (ends[i] < begin) {
        SetError("decode: piece ends are not ascending at piece " + std::to_string(i));
        return -1;
      }
      pieces.emplace_back(data + begin, ends[i] - begin);
      begin = ends[i];
    }
    std::string out;
    return TextOut(model->processor.Decode(pieces, &out), out, text, text_len);
  });
}

int mixserve_spm_train(const char* const* keys, const char* const* values, size_t n) {
  if (n > 0 && (keys == nullptr || values == nullptr)) {
    SetError("train: null argument");
    return -1;
  }
  return Guard<int>(-1, [&]() {
    std::unordered_map<std::string, std::string> kwargs;
    for (size_t i = 0; i < n; ++i) {
      if (keys[i] == nullptr || values[i] == nullptr) {
        SetError("train: null flag");
        return -1;
      }
      kwargs[keys[i]] = values[i];
    }
    const auto status = sentencepiece::SentencePieceTrainer::Train(kwargs);
    if (!status.ok()) {
      SetError(status.ToString());
      return -1;
    }
    return 0;
  });
}

}  // extern "C"
