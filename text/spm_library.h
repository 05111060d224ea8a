// Finds and loads libmixserve_spm_shim at run time (internal to text/; see docs/text.md).
#pragma once

#include <string>
#include <vector>

#include "text/spm_shim.h"

namespace mixserve {
namespace text_internal {

// The shim's entry points, resolved once per process.
struct SpmApi {
  decltype(&mixserve_spm_abi_version) abi_version = nullptr;
  decltype(&mixserve_spm_last_error) last_error = nullptr;
  decltype(&mixserve_spm_load) load = nullptr;
  decltype(&mixserve_spm_free) free_model = nullptr;
  decltype(&mixserve_spm_free_buffer) free_buffer = nullptr;
  decltype(&mixserve_spm_vocab_size) vocab_size = nullptr;
  decltype(&mixserve_spm_piece_to_id) piece_to_id = nullptr;
  decltype(&mixserve_spm_encode_ids) encode_ids = nullptr;
  decltype(&mixserve_spm_encode_pieces) encode_pieces = nullptr;
  decltype(&mixserve_spm_decode_ids) decode_ids = nullptr;
  decltype(&mixserve_spm_decode_pieces) decode_pieces = nullptr;
  decltype(&mixserve_spm_train) train = nullptr;

  std::string path;    // the shim file that was loaded
  std::string loader;  // "deepbind", "dlmopen" or "global" (spm_library.cc)

  // The shim's message for the calling thread's last failure.
  std::string Error() const;
};

// Candidate shim paths in search order: $MIXSERVE_SPM_SHIM alone when set; else next to the
// running executable, in ../lib from it, and the build tree's copy.
std::vector<std::string> SpmShimCandidates();

// Loads the shim on first use (thread-safe; retried after a failure). Throws std::runtime_error
// naming the paths tried and the loader's message.
const SpmApi& Spm();

}  // namespace text_internal
}  // namespace mixserve
