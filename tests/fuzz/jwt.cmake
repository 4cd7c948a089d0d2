coaphub_fuzz_target(NAME jwt SOURCES ${CMAKE_CURRENT_LIST_DIR}/jwt.c LIBS coaphub_http)
