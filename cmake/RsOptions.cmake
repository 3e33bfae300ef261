# Build options: warnings as errors, sanitizers.
#   -DRS_SANITIZE=address   AddressSanitizer + UndefinedBehaviorSanitizer
#   -DRS_SANITIZE=thread    ThreadSanitizer
#   -DRS_BUILD_FUZZ=ON      libFuzzer harnesses (fuzz/); needs clang. Everything is compiled
#                           with -fsanitize=fuzzer-no-link,address,undefined, the harnesses are
#                           linked with -fsanitize=fuzzer.
set(RS_SANITIZE "" CACHE STRING "Sanitizer build: empty, address or thread")
option(RS_WERROR "Treat warnings as errors" ON)
option(RS_BUILD_FUZZ "Build the libFuzzer harnesses (clang only)" OFF)

if(RS_BUILD_FUZZ)
  if(NOT CMAKE_C_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "RS_BUILD_FUZZ needs clang (-DCMAKE_C_COMPILER=clang-14), "
                        "not ${CMAKE_C_COMPILER_ID}")
  endif()
  if(NOT RS_SANITIZE STREQUAL "" AND NOT RS_SANITIZE STREQUAL "address")
    message(FATAL_ERROR "RS_BUILD_FUZZ brings AddressSanitizer+UBSan; RS_SANITIZE must be empty")
  endif()
  # The harnesses add -fsanitize=fuzzer at link time (fuzz/CMakeLists.txt); the coverage
  # instrumentation goes into the library too, so the fuzzer sees the library's branches.
  set(RS_SANITIZE "")
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all
                      -fno-omit-frame-pointer -g)
  add_link_options(-fsanitize=address,undefined)
endif()

if(RS_SANITIZE STREQUAL "address")
  add_compile_options(-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
elseif(RS_SANITIZE STREQUAL "thread")
  add_compile_options(-fsanitize=thread -fno-omit-frame-pointer)
  add_link_options(-fsanitize=thread)
elseif(NOT RS_SANITIZE STREQUAL "")
  message(FATAL_ERROR "RS_SANITIZE must be empty, address or thread (got '${RS_SANITIZE}')")
endif()

function(rs_apply_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wshadow -Wstrict-prototypes
                         -Wmissing-prototypes -Wno-unused-parameter)
  if(RS_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
