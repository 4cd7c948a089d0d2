/* main.c — coaphub-bench: a CoAP / CoAP-over-DTLS load generator in the style of
 * redis-benchmark (see docs/bench.md). This file parses the command line, builds the simulated
 * devices (tokens, paths, certificates), registers them over REST when asked, runs the mode
 * (modes.c, or ossl.c for `openssl`) and turns the result into an exit status.
 *
 * Every run is bounded: --duration (default 10 s) always applies, --requests optionally, and
 * each wait (connect, drain, observe) has its own cap, so the tool always stops by itself.
 */
#include <curl/curl.h>
#include <openssl/rand.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>

#include "bench.h"
#include "core/xmalloc.h"
#include "modes.h"
#include "ossl.h"

static void usage(FILE *f)
{
    fputs(
        "Usage: coaphub-bench [MODE] [options]\n"
        "Modes: telemetry (default) | handshake | observe | idle | openssl (in-process\n"
        "       DTLS handshakes, no server: OpenSSL's own server-side CPU per handshake)\n"
        "  -H, --host ADDR          server address (127.0.0.1)\n"
        "  -p, --port N             CoAP port (5683; 5684 with --dtls)\n"
        "  -c, --devices N          simulated devices, one socket each (10)\n"
        "  -w, --window W           outstanding requests per device (1)\n"
        "      --rate R             open loop: R msgs/s in total instead of closed loop\n"
        "  -n, --requests N         stop after N requests (handshakes in handshake mode)\n"
        "  -d, --duration S         stop after S seconds (10)\n"
        "      --drain S            wait at most S s for outstanding answers at the end (3)\n"
        "      --connect-timeout S  time to establish all sessions (30)\n"
        "      --dtls               CoAP over DTLS 1.2 (X.509 client certificate per device)\n"
        "      --no-cert            one-way DTLS: no client certificate, token in the path\n"
        "      --psk                DTLS with a pre-shared key per device (identity = token;\n"
        "                           --create-devices registers PSK credentials)\n"
        "      --ciphers LIST       client cipher list (default PSK-AES128-CCM8 with --psk)\n"
        "      --certs DIR          read DIR/dev-<i>.crt|.key; with --gen-certs write them\n"
        "      --gen-certs          generate missing certificates (EC P-256, self-signed)\n"
        "      --tokens FILE        access tokens, one per line\n"
        "      --token-prefix P     tokens P0, P1, ... (bench-)\n"
        "      --token-start N      first index for --token-prefix and device names (0)\n"
        "      --name-prefix P      device names P0, P1, ... (bench-dev-)\n"
        "      --path P             request path; {token} is replaced (default: TB device API)\n"
        "      --payload TEXT       request body (a small telemetry JSON)\n"
        "      --payload-size N     generated JSON body of about N bytes\n"
        "      --method M           get|post|put|delete (post)\n"
        "      --con | --non        confirmable (default) or non-confirmable requests\n"
        "      --rest URL           REST base URL (http://127.0.0.1:8080)\n"
        "      --user U --password P  REST login (or env COAPHUB_BENCH_USER/_PASSWORD)\n"
        "      --create-devices     create the devices (and credentials) over REST first\n"
        "      --delete-devices     delete them at the end\n"
        "      --resume             handshake mode: resumed handshakes with saved sessions\n"
        "      --repeat K           observe mode: rounds of attribute updates (5)\n"
        "      --rest-conns N       observe mode: parallel REST connections posting them (32)\n"
        "      --server-pid PID     read the server's CPU time and RSS from /proc/PID\n"
        "      --hold S             idle mode: hold the sessions S seconds (2)\n"
        "      --max-error-rate F   exit 2 when errors/answers exceeds F (e.g. 0.01)\n"
        "      --json               print only the one-line JSON result\n"
        "  -q, --quiet              no progress lines\n"
        "  -h, --help\n",
        f);
}

enum {
    O_RATE = 256,
    O_DRAIN,
    O_CONNECT,
    O_DTLS,
    O_NOCERT,
    O_CERTS,
    O_GENCERTS,
    O_TOKENS,
    O_TPREFIX,
    O_TSTART,
    O_NPREFIX,
    O_PATH,
    O_PAYLOAD,
    O_PSIZE,
    O_METHOD,
    O_CON,
    O_NON,
    O_REST,
    O_USER,
    O_PASSWORD,
    O_CREATE,
    O_DELETE,
    O_RESUME,
    O_REPEAT,
    O_PID,
    O_HOLD,
    O_MAXERR,
    O_JSON,
    O_RESTCONNS,
    O_PSK,
    O_CIPHERS,
};

