/* rest_json.c — libFuzzer target: the REST body handlers of src/http/body.c without a server,
 * and values' strict reader (values/json.h) against jansson, the REST side's former reader.
 *
 * The first byte picks the body kind (telemetry, attributes, credentials, device, RPC; from
 * 0xF0 on a device profile or a deviceData, whose answers are rendered back and must parse
 * again to the same row); the rest is the body. Accepted values are walked back to JSON both ways (typed and as strings)
 * and serialised, as a response would be. Whatever the kind, the strict reader must accept
 * exactly the documents jansson accepts (below its nesting cap). First bytes 0xE0..0xEF take
 * the rest as a query parameter value for the REST parameter binders (request.c). */
#include "device/registry.h"
#include "http/http_int.h"
#include "values/json.h"
#include "values/render.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Every accepted value, written both ways as an answer would write it, is JSON that jansson
 * reads (an independent check of the writer), and a JSON value comes back as it was stored. */
static void walk(store_kv_list_t *l)
{
    for (size_t i = 0; i < l->n; i++) {
        for (int typed = 0; typed < 2; typed++) {
            values_buf_t b = {0};
            values_kv_write(&b, &l->items[i], typed ? VALUES_TYPED : VALUES_TEXT);
            json_t *j = json_loads(b.p, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
            if (!j)
                abort();
            if (typed && l->items[i].type == STORE_JSON && strcmp(b.p, l->items[i].s) != 0)
                abort();
            json_decref(j);
            values_buf_fini(&b);
        }
    }
    values_buf_t all = {0};
    values_kvs_write_series(&all, l->items, l->n, VALUES_TYPED);
    values_kvs_write_object(&all, l->items, l->n, VALUES_TEXT);
    values_buf_fini(&all);
    store_kv_list_fini(l);
}

/* Same accept/refuse decision as jansson with JSON_REJECT_DUPLICATES (the flags REST used),
 * except for a document nested deeper than our cap, which only jansson reads, and a body
 * holding a raw NUL byte: jansson skips one right after a number or keyword ([1\0] reads as
 * [1]), which RFC 8259 does not allow and we do not copy. */
static void same_as_jansson(const char *body, size_t len)
{
    if (memchr(body, '\0', len))
        return;
    arena_t a;
    arena_init(&a, 1024);
    char err[128] = "";
    values_json_t *v = values_json_parse(&a, (const uint8_t *)body, len, VALUES_STRICT, 0, err,
                                         sizeof err);
    json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, NULL);
    if (!v != !j && !(j && strstr(err, "nesting deeper")))
        abort();
    json_decref(j);
    arena_fini(&a);
}

/* A profile body that is accepted is stored (its fields as a row) and answered; the answer,
 * posted back, must be accepted and give the same row: what the UI reads it can save. */
static void profile_round_trip(const char *body, size_t len)
{
    json_t *j = http__json_parse(body, len);
    http_profile_req_t pr;
    char msg[300];
    if (http__profile_from_json(j, &pr, msg, sizeof msg) == 0) {
        if (!pr.name || !pr.provision_type || !pr.data)
            abort();
        store_profile_t p = {.id = 1,
                             .name = pr.name,
                             .is_default = pr.is_default,
                             .provision_type = pr.provision_type,
                             .provision_key = pr.provision_key,
                             .firmware_id = pr.firmware_uuid,
                             .software_id = pr.software_uuid,
                             .data = pr.data,
                             .version = 1};
        memcpy(p.uuid, "784f394c-42b6-435a-983c-b7beff2784f9", STORE_UUID_LEN + 1);
        json_t *answer = http__profile_json("784f394c-42b6-435a-983c-b7beff2784f9", &p, false);
        http_profile_req_t again;
        if (http__profile_from_json(answer, &again, msg, sizeof msg) != 0 ||
            strcmp(again.data, pr.data) != 0 || strcmp(again.name, pr.name) != 0 ||
            strcmp(again.provision_type, pr.provision_type) != 0 ||
            !again.provision_key != !pr.provision_key ||
            (pr.provision_key && strcmp(again.provision_key, pr.provision_key) != 0))
            abort();
        http__profile_req_fini(&again);
        json_decref(answer);
        json_decref(http__profile_json("", &p, true));
        http__profile_req_fini(&pr);
    } else if (pr.name || pr.data) {
        abort(); /* a refusal leaves nothing behind */
    }
    json_decref(j);
}

