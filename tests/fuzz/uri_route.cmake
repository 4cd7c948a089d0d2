coaphub_fuzz_target(NAME uri_route SOURCES ${CMAKE_CURRENT_LIST_DIR}/uri_route.c
                    LIBS coaphub_api_parse)
