# Modules.cmake — the module map, enforced (STYLE.md §2.2: "include only what you link").
#
# coaphub_enforce_module_deps() at the end of src/<module>/CMakeLists.txt reads every .c and
# .h of that folder and fails the configure step if one includes a header of another module
# ("<module>/...") that none of the folder's targets links directly. So a transport that
# starts calling the CoAP engine, or a store file that reaches for the device registry,
# breaks the build at once instead of growing a cycle quietly; to add an edge, add it to
# target_link_libraries first, where the map is visible.
#
#   coaphub_enforce_module_deps([TYPES_FROM module...])
# TYPES_FROM names modules whose headers are read for type definitions only, without linking
# them (values reads store.h for store_kv_t); it is part of the map and stated where it is used.
function(coaphub_enforce_module_deps)
  cmake_parse_arguments(M "" "" "TYPES_FROM" ${ARGN})
  get_filename_component(module ${CMAKE_CURRENT_SOURCE_DIR} NAME)
  get_property(targets DIRECTORY PROPERTY BUILDSYSTEM_TARGETS)
  set(allowed ${module} ${M_TYPES_FROM})
  foreach(t ${targets})
    get_target_property(libs ${t} LINK_LIBRARIES)
    foreach(lib ${libs})
      # coaphub_<module> and coaphub_<module>_<part> (coaphub_api_parse) name module dirs.
      if(lib MATCHES "^coaphub_([a-z]+)")
        list(APPEND allowed ${CMAKE_MATCH_1})
      endif()
    endforeach()
  endforeach()
  file(GLOB sources ${CMAKE_CURRENT_SOURCE_DIR}/*.c ${CMAKE_CURRENT_SOURCE_DIR}/*.h)
  foreach(f ${sources})
    file(STRINGS ${f} includes REGEX "^#include \"[a-z_]+/")
    foreach(line ${includes})
      string(REGEX REPLACE "^#include \"([a-z_]+)/.*" "\\1" dep "${line}")
      if(NOT dep IN_LIST allowed)
        file(RELATIVE_PATH rel ${PROJECT_SOURCE_DIR} ${f})
        list(REMOVE_DUPLICATES allowed)
        message(FATAL_ERROR "${rel} includes a header of module '${dep}', which src/${module} "
                            "does not link (it links: ${allowed}). Link it in "
                            "src/${module}/CMakeLists.txt if the module map allows the edge "
                            "(docs/ARCHITECTURE.md), or move the code.")
      endif()
    endforeach()
  endforeach()
endfunction()
