// RemoveTree: delete a file or a directory tree, like std::filesystem::remove_all.
//
// Why not std::filesystem::remove_all: the LibTorch shipped in the CUDA torch wheel exports
// its own copy of that symbol from libtorch.so, and a program linked against it calls that
// copy, which jumps to a null address (the crash reproduced on the GPU machine, see
// docs/gpu.md). This version uses POSIX nftw() only.
#pragma once

#include <ftw.h>
#include <stdio.h>
#include <sys/stat.h>

#include <string>

namespace mixserve {

namespace remove_tree_detail {
inline int RemoveOne(const char* path, const struct stat*, int, struct FTW*) {
  return ::remove(path) == 0 ? 0 : -1;
}
}  // namespace remove_tree_detail

// Returns true when nothing is left at `path` (also when it did not exist).
inline bool RemoveTree(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return true;
  if (!S_ISDIR(st.st_mode)) return ::remove(path.c_str()) == 0;
  return ::nftw(path.c_str(), remove_tree_detail::RemoveOne, 32, FTW_DEPTH | FTW_PHYS) == 0;
}

}  // namespace mixserve