static const struct option opts[] = {
    {"host", 1, 0, 'H'},
    {"port", 1, 0, 'p'},
    {"devices", 1, 0, 'c'},
    {"window", 1, 0, 'w'},
    {"rate", 1, 0, O_RATE},
    {"requests", 1, 0, 'n'},
    {"duration", 1, 0, 'd'},
    {"drain", 1, 0, O_DRAIN},
    {"connect-timeout", 1, 0, O_CONNECT},
    {"dtls", 0, 0, O_DTLS},
    {"no-cert", 0, 0, O_NOCERT},
    {"certs", 1, 0, O_CERTS},
    {"gen-certs", 0, 0, O_GENCERTS},
    {"psk", 0, 0, O_PSK},
    {"ciphers", 1, 0, O_CIPHERS},
    {"tokens", 1, 0, O_TOKENS},
    {"token-prefix", 1, 0, O_TPREFIX},
    {"token-start", 1, 0, O_TSTART},
    {"name-prefix", 1, 0, O_NPREFIX},
    {"path", 1, 0, O_PATH},
    {"payload", 1, 0, O_PAYLOAD},
    {"payload-size", 1, 0, O_PSIZE},
    {"method", 1, 0, O_METHOD},
    {"con", 0, 0, O_CON},
    {"non", 0, 0, O_NON},
    {"rest", 1, 0, O_REST},
    {"user", 1, 0, O_USER},
    {"password", 1, 0, O_PASSWORD},
    {"create-devices", 0, 0, O_CREATE},
    {"delete-devices", 0, 0, O_DELETE},
    {"resume", 0, 0, O_RESUME},
    {"repeat", 1, 0, O_REPEAT},
    {"rest-conns", 1, 0, O_RESTCONNS},
    {"server-pid", 1, 0, O_PID},
    {"hold", 1, 0, O_HOLD},
    {"max-error-rate", 1, 0, O_MAXERR},
    {"json", 0, 0, O_JSON},
    {"quiet", 0, 0, 'q'},
    {"help", 0, 0, 'h'},
    {0, 0, 0, 0},
};

