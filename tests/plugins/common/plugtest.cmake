# plugtest.cmake -- pixflow_plugin_test(): the test of one bundled plugin, which includes the
# plugin's .c and is compiled with the shared config parser (plugins/common) and the test host
# of this folder, so every path is reached without a loader.
#
#   pixflow_plugin_test(<plugin> [SOURCES <more .c>] [INCLUDES <more dirs>] [LIBS <libraries>])
#
# builds tests/plugins/<plugin>/test_<plugin>.c into the ctest test unit.test_<plugin>; SOURCES
# and INCLUDES name what the plugin compiles besides <plugin>.c (e.g. blur's gauss.c).
include_guard(GLOBAL)

function(pixflow_plugin_test plugin)
  cmake_parse_arguments(P "" "" "SOURCES;INCLUDES;LIBS" ${ARGN})
  pixflow_unit_test(test_${plugin}
    SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_${plugin}.c
            ${P_SOURCES}
            ${CMAKE_SOURCE_DIR}/plugins/common/pconf.c
            ${CMAKE_SOURCE_DIR}/tests/plugins/common/plugtest.c
    LIBS ${P_LIBS})
  target_include_directories(test_${plugin} PRIVATE
    ${CMAKE_SOURCE_DIR}/include
    ${CMAKE_SOURCE_DIR}/plugins/${plugin}
    ${P_INCLUDES}
    ${CMAKE_SOURCE_DIR}/plugins/common
    ${CMAKE_SOURCE_DIR}/tests/plugins/common)
endfunction()
