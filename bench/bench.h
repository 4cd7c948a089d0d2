/* bench.h — coaphub-bench's shared types: options, simulated devices, statistics.
 *
 * coaphub-bench is one process and one thread: every simulated device owns a connect()ed UDP
 * socket (and, over DTLS, its own OpenSSL session), all sockets sit in one epoll set, and a
 * periodic sweep drives CoAP retransmissions and DTLS handshake timers. Invariant: nothing is
 * allocated per request — a request is rebuilt from (device, MID, token) when it is sent or
 * retransmitted, and latencies go into a fixed-bucket histogram.
 * The tool is a load generator for loopback benchmarks; it verifies no server certificate.
 */
#ifndef COAPHUB_BENCH_H
#define COAPHUB_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <netinet/in.h>
#include <openssl/ssl.h>

typedef enum {
    BENCH_TELEMETRY,
    BENCH_HANDSHAKE,
    BENCH_OBSERVE,
    BENCH_IDLE,
    BENCH_OSSL, /* in-process OpenSSL handshake cost, no server (ossl.c) */
} bench_mode_t;

/* Everything from the command line; read-only once parsed. */
typedef struct bench_cfg {
    bench_mode_t mode;
    const char *host;       /* IPv4 literal or name; the tool is meant for 127.0.0.1 */
    int port;               /* CoAP or CoAPs port */
    const char *rest_url;   /* http://127.0.0.1:8080, for --create-devices and observe */
    const char *user, *password;
    int devices;            /* N */
    int window;             /* W outstanding requests per device */
    double rate;            /* open loop msgs/s in total; 0 = closed loop */
    long requests;          /* stop after this many (0 = no count bound) */
    double duration_s;      /* stop after this long (always bounded: default 10 s) */
    double drain_s;         /* after the end, wait at most this long for outstanding replies */
    double connect_s;       /* time allowed to establish all DTLS sessions */
    bool dtls;
    bool no_cert;           /* one-way DTLS, token in the path */
    bool psk;               /* DTLS with a pre-shared key per device (identity = its token) */
    const char *ciphers;    /* client cipher list (NULL: OpenSSL's, or PSK-AES128-CCM8) */
    const char *cert_dir;   /* read dev-<i>.crt/.key from here, or write generated ones */
    bool gen_certs;
    const char *token_file;
    const char *token_prefix;
    int token_start;
    const char *name_prefix;
    const char *path;       /* template; "{token}" is replaced per device */
    const char *payload;
    int payload_size;       /* > 0: generated JSON payload of about this many bytes */
    uint8_t method;         /* CoAP code 0.0x */
    bool con;
    bool create_devices, delete_devices;
    bool resume;
    int repeat;             /* observe rounds */
    int rest_conns;         /* observe: parallel keep-alive REST connections posting updates */
    int server_pid;
    double hold_s;          /* idle mode: how long sessions are held */
    double max_error_rate;  /* -1 = not checked */
    bool json;
    bool quiet;
} bench_cfg_t;

/* Upper bound of --rest-conns: one thread and one keep-alive connection each, and coaphub
 * admits 200 connections per client address. */
#define BENCH_MAX_REST_CONNS 128

/* Fixed-bucket log histogram of microsecond values: 16 sub-buckets per power of two (relative
 * error <= 1/16), values up to 2^40 us. No allocation, ever. */
#define BENCH_HIST_SUB 16
#define BENCH_HIST_BUCKETS (41 * BENCH_HIST_SUB)
typedef struct bench_hist {
    uint64_t count;
    uint64_t max;
    uint64_t sum;
    uint64_t b[BENCH_HIST_BUCKETS];
} bench_hist_t;

void bench_hist_add(bench_hist_t *h, uint64_t v_us);
/* Value (us) at quantile q in [0,1]: the midpoint of the bucket that holds it; 0 when empty. */
uint64_t bench_hist_quantile(const bench_hist_t *h, double q);

