coaphub_fuzz_target(NAME rest_json SOURCES ${CMAKE_CURRENT_LIST_DIR}/rest_json.c
                    LIBS coaphub_http)