static int parse(bench_cfg_t *c, int argc, char **argv)
{
    *c = (bench_cfg_t){.host = "127.0.0.1", .devices = 10, .window = 1, .duration_s = 10,
                       .drain_s = 3, .connect_s = 30, .token_prefix = "bench-",
                       .name_prefix = "bench-dev-", .method = 2, .con = true,
                       .rest_url = "http://127.0.0.1:8080", .repeat = 5, .rest_conns = 32,
                       .hold_s = 2,
                       .max_error_rate = -1};
    c->user = getenv("COAPHUB_BENCH_USER");
    c->password = getenv("COAPHUB_BENCH_PASSWORD");
    int o;
    while ((o = getopt_long(argc, argv, "H:p:c:w:n:d:qh", opts, NULL)) != -1) {
        switch (o) {
        case 'H': c->host = optarg; break;
        case 'p': c->port = atoi(optarg); break;
        case 'c': c->devices = atoi(optarg); break;
        case 'w': c->window = atoi(optarg); break;
        case 'n': c->requests = atol(optarg); break;
        case 'd': c->duration_s = atof(optarg); break;
        case 'q': c->quiet = true; break;
        case 'h': usage(stdout); exit(0);
        case O_RATE: c->rate = atof(optarg); break;
        case O_DRAIN: c->drain_s = atof(optarg); break;
        case O_CONNECT: c->connect_s = atof(optarg); break;
        case O_DTLS: c->dtls = true; break;
        case O_NOCERT: c->no_cert = true; break;
        case O_PSK:
            c->psk = c->dtls = true;
            break;
        case O_CIPHERS:
            c->ciphers = optarg;
            break;
        case O_CERTS: c->cert_dir = optarg; break;
        case O_GENCERTS: c->gen_certs = true; break;
        case O_TOKENS: c->token_file = optarg; break;
        case O_TPREFIX: c->token_prefix = optarg; break;
        case O_TSTART: c->token_start = atoi(optarg); break;
        case O_NPREFIX: c->name_prefix = optarg; break;
        case O_PATH: c->path = optarg; break;
        case O_PAYLOAD: c->payload = optarg; break;
        case O_PSIZE: c->payload_size = atoi(optarg); break;
        case O_METHOD:
            c->method = !strcasecmp(optarg, "get") ? 1 : !strcasecmp(optarg, "post") ? 2
                      : !strcasecmp(optarg, "put") ? 3 : !strcasecmp(optarg, "delete") ? 4 : 0;
            if (!c->method) {
                fprintf(stderr, "coaphub-bench: unknown method %s\n", optarg);
                return -1;
            }
            break;
        case O_CON: c->con = true; break;
        case O_NON: c->con = false; break;
        case O_REST: c->rest_url = optarg; break;
        case O_USER: c->user = optarg; break;
        case O_PASSWORD: c->password = optarg; break;
        case O_CREATE: c->create_devices = true; break;
        case O_DELETE: c->delete_devices = true; break;
        case O_RESUME: c->resume = true; break;
        case O_REPEAT: c->repeat = atoi(optarg); break;
        case O_RESTCONNS: c->rest_conns = atoi(optarg); break;
        case O_PID: c->server_pid = atoi(optarg); break;
        case O_HOLD: c->hold_s = atof(optarg); break;
        case O_MAXERR: c->max_error_rate = atof(optarg); break;
        case O_JSON: c->json = true; break;
        default: usage(stderr); return -1;
        }
    }
    if (optind < argc) {
        const char *m = argv[optind++];
        if (!strcmp(m, "telemetry")) c->mode = BENCH_TELEMETRY;
        else if (!strcmp(m, "handshake")) c->mode = BENCH_HANDSHAKE;
        else if (!strcmp(m, "observe")) c->mode = BENCH_OBSERVE;
        else if (!strcmp(m, "idle")) c->mode = BENCH_IDLE;
        else if (!strcmp(m, "openssl")) c->mode = BENCH_OSSL;
        else {
            fprintf(stderr, "coaphub-bench: unknown mode %s\n", m);
            return -1;
        }
    }
    if (optind < argc || c->devices < 1 || c->devices > 1000000 || c->window < 1 ||
        c->window > 1024 || c->duration_s <= 0 || c->rate < 0 || c->repeat < 1 ||
        c->rest_conns < 1 || c->rest_conns > BENCH_MAX_REST_CONNS) {
        fprintf(stderr, "coaphub-bench: bad arguments (see --help)\n");
        return -1;
    }
    if (c->mode == BENCH_OSSL) {
        /* In-process: one client identity, no server, no network. */
        c->dtls = true;
        c->no_cert = false;
        c->devices = 1;
        c->gen_certs = !c->psk;
    }
    if (c->mode == BENCH_HANDSHAKE && !c->dtls) {
        fprintf(stderr, "coaphub-bench: handshake mode needs --dtls\n");
        return -1;
    }
    if (!c->port)
        c->port = c->dtls ? 5684 : 5683;
    if (c->psk && c->no_cert) {
        fprintf(stderr, "coaphub-bench: --psk and --no-cert exclude each other\n");
        return -1;
    }
    bool x509 = c->dtls && !c->no_cert && !c->psk;
    if (!c->path) {
        const char *feat = c->mode == BENCH_OBSERVE ? "attributes" : "telemetry";
        static char def[64];
        snprintf(def, sizeof def, x509 || c->psk ? "/api/v1/%s" : "/api/v1/{token}/%s", feat);
        c->path = def;
    }
    if (x509 && !c->cert_dir)
        c->gen_certs = true; /* in-memory certificates unless a folder is named */
    return 0;
}

/* Splits the expanded path into Uri-Path / Uri-Query entries: [num][len][bytes]... */
static int set_path(bench_dev_t *d, const char *tmpl)
{
    char full[512];
    size_t o = 0;
    for (const char *p = tmpl; *p && o < sizeof full - 1;) {
        if (!strncmp(p, "{token}", 7)) {
            o += (size_t)snprintf(full + o, sizeof full - o, "%s", d->token);
            p += 7;
        } else {
            full[o++] = *p++;
        }
    }
    if (o >= sizeof full - 1)
        return -ENAMETOOLONG;
    full[o] = 0;
    char *q = strchr(full, '?');
    if (q)
        *q++ = 0;
    d->path_len = 0;
    for (int pass = 0; pass < 2; pass++) {
        char *s = pass ? q : full;
        const char *sep = pass ? "&" : "/";
        char *save = NULL;
        for (char *t = s ? strtok_r(s, sep, &save) : NULL; t; t = strtok_r(NULL, sep, &save)) {
            size_t n = strlen(t);
            if (n > 255 || d->path_len + 2 + n > sizeof d->path_buf)
                return -ENAMETOOLONG;
            d->path_buf[d->path_len++] = pass ? 15 : 11;
            d->path_buf[d->path_len++] = (uint8_t)n;
            memcpy(d->path_buf + d->path_len, t, n);
            d->path_len += n;
        }
    }
    return 0;
}