/* Counters of one run. */
typedef struct bench_stats {
    uint64_t sent;          /* requests issued (first transmissions) */
    uint64_t done;          /* requests answered */
    uint64_t retrans;
    uint64_t timeouts;      /* gave up after the last retransmission, or left at the end */
    uint64_t resets;
    uint64_t errors;        /* failed requests (4.xx/5.xx, RST, timeout), failed handshakes,
                             * DTLS sessions lost */
    uint64_t sock_errors;   /* send/recv errors (ECONNREFUSED...); the request then times out */
    uint64_t codes[256];    /* response-code counts by code byte */
    uint64_t overload;      /* open loop: a send was due but the device's window was full */
    uint64_t handshakes, handshakes_resumed, handshake_errors;
    uint64_t notifications;
    uint64_t dtls_errors;
    bench_hist_t lat;       /* request latency, us */
    bench_hist_t hs_lat;    /* handshake latency, us */
    bench_hist_t notify_lat;/* observe: REST update -> notification, us */
} bench_stats_t;

enum { DEV_IDLE, DEV_HANDSHAKE, DEV_READY, DEV_FAILED };

/* One request in flight. Its bytes are rebuilt from (mid, tok) for each retransmission. */
typedef struct bench_slot {
    bool used;
    bool acked;             /* empty ACK seen: stop retransmitting, wait for the response */
    uint8_t tries;
    uint16_t mid;
    uint32_t tok;
    int64_t t0_us;          /* first transmission */
    int64_t next_us;        /* next retransmission deadline */
    int64_t timeout_us;     /* current back-off */
} bench_slot_t;

typedef struct bench_dev {
    int idx;
    int fd;
    int state;
    SSL *ssl;
    SSL_SESSION *sess;      /* saved for --resume */
    X509 *cert;
    EVP_PKEY *key;
    char *token;            /* also the PSK identity with --psk */
    uint8_t psk_key[16];    /* --psk: derived from the token (bench_psk_key) */
    char *dev_id;           /* REST id, when known */
    uint8_t path_buf[256];  /* pre-split Uri-Path segments: len byte + bytes, repeated */
    size_t path_len;
    uint16_t next_mid;
    uint32_t next_tok;
    int n_out;
    int64_t hs_t0_us;
    int hs_tries;
    uint32_t obs_tok;       /* observe registration token */
    bool obs_ok;            /* registration answered 2.05 */
    int obs_seen_round;     /* last round whose notification arrived */
    bench_slot_t *slots;    /* window entries */
} bench_dev_t;

typedef struct bench {
    bench_cfg_t cfg;
    bench_stats_t st;
    bench_dev_t *devs;
    int ep;
    struct sockaddr_in addr; /* the server, resolved once */
    uint64_t rng;            /* xorshift state for retransmission jitter */
    int n_ready;             /* devices in DEV_READY */
    int n_failed;
    long n_out;              /* requests outstanding over all devices */
    int hs_inflight;         /* devices in DEV_HANDSHAKE */
    int obs_seen;            /* observe: devices notified in the current round */
    int64_t obs_last_us;     /* observe: when the last of them was */
    int obs_want;            /* observe: devices that must be notified per round */
    int64_t next_send_us;    /* open loop: when the next request is due */
    unsigned rr;             /* open loop: round-robin device cursor */
    int64_t hs_elapsed_us;   /* connect phase duration (handshakes/s outside handshake mode) */
    long long cpu0, cpu1;    /* server CPU ticks around the load phase (--server-pid) */
    long long drops0, drops1;/* kernel UDP receive drops around the load phase */
    int *reopen;             /* handshake mode: devices waiting for their next handshake */
    int n_reopen;
    SSL_CTX *ctx;
    uint8_t *payload;
    size_t payload_len;
    int64_t t_start_us, t_end_us;
    bool stop_issuing;
    int obs_round;          /* observe: current round (1..repeat) */
    int64_t *obs_post_us;   /* observe: per device, when its REST update went out */
    /* What the running mode does when net.c reports progress, set by the mode (modes.c) before
     * it opens a device. on_done: a request completed or was given up (closed-loop refill).
     * on_ready: a device finished its handshake (d->state is DEV_READY) or failed it
     * (DEV_FAILED). Callbacks rather than calls into modes.c, so that net.c sits below the
     * modes that drive it. */
    void (*on_done)(struct bench *b, bench_dev_t *d);
    void (*on_ready)(struct bench *b, bench_dev_t *d);
} bench_t;

