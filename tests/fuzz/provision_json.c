/* provision_json.c — libFuzzer target: the provision request parser (device/provision.h) on
 * arbitrary bytes, with and without tight caps. An accepted request has every field set (never
 * NULL); its certificate field goes through the credential canonicaliser as the rules would
 * send it; and each answer body a result could produce (the request's token or certificate
 * text as credentialsValue) must be JSON that reads back to the same value. */
#include "device/provision.h"
#include "device/x509.h"
#include "values/json.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_answer(arena_t *a, const char *value)
{
    provision_result_t r = {.status = PROVISION_SUCCESS, .cred_type = CRED_ACCESS_TOKEN};
    r.cred_value = strdup(value);
    for (int st = PROVISION_SUCCESS; st <= PROVISION_FAILURE; st++) {
        r.status = (provision_status_t)st;
        char *body = provision_result_json(&r);
        char err[64];
        values_json_t *v = values_json_parse(a, (const uint8_t *)body, strlen(body), VALUES_STRICT,
                                             0, err, sizeof err);
        if (!v || v->kind != VALUES_JSON_OBJECT)
            abort();
        const values_json_t *cv = values_json_get(v, "credentialsValue");
        if (st == PROVISION_SUCCESS &&
            (!cv || cv->len != strlen(value) || memcmp(cv->text, value, cv->len) != 0))
            abort(); /* the value the device gets is exactly the credential */
        if (!values_json_get(v, "status"))
            abort();
        free(body);
    }
    free(r.cred_value);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[128];
    arena_t a;
    arena_init(&a, 256);
    for (int variant = 0; variant < 2; variant++) {
        values_cfg_t cfg = {.type_cast = true,
                            .max_string_len = variant ? 8 : 0,
                            .max_depth = variant ? 2 : 32,
                            .max_bytes = variant ? 64 : 0};
        provision_req_t r;
        if (provision_req_parse(&a, &cfg, data, size, &r, err, sizeof err) == 0) {
            if (!r.device_name || !r.key || !r.secret || !r.token || !r.hash)
                abort();
            if (r.cred_type < PROVISION_CRED_ACCESS_TOKEN ||
                r.cred_type > PROVISION_CRED_MQTT_BASIC)
                abort();
            check_answer(&a, r.token);
            if (r.cred_type == PROVISION_CRED_X509) {
                char *b64 = NULL, hash[65];
                if (x509_cred_from_pem(r.hash, strlen(r.hash), &b64, hash, err, sizeof err) == 0) {
                    if (!b64 || strlen(hash) != 64)
                        abort();
                    check_answer(&a, b64);
                } else if (b64) {
                    abort();
                }
                free(b64);
            }
        } else if (!err[0]) {
            abort(); /* a refusal names its reason */
        }
        arena_reset(&a);
    }
    arena_fini(&a);
    return 0;
}
