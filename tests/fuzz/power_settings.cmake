coaphub_fuzz_target(NAME power_settings SOURCES ${CMAKE_CURRENT_LIST_DIR}/power_settings.c
                    LIBS coaphub_device)
