coaphub_fuzz_target(NAME multipart SOURCES ${CMAKE_CURRENT_LIST_DIR}/multipart.c
                    LIBS coaphub_http)
