coaphub_fuzz_target(NAME provision_json SOURCES ${CMAKE_CURRENT_LIST_DIR}/provision_json.c
                    LIBS coaphub_device)
