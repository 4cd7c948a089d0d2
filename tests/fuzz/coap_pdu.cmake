coaphub_fuzz_target(NAME coap_pdu SOURCES ${CMAKE_CURRENT_LIST_DIR}/coap_pdu.c LIBS coaphub_coap)
