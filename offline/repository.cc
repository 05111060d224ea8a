#include "offline/repository.h"

#include <algorithm>
#include <cctype>
#include <filesystem>

namespace mixserve::offline {

namespace fs = std::filesystem;

int NextModelVersion(const std::string& dir) {
  int v = 0;
  if (fs::is_directory(dir)) {
    for (const auto& e : fs::directory_iterator(dir)) {
      const std::string n = e.path().filename().string();
      if (!e.is_directory() || n.empty() || n.find_first_not_of("0123456789") != std::string::npos)
        continue;
      v = std::max(v, std::stoi(n));
    }
  }
  return v + 1;
}

bool ValidModelName(const std::string& n) {
  if (n.empty() || n[0] == '.') return false;
  for (char c : n)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) return false;
  return true;
}

}  // namespace mixserve::offline
