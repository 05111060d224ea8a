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
  add_compile_definitions(MIXSERVE_SANITIZE=1)
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
