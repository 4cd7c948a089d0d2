/* pdu.h — the CoAP message codec (RFC 7252 §3, RFC 7959 Block values): bytes <-> views.
 *
 * Parsing fills a caller-owned coap_pdu_t that borrows the datagram and records each option
 * as (number, offset, length); nothing is allocated and nothing is copied. Building writes
 * into a caller buffer through coap_builder_t, options in ascending order. No I/O here.
 * All functions are pure and may be called from any thread.
 */
#ifndef COAPHUB_COAP_PDU_H
#define COAPHUB_COAP_PDU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Message types (RFC 7252 §3). */
enum { COAP_TYPE_CON = 0, COAP_TYPE_NON = 1, COAP_TYPE_ACK = 2, COAP_TYPE_RST = 3 };

/* Option numbers we know (RFC 7252 §5.10, RFC 7641, RFC 7959, RFC 7967). */
enum {
    COAP_OPT_IF_MATCH = 1,
    COAP_OPT_URI_HOST = 3,
    COAP_OPT_ETAG = 4,
    COAP_OPT_IF_NONE_MATCH = 5,
    COAP_OPT_OBSERVE = 6,
    COAP_OPT_URI_PORT = 7,
    COAP_OPT_LOCATION_PATH = 8,
    COAP_OPT_URI_PATH = 11,
    COAP_OPT_CONTENT_FORMAT = 12,
    COAP_OPT_MAX_AGE = 14,
    COAP_OPT_URI_QUERY = 15,
    COAP_OPT_ACCEPT = 17,
    COAP_OPT_LOCATION_QUERY = 20,
    COAP_OPT_BLOCK2 = 23,
    COAP_OPT_BLOCK1 = 27,
    COAP_OPT_SIZE2 = 28,
    COAP_OPT_PROXY_URI = 35,
    COAP_OPT_PROXY_SCHEME = 39,
    COAP_OPT_SIZE1 = 60,
    COAP_OPT_ECHO = 252, /* RFC 9175 §2.2: elective, 1..40 bytes */
    COAP_OPT_NO_RESPONSE = 258,
};

/* Most options one parsed message may carry; a message with more is -E2BIG. 64 covers 16
 * path segments + 16 query items + every other known option twice. */
#define COAP_PDU_MAX_OPTS 64
#define COAP_TOKEN_MAX 8

typedef struct coap_opt_ref {
    uint16_t num;
    uint16_t len;
    uint32_t off; /* value offset into coap_pdu_t.buf */
} coap_opt_ref_t;

/* A parsed message. Views into buf; valid while buf is. */
typedef struct coap_pdu {
    const uint8_t *buf;
    size_t len;
    uint8_t type; /* COAP_TYPE_* */
    uint8_t tkl;
    uint8_t code;
    uint16_t mid;
    const uint8_t *token; /* tkl bytes */
    size_t n_opts;
    coap_opt_ref_t opts[COAP_PDU_MAX_OPTS]; /* in wire (ascending) order */
    const uint8_t *payload; /* NULL when there is none */
    size_t payload_len;
} coap_pdu_t;

/* Parses one datagram. Returns 0, -EBADMSG (format error: version, token length 9-15,
 * truncated option, reserved nibble 15, marker without payload) or -E2BIG (more than
 * COAP_PDU_MAX_OPTS options). On error pdu is partly filled: the header fields are valid
 * when len >= 4. */
int coap_pdu_parse(coap_pdu_t *pdu, const uint8_t *buf, size_t len);

/* Index of the first option numbered num at or after index from, or -ENOENT. */
int coap_pdu_opt_find(const coap_pdu_t *pdu, uint16_t num, size_t from);
/* Value bytes of option index i (len in *len). */
const uint8_t *coap_pdu_opt_value(const coap_pdu_t *pdu, size_t i, size_t *len);
/* Decodes the first option num as an unsigned integer (RFC 7252 §3.2 "uint", at most 4
 * bytes). Returns 0, -ENOENT if absent, -EBADMSG if longer than 4 bytes. */
int coap_pdu_opt_uint(const coap_pdu_t *pdu, uint16_t num, uint32_t *out);
/* Decodes a uint option value (at most 4 bytes; returns -EBADMSG otherwise). */
int coap_opt_uint_decode(const uint8_t *p, size_t len, uint32_t *out);
/* Encodes v in the shortest form (0 -> zero bytes) into out[4]; returns the length. */
size_t coap_opt_uint_encode(uint32_t v, uint8_t out[static 4]);
/* True for option numbers listed above. */
bool coap_opt_is_known(uint16_t num);
/* RFC 7252 §5.4.1: odd numbers are critical. */
static inline bool coap_opt_is_critical(uint16_t num) { return (num & 1u) != 0; }

/* Builder writing one message into a caller buffer. Errors are sticky: check only the result
 * of coap_builder_finish(). */
typedef struct coap_builder {
    uint8_t *buf;
    size_t cap;
    size_t len;
    uint16_t last_opt;
    bool has_payload;
    int err; /* 0, -ENOSPC (buffer), -EINVAL (option out of order, bad token) */
} coap_builder_t;

/* Writes the header and token. tkl <= 8. */
void coap_builder_init(coap_builder_t *b, uint8_t *buf, size_t cap, uint8_t type, uint8_t code,
                       uint16_t mid, const uint8_t *token, size_t tkl);
/* Appends an option; num must be >= the previous option's number. */
void coap_builder_opt(coap_builder_t *b, uint16_t num, const uint8_t *val, size_t len);
/* Appends a uint option in shortest form. */
void coap_builder_opt_uint(coap_builder_t *b, uint16_t num, uint32_t v);
/* Appends the payload marker and payload (nothing if len == 0). No options after this. */
void coap_builder_payload(coap_builder_t *b, const uint8_t *p, size_t len);
/* Returns the message length or the first error. */
ssize_t coap_builder_finish(const coap_builder_t *b);

/* RFC 7959 §2.2 Block1/Block2 value: NUM (up to 20 bits) | M (1 bit) | SZX (3 bits). */
typedef struct coap_block {
    uint32_t num;
    bool more;
    uint8_t szx; /* block size = 16 << szx; 0..6 */
} coap_block_t;

/* Decodes a Block option value. Returns 0 or -EBADMSG (SZX 7 is reserved, value > 24 bits). */
int coap_block_decode(uint32_t v, coap_block_t *out);
/* Encodes a block value (num is masked to 20 bits; ASSERTs szx <= 6). */
uint32_t coap_block_encode(const coap_block_t *b);
static inline size_t coap_block_size(uint8_t szx) { return (size_t)16 << szx; }
/* The largest SZX whose size is <= size (size < 16 gives 0, > 1024 gives 6). */
uint8_t coap_block_szx_for(size_t size);

#endif
