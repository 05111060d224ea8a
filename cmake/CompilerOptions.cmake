# Warning and sanitizer settings, applied to every mixserve target through mixserve_target().
add_library(mixserve_options INTERFACE)
target_compile_options(mixserve_options INTERFACE -Wall -Wextra -Wno-unused-parameter)
if(MIXSERVE_WERROR)
  target_compile_options(mixserve_options INTERFACE -Werror)
endif()
if(MIXSERVE_SANITIZE)
  target_compile_options(mixserve_options INTERFACE
    -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  target_link_options(mixserve_options INTERFACE -fsanitize=address,undefined)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    # GCC's flow analysis under the sanitizers reports -Wmaybe-uninitialized at the places
    # where LibTorch's headers are inlined (system-header status does not cover a warning
    # raised at inlining), which -Werror turns into errors; the sanitizers themselves check
    # uninitialised use at run time.
    target_compile_options(mixserve_options INTERFACE -Wno-maybe-uninitialized)
  endif()
  add_compile_definitions(MIXSERVE_SANITIZE=1)
endif()
if(MIXSERVE_TSAN)
  if(MIXSERVE_SANITIZE)
    message(FATAL_ERROR "MIXSERVE_TSAN and MIXSERVE_SANITIZE exclude each other")
  endif()
  # ThreadSanitizer: meant for the torch-free targets (scheduler, server core); see
  # docs/reliability.md for the command.
  target_compile_options(mixserve_options INTERFACE -fsanitize=thread -fno-omit-frame-pointer)
  target_link_options(mixserve_options INTERFACE -fsanitize=thread)
  add_compile_definitions(MIXSERVE_TSAN=1)
endif()
if(MIXSERVE_LIBFUZZER)
  include(CheckCXXSourceCompiles)
  set(CMAKE_REQUIRED_FLAGS -fsanitize=fuzzer)
  check_cxx_source_compiles([[
#include <cstddef>
#include <cstdint>
extern "C" int LLVMFuzzerTestOneInput(const uint8_t*, size_t) { return 0; }
]] MIXSERVE_HAVE_LIBFUZZER)
  unset(CMAKE_REQUIRED_FLAGS)
  if(NOT MIXSERVE_HAVE_LIBFUZZER)
    message(FATAL_ERROR "MIXSERVE_LIBFUZZER needs a compiler with -fsanitize=fuzzer (clang)")
  endif()
endif()

# mixserve_target(<target>): common options for one of our own targets.
function(mixserve_target tgt)
  target_link_libraries(${tgt} PRIVATE mixserve_options)
  target_include_directories(${tgt} PUBLIC ${PROJECT_SOURCE_DIR})
endfunction()

# mixserve_torch(<target>): link LibTorch privately; Torch's include paths stay inside.
function(mixserve_torch tgt)
  target_link_libraries(${tgt} PRIVATE ${TORCH_LIBRARIES})
  # Torch's headers are third-party: keep their warnings out of -Werror.
  get_target_property(_inc torch INTERFACE_INCLUDE_DIRECTORIES)
  if(_inc)
    target_include_directories(${tgt} SYSTEM PRIVATE ${_inc})
  endif()
endfunction()
