# rs_add_test(NAME source... [TIMEOUT seconds])
#
# Builds a cmocka test binary and registers every case in it as a CTest test of its own
# (NAME.case), so each case runs in its own process with its own timeout: a deadlock fails
# instead of hanging the suite. The case list is read from the binary itself (--list) after
# each build, as gtest_discover_tests does.
function(rs_add_test name)
  cmake_parse_arguments(T "" "TIMEOUT" "" ${ARGN})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 60)
  endif()
  add_executable(${name} ${T_UNPARSED_ARGUMENTS} harness.c util.c)
  target_include_directories(${name} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR} ${PROJECT_SOURCE_DIR}/src)
  target_compile_definitions(${name} PRIVATE _GNU_SOURCE
      RS_TEST_FIXTURES="${CMAKE_CURRENT_SOURCE_DIR}/fixtures"
      RS_CLI="$<TARGET_FILE:runspace_cli>")
  add_dependencies(${name} runspace_cli)
  target_link_libraries(${name} PRIVATE runspace_static PkgConfig::CMOCKA)
  rs_apply_warnings(${name})
  set(list_file "${CMAKE_CURRENT_BINARY_DIR}/${name}.cases")
  add_custom_command(TARGET ${name} POST_BUILD
      COMMAND ${CMAKE_COMMAND} -E env ${RS_TEST_ENV} $<TARGET_FILE:${name}> --list > ${list_file}
      VERBATIM)
  set(include_file "${CMAKE_CURRENT_BINARY_DIR}/${name}_tests.cmake")
  file(GENERATE OUTPUT "${include_file}" CONTENT
"if(EXISTS \"${list_file}\")
  file(STRINGS \"${list_file}\" cases)
  foreach(c IN LISTS cases)
    add_test(\"${name}.\${c}\" \"$<TARGET_FILE:${name}>\" --run \"\${c}\")
    set_tests_properties(\"${name}.\${c}\" PROPERTIES TIMEOUT ${T_TIMEOUT}
        ENVIRONMENT \"${RS_TEST_ENV}\")
  endforeach()
else()
  add_test(${name}_NOT_BUILT ${name}_NOT_BUILT)
endif()
")
  set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES "${include_file}")
endfunction()
