# What `make install` (cmake --install) puts where, as a Debian library package would:
#   LIBDIR/librunspace.so.0.1.0 (+ links), LIBDIR/librunspace.a, INCLUDEDIR/runspace.h,
#   LIBDIR/pkgconfig/runspace.pc            pkg-config --cflags --libs runspace
#   LIBDIR/cmake/runspace/                  find_package(runspace): runspace::runspace (shared)
#                                           and runspace::runspace_static
#   BINDIR/runspace, MANDIR/man1/runspace.1,
#   DATADIR/bash-completion/completions/runspace, DATADIR/zsh/vendor-completions/_runspace
# The pkg-config file names its directories relative to its own place (${pcfiledir}) when
# LIBDIR is relative, so the tree works wherever it is unpacked (DESTDIR, --prefix at install
# time) as well as where it was configured to go.
include(CMakePackageConfigHelpers)

set(RS_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/runspace)

install(TARGETS runspace runspace_static EXPORT runspaceTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES include/runspace.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS runspace_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES docs/runspace.1 DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
install(FILES completions/runspace.bash DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions
        RENAME runspace)
install(FILES completions/_runspace DESTINATION ${CMAKE_INSTALL_DATADIR}/zsh/vendor-completions)

# pkg-config
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(RS_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
  set(RS_PC_LIBDIR "${CMAKE_INSTALL_LIBDIR}")
else()
  # From LIBDIR/pkgconfig back up to the prefix: one ".." per component.
  file(RELATIVE_PATH RS_PC_UP "/root/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/root")
  string(REGEX REPLACE "/$" "" RS_PC_UP "${RS_PC_UP}")
  set(RS_PC_PREFIX "\${pcfiledir}/${RS_PC_UP}")
  set(RS_PC_LIBDIR "\${prefix}/${CMAKE_INSTALL_LIBDIR}")
endif()
if(IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  set(RS_PC_INCLUDEDIR "${CMAKE_INSTALL_INCLUDEDIR}")
else()
  set(RS_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
endif()
configure_file(${PROJECT_SOURCE_DIR}/cmake/runspace.pc.in ${PROJECT_BINARY_DIR}/runspace.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/runspace.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# CMake package
install(EXPORT runspaceTargets NAMESPACE runspace:: DESTINATION ${RS_CMAKE_DIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/runspaceConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/runspaceConfig.cmake
                              INSTALL_DESTINATION ${RS_CMAKE_DIR})
# 0.x: a new minor version may change the API, so only the same minor version is compatible.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/runspaceConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/runspaceConfig.cmake
              ${PROJECT_BINARY_DIR}/runspaceConfigVersion.cmake
        DESTINATION ${RS_CMAKE_DIR})
