# DTLS record pre-filter, cookie check and listener input (src/dtls). Needs coaphub_dtls, which
# tests/unit/dtls pulls in until the top-level CMakeLists adds src/dtls.
if(TARGET coaphub_dtls)
  coaphub_fuzz_target(NAME dtls_record SOURCES ${CMAKE_CURRENT_LIST_DIR}/dtls_record.c
                      LIBS coaphub_dtls)
endif()
