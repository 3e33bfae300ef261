# Build options: warnings as errors, sanitizers.
#   -DRS_SANITIZE=address   AddressSanitizer + UndefinedBehaviorSanitizer
#   -DRS_SANITIZE=thread    ThreadSanitizer
set(RS_SANITIZE "" CACHE STRING "Sanitizer build: empty, address or thread")
option(RS_WERROR "Treat warnings as errors" ON)

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
