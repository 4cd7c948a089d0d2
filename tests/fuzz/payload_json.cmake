coaphub_fuzz_target(NAME payload_json SOURCES ${CMAKE_CURRENT_LIST_DIR}/payload_json.c
                    LIBS coaphub_uplink_parse)
