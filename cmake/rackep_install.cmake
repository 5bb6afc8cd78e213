# cmake/rackep_install.cmake: `cmake --install build [--prefix P]` installs
#   P/bin/rackep, P/bin/rackep-gpu                         the CLI
#   P/include/rackep/{core,lplb,traces,sim,report}/*.hpp   headers (same include paths as in the tree:
#   P/include/rackep/config.hpp                              #include "core/plan.hpp", "rackep/config.hpp")
#   P/lib/librackep_*.a                                    the libraries
#   P/lib/cmake/rackep/rackepConfig.cmake (+ Targets, ConfigVersion)
# so that a consumer writes find_package(rackep) and links rackep::core, rackep::traces, rackep::sim (and, opting in
# to GPL-3 through GLPK, rackep::lplb). tests/install/ builds such a consumer against an installed tree.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(RACKEP_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/rackep)
set(_rackep_installed_libs core lplb traces sim report)

foreach(lib IN LISTS _rackep_installed_libs)
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/${lib}/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/rackep/${lib}
          FILES_MATCHING PATTERN "*.hpp" PATTERN "data" EXCLUDE)
endforeach()
install(FILES ${PROJECT_BINARY_DIR}/generated/rackep/config.hpp DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/rackep)

list(TRANSFORM _rackep_installed_libs PREPEND rackep_ OUTPUT_VARIABLE _rackep_lib_targets)
install(TARGETS ${_rackep_lib_targets} rackep_glpk EXPORT rackepTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/rackep)
install(TARGETS rackep rackep-gpu RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(EXPORT rackepTargets NAMESPACE rackep:: DESTINATION ${RACKEP_INSTALL_CMAKEDIR})

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/rackepConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/rackepConfig.cmake INSTALL_DESTINATION ${RACKEP_INSTALL_CMAKEDIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/rackepConfigVersion.cmake VERSION ${PROJECT_VERSION}
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/rackepConfig.cmake ${PROJECT_BINARY_DIR}/rackepConfigVersion.cmake
        DESTINATION ${RACKEP_INSTALL_CMAKEDIR})