static void device_data(const char *body, size_t len)
{
    json_t *j = http__json_parse(body, len);
    char *text = NULL, msg[300];
    if (http__device_data_from_json(j, &text, msg, sizeof msg) == 0 && text) {
        json_t *back = http__device_data_json(text);
        char *again = NULL;
        if (http__device_data_from_json(back, &again, msg, sizeof msg) != 0 || !again ||
            strcmp(again, text) != 0)
            abort();
        free(again);
        json_decref(back);
    }
    free(text);
    json_decref(j);
}

/* A query value (up to its first NUL, as libmicrohttpd hands it over) through Spring's number
 * and boolean binding: what is accepted is in range and reads back the same when printed. */
static void query_value(const char *p, size_t len)
{
    char *v = malloc(len + 1);
    if (!v)
        return;
    memcpy(v, p, len);
    v[len] = '\0';
    int64_t x;
    if (http__parse_i64(v, INT32_MIN, INT32_MAX, &x) == 0) {
        char again[32];
        int64_t y;
        snprintf(again, sizeof again, "%lld", (long long)x);
        if (x < INT32_MIN || x > INT32_MAX ||
            http__parse_i64(again, INT32_MIN, INT32_MAX, &y) != 0 || y != x)
            abort();
    }
    if (http__parse_i64(v, INT64_MIN, INT64_MAX, &x) == 0 && strlen(v) == 0)
        abort();
    bool b;
    if (http__parse_bool(v, &b) == 0 && strlen(v) > 5)
        abort(); /* the longest form is "false" */
    free(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    if (data[0] >= 0xE0 && data[0] < 0xF0) {
        query_value(body, len);
        return 0;
    }
    same_as_jansson(body, len);
    if (data[0] >= 0xF0) { /* kinds added later, above the old ones' seeds */
        if (data[0] & 1)
            device_data(body, len);
        else
            profile_round_trip(body, len);
        return 0;
    }
    char msg[300];
    store_kv_list_t l = {0};
    switch (data[0] % 5) {
    case 0:
        if (http__telemetry_parse(body, len, 1000, &l, msg, sizeof msg) == 0)
            walk(&l);
        else if (l.n != 0)
            abort();
        break;
    case 1:
        if (http__attributes_parse(body, len, 1000, &l, msg, sizeof msg) == 0)
            walk(&l);
        else if (l.n != 0)
            abort();
        break;
    case 2: {
        json_t *j = http__json_parse(body, len);
        http_cred_req_t c;
        if (http__cred_from_json(j, &c, msg, sizeof msg) == 0) {
            /* A value for certificates and PSKs, none for tokens; an accepted PSK key is
             * lower-case hex the registry can load (LWM2M_CREDENTIALS included). */
            if (!c.cred_id || (c.type != CRED_ACCESS_TOKEN) != (c.cred_value != NULL))
                abort();
            uint8_t key[REGISTRY_PSK_MAX];
            if (c.type == CRED_PSK &&
                (registry_psk_from_hex(c.cred_value, key) <= 0 ||
                 strspn(c.cred_value, "0123456789abcdef") != strlen(c.cred_value)))
                abort();
            http__cred_req_fini(&c);
        }
        json_decref(j);
        break;
    }
    case 3: {
        json_t *j = http__json_parse(body, len);
        http_device_req_t d;
        if (http__device_from_json(j, &d, msg, sizeof msg) == 0) {
            if (!d.name || (d.type && !d.type[0]))
                abort();
            http__device_req_fini(&d);
        }
        json_decref(j);
        break;
    }
    default: {
        http_rpc_req_t r;
        if (http__rpc_parse(body, len, 10000, 5000, 1000, &r, msg, sizeof msg) == 0) {
            /* The minimum timeout applies to "timeout"; an explicit expirationTime in the near
             * future wins, as in ThingsBoard, so only the range is an invariant. */
            if (!r.method || !r.params || r.timeout_ms <= 0 || r.timeout_ms > 86400000)
                abort();
            http__rpc_req_fini(&r);
        }
        break;
    }
    }
    return 0;
}
