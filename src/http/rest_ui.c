/* rest_ui.c — small endpoints the web UI needs beyond ThingsBoard's API:
 *   GET /api/device/{id}/credentials/info  subject, issuer, validity, fingerprint of an X.509
 *                                          credential (404 for token devices)
 *   GET /api/noauth/connectivity           host and ports for "Check connectivity" commands
 *   GET /api/noauth/server-cert.pem        the DTLS server certificate, for clients' -R option
 *   GET /metrics                           Prometheus counters (the daemon provides the text)
 * The last two are public on purpose: they reveal nothing a client could not learn by
 * connecting (the certificate is sent in every handshake).
 */
#include "http/http_int.h"

#include "core/xmalloc.h"
#include "device/x509.h"

#include <errno.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void http__h_cred_info(http_req_t *rq, http_resp_t *rs)
{
    store_device_t d;
    if (!http__device_lookup(rq, rs, rq->params[0], &d))
        return;
    store_cred_t c;
    memset(&c, 0, sizeof c);
    int rc = store_cred_get_by_device(rq->srv->store, d.id, &c);
    x509_info_t info;
    if (rc < 0) {
        http__resp_store_error(rs, rc);
    } else if (c.type != CRED_X509 || !c.cred_value ||
               x509_info_from_b64(c.cred_value, &info) != 0) {
        http__resp_error(rs, HTTP_E_NOT_FOUND, "The device has no X.509 certificate credentials");
    } else {
        http__resp_json(rs, 200,
                        json_pack("{s:s,s:s,s:I,s:I,s:s,s:s}", "subject", info.subject, "issuer",
                                  info.issuer, "notBefore", (json_int_t)info.not_before_ms,
                                  "notAfter", (json_int_t)info.not_after_ms, "sha256Fingerprint",
                                  info.sha256_hex, "credentialsId", c.cred_id));
    }
    store_cred_fini(&c);
    store_device_fini(&d);
}

void http__h_connectivity(http_req_t *rq, http_resp_t *rs)
{
    const http_cfg_t *cfg = &rq->srv->cfg;
    /* The host the browser used is what devices on the same network can use too, unless the
     * operator configured a public name. */
    const char *host = cfg->public_host && *cfg->public_host ? cfg->public_host
                                                             : http__header(rq, "Host");
    char h[256] = "localhost";
    if (host) {
        snprintf(h, sizeof h, "%s", host);
        if (h[0] != '[') { /* strip ":port" (but not from an IPv6 literal) */
            char *colon = strrchr(h, ':');
            if (colon)
                *colon = '\0';
        } else {
            char *end = strchr(h, ']');
            if (end)
                end[1] = '\0';
        }
    }
    http__resp_json(rs, 200,
                    json_pack("{s:s,s:i,s:o,s:s*}", "host", h, "coapPort", cfg->coap_port,
                              "coapsPort", cfg->coaps_port > 0 ? json_integer(cfg->coaps_port)
                                                               : json_null(),
                              "serverCertUrl",
                              cfg->dtls_cert_path ? "/api/noauth/server-cert.pem" : NULL));
}

void http__h_server_cert(http_req_t *rq, http_resp_t *rs)
{
    const char *path = rq->srv->cfg.dtls_cert_path;
    FILE *f = path ? fopen(path, "rb") : NULL;
    if (!f) {
        http__resp_error(rs, HTTP_E_NOT_FOUND, "DTLS is not enabled");
        return;
    }
    char *buf = xmalloc(64 * 1024 + 1);
    size_t n = fread(buf, 1, 64 * 1024, f);
    fclose(f);
    buf[n] = '\0';
    /* Only the certificates: the file may also hold the private key. */
    char *begin = strstr(buf, "-----BEGIN CERTIFICATE-----");
    char *last = NULL;
    for (char *p = begin; p; p = strstr(p + 1, "-----END CERTIFICATE-----"))
        last = p;
    if (!begin || !last || last == begin) {
        free(buf);
        http__resp_error(rs, HTTP_E_GENERAL, "The server certificate file holds no certificate");
        return;
    }
    char *end = last + strlen("-----END CERTIFICATE-----");
    size_t len = (size_t)(end - begin);
    rs->status = 200;
    rs->body = xmalloc(len + 2);
    memcpy(rs->body, begin, len);
    rs->body[len] = '\n';
    rs->body[len + 1] = '\0';
    rs->body_len = len + 1;
    rs->content_type = "application/x-pem-file";
    free(buf);
}

/* Prometheus scrapes without credentials (as TB's actuator endpoint); the counters carry no
 * device identities. */
void http__h_metrics(http_req_t *rq, http_resp_t *rs)
{
    const http_cfg_t *cfg = &rq->srv->cfg;
    char *text = cfg->metrics_text ? cfg->metrics_text(cfg->metrics_ctx) : NULL;
    if (!text) {
        http__resp_error(rs, HTTP_E_NO_ROUTE, NULL);
        return;
    }
    rs->status = 200;
    rs->body = text;
    rs->body_len = strlen(text);
    rs->content_type = "text/plain; version=0.0.4";
}

/* `coaphub-cli sessions save`: the DTLS sessions of every shard go to the saved-sessions file
 * while the server runs (docs/operations.md, "Restarts without handshakes"). An administrator's
 * call (every user here is a tenant administrator). */
void http__h_sessions_save(http_req_t *rq, http_resp_t *rs)
{
    const http_cfg_t *cfg = &rq->srv->cfg;
    if (!cfg->sessions_save) {
        http__resp_error(rs, HTTP_E_NO_ROUTE, NULL);
        return;
    }
    size_t saved = 0, skipped = 0;
    char err[ERR_LEN] = "";
    int rc = cfg->sessions_save(cfg->metrics_ctx, &saved, &skipped, err);
    if (rc == -ENOTSUP) {
        http__resp_error(rs, HTTP_E_BAD_PARAMS, err);
        return;
    }
    if (rc == -ETIMEDOUT) {
        http__resp_error(rs, HTTP_E_UNAVAILABLE, err);
        return;
    }
    if (rc != 0) {
        http__resp_error(rs, HTTP_E_GENERAL, err);
        return;
    }
    http__resp_json(
        rs, 200,
        json_pack("{s:I,s:I}", "saved", (json_int_t)saved, "notSaved", (json_int_t)skipped));
}
