# -max_len=1600: the whole input is handled as one datagram (and as the first bytes of an
# oversize one), and the UDP front hands the engine at most UDP_MAX_DGRAM = 1600 bytes of a
# datagram (src/udp/udp.h); longer inputs only repeat the split-datagram part.
coaphub_fuzz_target(NAME coap_pdu SOURCES ${CMAKE_CURRENT_LIST_DIR}/coap_pdu.c LIBS coaphub_coap
                    FUZZ_ARGS -max_len=1600)
