// Writes a model repository of tiny random-weight models for tests that start the real server
// from outside C++ (the Python client test): make_test_repository OUT_DIR creates
// OUT_DIR/<name>/1 for the standard en-de-base, en-de-alt and de-en-base models.
#include <exception>
#include <iostream>

#include "tests/server/support/server_fixture.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: make_test_repository OUT_DIR\n";
    return 2;
  }
  try {
    for (const auto& def : mixserve::testing::StandardModels())
      mixserve::testing::CreateModel(argv[1], def);
  } catch (const std::exception& e) {
    std::cerr << "make_test_repository: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