static char **read_tokens(const char *file, int *n)
{
    FILE *f = fopen(file, "r");
    if (!f)
        return NULL;
    char **v = NULL, line[512];
    int cap = 0;
    *n = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        if (!line[0])
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 64;
            v = xrealloc(v, (size_t)cap * sizeof *v);
        }
        v[(*n)++] = xstrdup(line);
    }
    fclose(f);
    return v;
}

static int setup(bench_t *b)
{
    bench_cfg_t *c = &b->cfg;
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_DGRAM}, *ai;
    if (getaddrinfo(c->host, NULL, &hints, &ai) != 0) {
        fprintf(stderr, "coaphub-bench: cannot resolve %s\n", c->host);
        return -1;
    }
    memcpy(&b->addr, ai->ai_addr, sizeof b->addr);
    b->addr.sin_port = htons((uint16_t)c->port);
    freeaddrinfo(ai);

    /* One socket per device: lift the descriptor limit to the hard limit. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        if (rl.rlim_cur < (rlim_t)c->devices + 64) {
            fprintf(stderr, "coaphub-bench: %d devices need more descriptors (limit %llu)\n",
                    c->devices, (unsigned long long)rl.rlim_cur);
            return -1;
        }
    }

    if (c->payload_size > 0) {
        size_t n = (size_t)c->payload_size < 16 ? 16 : (size_t)c->payload_size;
        b->payload = xmalloc(n);
        memcpy(b->payload, "{\"v\":\"", 6);
        memset(b->payload + 6, 'x', n - 8);
        memcpy(b->payload + n - 2, "\"}", 2);
        b->payload_len = n;
    } else if (c->method == 2 || c->method == 3) {
        const char *p = c->payload ? c->payload : "{\"temperature\":21.5,\"humidity\":40}";
        b->payload = (uint8_t *)xstrdup(p);
        b->payload_len = strlen(p);
    }

    int ntok = 0;
    char **toks = NULL;
    if (c->token_file && !(toks = read_tokens(c->token_file, &ntok))) {
        fprintf(stderr, "coaphub-bench: cannot read %s\n", c->token_file);
        return -1;
    }
    if (toks && ntok < c->devices) {
        fprintf(stderr, "coaphub-bench: %s has %d tokens for %d devices\n", c->token_file, ntok,
                c->devices);
        for (int i = 0; i < ntok; i++)
            free(toks[i]);
        free(toks);
        return -1;
    }
    b->devs = xcalloc((size_t)c->devices, sizeof *b->devs);
    bench_slot_t *slots = xcalloc((size_t)c->devices * (size_t)c->window, sizeof *slots);
    int rc = 0;
    for (int i = 0; i < c->devices; i++) {
        bench_dev_t *d = &b->devs[i];
        d->idx = c->token_start + i;
        d->fd = -1;
        d->slots = slots + (size_t)i * (size_t)c->window;
        d->token = toks ? toks[i] : xasprintf("%s%d", c->token_prefix, d->idx);
        /* A random first MID (RFC 7252 §4.4): the kernel gives a new run's sockets ports an
         * earlier run used, and the server holds that run's MIDs as duplicates for
         * EXCHANGE_LIFETIME (247 s). With MIDs fixed per device, a registration was answered
         * from the earlier run's cache and never reached the server (test_bench_smoke). */
        uint8_t r[2];
        d->next_mid = RAND_bytes(r, sizeof r) == 1 ? (uint16_t)(r[0] << 8 | r[1])
                                                   : (uint16_t)(i * 7919u);
        d->next_tok = 1;
        d->obs_tok = 0xFFFFFFF0u;
        if (c->psk)
            bench_psk_key(d);
        if (set_path(d, c->path) < 0) {
            fprintf(stderr, "coaphub-bench: path too long\n");
            rc = -1;
        }
    }
    if (toks) {
        for (int i = c->devices; i < ntok; i++)
            free(toks[i]);
        free(toks);
    }
    if (rc == 0 && c->dtls && !c->no_cert && !c->psk) {
        for (int i = 0; i < c->devices && rc == 0; i++) {
            char err[512];
            if (bench_pki_load_or_gen(b, &b->devs[i], err, sizeof err) < 0) {
                fprintf(stderr, "coaphub-bench: %s\n", err);
                rc = -1;
            }
        }
    }
    return rc;
}

