// Loading libmixserve_spm_shim so that SentencePiece's private protobuf runtime stays apart
// from the process's own (PLATFORM-NOTES trap 1, docs/text.md):
//   deepbind: dlopen(RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND): the shim and SentencePiece resolve
//             symbols in their own dependencies before the global scope. The default of normal
//             builds; AddressSanitizer refuses this flag.
//   dlmopen:  dlmopen(LM_ID_NEWLM): the shim gets a link-map namespace of its own, with its own
//             copies of libc/libstdc++, and sees nothing of the process's symbols. The default of
//             sanitizer builds (MIXSERVE_SANITIZE); works in normal builds too.
//   global:   plain dlopen(RTLD_NOW | RTLD_LOCAL), no isolation. Only to show the failure the
//             other two avoid: with the system libprotobuf in the process it aborts
//             (tests/text/protobuf_coexistence_test.cc).
// MIXSERVE_SPM_LOADER=deepbind|dlmopen|global overrides the default.
#include "text/spm_library.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <system_error>

namespace mixserve {
namespace text_internal {
namespace {

namespace fs = std::filesystem;

constexpr const char* kShimFile = "libmixserve_spm_shim.so";

std::string DefaultLoader() {
#if defined(MIXSERVE_SANITIZE)
  return "dlmopen";
#else
  return "deepbind";
#endif
}

std::string ExecutableDir() {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string() : exe.parent_path().string();
}

bool IsFile(const std::string& path) {
  std::error_code ec;
  return fs::is_regular_file(path, ec);
}

void* Open(const std::string& path, const std::string& loader, std::string* error) {
  dlerror();
  void* handle = nullptr;
  if (loader == "dlmopen") {
    handle = dlmopen(LM_ID_NEWLM, path.c_str(), RTLD_NOW | RTLD_LOCAL);
  } else if (loader == "global") {
    handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  } else {
    handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
  }
  if (handle == nullptr) {
    const char* e = dlerror();
    *error = e != nullptr ? e : "unknown dynamic loader error";
  }
  return handle;
}

template <typename F>
void Resolve(void* handle, const std::string& path, const char* name, F* fn) {
  dlerror();
  void* sym = dlsym(handle, name);
  if (sym == nullptr) {
    throw std::runtime_error("SentencePiece shim " + path + " lacks symbol " + name +
                             " (stale build? rebuild target mixserve_spm_shim)");
  }
  *fn = reinterpret_cast<F>(sym);
}

SpmApi LoadApi() {
  std::string loader = DefaultLoader();
  if (const char* env = std::getenv("MIXSERVE_SPM_LOADER"); env != nullptr && *env != '\0') {
    loader = env;
    if (loader != "dlmopen" && loader != "deepbind" && loader != "global") {
      throw std::runtime_error(
          "MIXSERVE_SPM_LOADER must be 'dlmopen', 'deepbind' or 'global', not '" + loader + "'");
    }
  }
#if defined(MIXSERVE_SANITIZE)
  if (loader == "deepbind") {
    throw std::runtime_error(
        "MIXSERVE_SPM_LOADER=deepbind cannot work in a sanitizer build (AddressSanitizer "
        "rejects RTLD_DEEPBIND); use dlmopen");
  }
#endif

  const std::vector<std::string> candidates = SpmShimCandidates();
  std::string tried;
  for (const auto& path : candidates) {
    if (!IsFile(path)) {
      tried += "\n  " + path + " (absent)";
      continue;
    }
    std::string error;
    void* handle = Open(path, loader, &error);
    if (handle == nullptr) {
      // A shim that exists but fails to load is an error of its own, not a reason to go on.
      throw std::runtime_error("cannot load the SentencePiece shim " + path + " with " + loader +
                               ": " + error);
    }
    SpmApi api;
    api.path = path;
    api.loader = loader;
    Resolve(handle, path, "mixserve_spm_abi_version", &api.abi_version);
    Resolve(handle, path, "mixserve_spm_last_error", &api.last_error);
    Resolve(handle, path, "mixserve_spm_load", &api.load);
    Resolve(handle, path, "mixserve_spm_free", &api.free_model);
    Resolve(handle, path, "mixserve_spm_free_buffer", &api.free_buffer);
    Resolve(handle, path, "mixserve_spm_vocab_size", &api.vocab_size);
    Resolve(handle, path, "mixserve_spm_piece_to_id", &api.piece_to_id);
    Resolve(handle, path, "mixserve_spm_encode_ids", &api.encode_ids);
    Resolve(handle, path, "mixserve_spm_encode_pieces", &api.encode_pieces);
    Resolve(handle, path, "mixserve_spm_decode_ids", &api.decode_ids);
    Resolve(handle, path, "mixserve_spm_decode_pieces", &api.decode_pieces);
    Resolve(handle, path, "mixserve_spm_train", &api.train);
    if (api.abi_version() != MIXSERVE_SPM_SHIM_ABI_VERSION) {
      throw std::runtime_error("SentencePiece shim " + path + " has ABI version " +
                               std::to_string(api.abi_version()) + ", expected " +
                               std::to_string(MIXSERVE_SPM_SHIM_ABI_VERSION));
    }
    // The handle stays open for the life of the process.
    return api;
  }
  throw std::runtime_error(std::string("cannot find the SentencePiece shim ") + kShimFile +
                           "; looked at:" + tried +
                           "\nset MIXSERVE_SPM_SHIM to its path or install it next to the "
                           "executable");
}

}  // namespace

std::string SpmApi::Error() const {
  const char* e = last_error != nullptr ? last_error() : nullptr;
  return e != nullptr && *e != '\0' ? std::string(e) : std::string("unknown error");
}

std::vector<std::string> SpmShimCandidates() {
  if (const char* env = std::getenv("MIXSERVE_SPM_SHIM"); env != nullptr && *env != '\0') {
    return {env};
  }
  std::vector<std::string> out;
  const std::string dir = ExecutableDir();
  if (!dir.empty()) {
    out.push_back((fs::path(dir) / kShimFile).string());
    out.push_back((fs::path(dir) / ".." / "lib" / kShimFile).lexically_normal().string());
  }
#if defined(MIXSERVE_SPM_SHIM_BUILD_PATH)
  out.push_back(MIXSERVE_SPM_SHIM_BUILD_PATH);
#endif
  return out;
}

const SpmApi& Spm() {
  // A throwing initializer leaves the static uninitialized: the next call tries again.
  static const SpmApi api = LoadApi();
  return api;
}

}  // namespace text_internal
}  // namespace mixserve
