coaphub_fuzz_target(NAME pem_import SOURCES ${CMAKE_CURRENT_LIST_DIR}/pem_import.c
                    LIBS coaphub_device)
