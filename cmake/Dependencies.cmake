# All third-party packages, found once. See docs/build.md for the traps this order avoids.
find_package(Threads REQUIRED)

# Protobuf first: Torch's CMake config otherwise defines protobuf::libprotobuf itself and
# the real library is never linked.
find_package(Protobuf REQUIRED)
find_package(gRPC CONFIG REQUIRED)
find_program(MIXSERVE_GRPC_CPP_PLUGIN grpc_cpp_plugin REQUIRED)
find_package(absl CONFIG REQUIRED)
find_package(prometheus-cpp CONFIG REQUIRED)

find_package(Torch REQUIRED)
# Torch's flags carry include paths (the pip wheel ships its own protobuf headers): they are
# attached only to targets that link torch privately, never globally.

find_package(PkgConfig REQUIRED)
# Linked only by text/'s SentencePiece shim, never by a binary (docs/text.md).
pkg_check_modules(SENTENCEPIECE REQUIRED IMPORTED_TARGET sentencepiece)
# Sentence segmentation of documents (text/sentences.cc): ICU's break iterators.
find_package(ICU REQUIRED COMPONENTS uc)
find_package(ZLIB REQUIRED)  # .gz corpora (text/text_files.cc)

if(MIXSERVE_BUILD_TESTS)
  find_package(GTest CONFIG REQUIRED)
endif()
if(MIXSERVE_BUILD_BENCH)
  find_package(benchmark CONFIG REQUIRED)
endif()
