# RFC 9146 Connection ID records (src/dtls/record.c, compact.c, listener.c routing): hostile and
# forged-but-authentic tls12_cid datagrams from several addresses into a CID session.
if(TARGET coaphub_dtls)
  coaphub_fuzz_target(NAME dtls_cid SOURCES ${CMAKE_CURRENT_LIST_DIR}/dtls_cid.c
                      LIBS coaphub_dtls)
endif()
