# Compact DTLS record layer (src/dtls/record.c, compact.c): hostile and forged-but-authentic
# datagrams into an established compact session. Needs coaphub_dtls, which tests/unit/dtls
# pulls in until the top-level CMakeLists adds src/dtls.
if(TARGET coaphub_dtls)
  coaphub_fuzz_target(NAME dtls_compact SOURCES ${CMAKE_CURRENT_LIST_DIR}/dtls_compact.c
                      LIBS coaphub_dtls)
endif()