static void teardown(bench_t *b)
{
    if (b->devs) {
        for (int i = 0; i < b->cfg.devices; i++) {
            bench_dev_t *d = &b->devs[i];
            bench_dev_close(b, d, false);
            if (d->sess)
                SSL_SESSION_free(d->sess);
            X509_free(d->cert);
            EVP_PKEY_free(d->key);
            free(d->token);
            free(d->dev_id);
        }
        free(b->devs[0].slots);
        free(b->devs);
    }
    free(b->payload);
    free(b->obs_post_us);
    free(b->reopen);
    bench_net_fini(b);
}

static int rest_devices(bench_t *b, bool create)
{
    char err[512];
    bench_rest_t *r = bench_rest_login(b->cfg.rest_url, b->cfg.user, b->cfg.password, err,
                                       sizeof err);
    if (!r) {
        fprintf(stderr, "coaphub-bench: %s\n", err);
        return -1;
    }
    bench_cred_t cred = b->cfg.psk                       ? BENCH_CRED_PSK
                        : b->cfg.dtls && !b->cfg.no_cert ? BENCH_CRED_X509
                                                         : BENCH_CRED_TOKEN;
    int rc = 0;
    int64_t t0 = bench_now_us();
    for (int i = 0; i < b->cfg.devices && rc == 0; i++) {
        bench_dev_t *d = &b->devs[i];
        char name[128];
        snprintf(name, sizeof name, "%s%d", b->cfg.name_prefix, d->idx);
        if (create)
            rc = bench_rest_create(r, d, name, cred, err, sizeof err);
        else if (bench_rest_lookup(r, d, name) < 0) {
            snprintf(err, sizeof err, "device %s not found over REST", name);
            rc = -1;
        }
        if (rc < 0)
            fprintf(stderr, "coaphub-bench: %s\n", err);
    }
    if (rc == 0 && create && !b->cfg.quiet && !b->cfg.json)
        fprintf(stderr, "coaphub-bench: created %d devices in %.1f s\n", b->cfg.devices,
                (double)(bench_now_us() - t0) / 1e6);
    bench_rest_free(r);
    return rc;
}

static void delete_devices(bench_t *b)
{
    char err[512];
    bench_rest_t *r = bench_rest_login(b->cfg.rest_url, b->cfg.user, b->cfg.password, err,
                                       sizeof err);
    if (!r) {
        fprintf(stderr, "coaphub-bench: delete: %s\n", err);
        return;
    }
    int failed = 0;
    for (int i = 0; i < b->cfg.devices; i++)
        failed += bench_rest_delete(r, &b->devs[i]) < 0;
    if (failed)
        fprintf(stderr, "coaphub-bench: %d devices could not be deleted\n", failed);
    bench_rest_free(r);
}

int main(int argc, char **argv)
{
    bench_t b = {.ep = -1, .cpu0 = -1, .cpu1 = -1, .drops0 = -1, .drops1 = -1};
    if (parse(&b.cfg, argc, argv) < 0)
        return 1;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = 1;
    if (setup(&b) < 0 || bench_net_init(&b) < 0)
        goto out;
    if (b.cfg.create_devices && rest_devices(&b, true) < 0)
        goto out;
    if (b.cfg.mode == BENCH_OBSERVE && !b.cfg.create_devices && rest_devices(&b, false) < 0)
        goto out;
    rc = b.cfg.mode == BENCH_OSSL ? bench_ossl_run(&b) : bench_mode_run(&b);
    if (rc == 0 && b.cfg.max_error_rate >= 0 && bench_error_rate(&b.st) > b.cfg.max_error_rate) {
        fprintf(stderr, "coaphub-bench: error rate %.4f exceeds --max-error-rate %.4f\n",
                bench_error_rate(&b.st), b.cfg.max_error_rate);
        rc = 2;
    }
    for (int i = 0; i < b.cfg.devices && b.devs; i++)
        bench_dev_close(&b, &b.devs[i], true);
    if (b.cfg.delete_devices)
        delete_devices(&b);
out:
    teardown(&b);
    curl_global_cleanup();
    return rc;
}
