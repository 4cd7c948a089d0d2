# Saved DTLS sessions file (src/dtls/saved.c): whole files (header, tag) and decrypted bodies
# into the restore table. The file is read at every start; someone with write access to the
# data dir but not the key could craft one. Needs coaphub_dtls.
if(TARGET coaphub_dtls)
  coaphub_fuzz_target(NAME dtls_saved SOURCES ${CMAKE_CURRENT_LIST_DIR}/dtls_saved.c
                      LIBS coaphub_dtls)
endif()