/* Monotonic clock in microseconds, the one time base of every measurement. */
static inline int64_t bench_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* net.c: sockets, CoAP exchanges, DTLS. */
int bench_net_init(bench_t *b);
void bench_net_fini(bench_t *b);
/* Opens the device's socket (and starts its DTLS handshake). 0 or negative errno. */
int bench_dev_open(bench_t *b, bench_dev_t *d);
void bench_dev_close(bench_t *b, bench_dev_t *d, bool notify);
/* Issues one request in a free slot; -EBUSY when the window is full. */
int bench_dev_request(bench_t *b, bench_dev_t *d);
/* Sends an Observe registration GET for the device's attributes. */
int bench_dev_observe(bench_t *b, bench_dev_t *d);
/* Waits up to timeout_ms for events and handles them. */
void bench_net_poll(bench_t *b, int timeout_ms);
/* Retransmissions and DTLS timers; call every few ms. */
void bench_net_sweep(bench_t *b);

/* pki.c: per-device certificates. */
int bench_pki_load_or_gen(bench_t *b, bench_dev_t *d, char *err, size_t errlen);
/* PEM text of the device certificate (caller frees with free()). */
char *bench_pki_cert_pem(const bench_dev_t *d);
/* --psk: the device's key, SHA-256("coaphub-bench psk " || token) cut to 16 bytes, so that a
 * device created by an earlier run with the same token still matches. */
void bench_psk_key(bench_dev_t *d);
/* OpenSSL PSK client callback for an SSL whose app data is its bench_dev_t. */
unsigned bench_psk_client_cb(SSL *ssl, const char *hint, char *identity, unsigned max_identity,
                             unsigned char *psk, unsigned max_psk);

/* rest.c: the REST calls around a run (libcurl). */
typedef struct bench_rest bench_rest_t;
bench_rest_t *bench_rest_login(const char *url, const char *user, const char *password,
                               char *err, size_t errlen);
void bench_rest_free(bench_rest_t *r);
/* The credentials a device is created with. */
typedef enum { BENCH_CRED_TOKEN, BENCH_CRED_X509, BENCH_CRED_PSK } bench_cred_t;
/* Creates the device (token, certificate or PSK credentials); sets d->dev_id. */
int bench_rest_create(bench_rest_t *r, bench_dev_t *d, const char *name, bench_cred_t cred,
                      char *err, size_t errlen);
/* Looks the device up by name; sets d->dev_id. */
int bench_rest_lookup(bench_rest_t *r, bench_dev_t *d, const char *name);
int bench_rest_delete(bench_rest_t *r, const bench_dev_t *d);
/* POSTs {"key":value} to the device's SHARED_SCOPE attributes. */
int bench_rest_shared_attr(bench_rest_t *r, const bench_dev_t *d, const char *key, long value);

/* report.c */
void bench_progress(const bench_t *b, int64_t now_us, const bench_stats_t *prev, double dt_s);
/* Prints the summary (unless --json) and the JSON line; extra is added to the JSON object
 * (",\"k\":v..." or ""). */
void bench_report(const bench_t *b, const char *extra_json, const char *extra_text);
long bench_read_rss_kb(int pid);
/* utime + stime of the process in clock ticks (/proc/PID/stat), or -1. */
long long bench_read_cpu_ticks(int pid);
/* Udp RcvbufErrors + InErrors from /proc/net/snmp (system-wide), or -1. */
long long bench_read_udp_drops(void);
double bench_error_rate(const bench_stats_t *st);

#endif
