/* payload.c — client-side RPC, RPC reply and claim bodies (spec §3.6–§3.8). See payload.h.
 *
 * These read fields as ThingsBoard's transport does (JsonElement.getAsString for method and
 * secretKey, getAsLong for durationMs); the value typing of §5 does not apply to them.
 */
#include "uplink/payload.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct ctx {
    arena_t *arena;
    const values_cfg_t *cfg;
    char *err;
    size_t err_cap;
} ctx_t;

/* Every reason here is a constant: the body's own text never reaches the log. */
static int bad(ctx_t *c, const char *why)
{
    if (c->err && c->err_cap)
        snprintf(c->err, c->err_cap, "%s", why);
    return -EBADMSG;
}

static values_json_t *parse(ctx_t *c, const uint8_t *p, size_t len)
{
    return values_parse(c->arena, c->cfg, p, len, c->err, c->err_cap);
}

/* JsonElement.getAsString for a primitive (numbers as written); NULL otherwise. The text is
 * the tree's (arena) or a literal. */
static const char *primitive_text(const values_json_t *v)
{
    switch (v->kind) {
    case VALUES_JSON_BOOL:
        return v->b ? "true" : "false";
    case VALUES_JSON_NUMBER:
        return v->text;
    case VALUES_JSON_STRING:
        return memchr(v->text, '\0', v->len) ? NULL : v->text;
    default:
        return NULL;
    }
}

int uplink_payload_client_rpc(arena_t *arena, const values_cfg_t *cfg, const uint8_t *p, size_t len,
                              const char **method, const char **params, char *err, size_t err_cap)
{
    ctx_t c = {arena, cfg, err, err_cap};
    *method = *params = NULL;
    values_json_t *root = parse(&c, p, len);
    if (!root)
        return -EBADMSG;
    int rc = 0;
    const values_json_t *m = values_json_get(root, "method");
    if (root->kind != VALUES_JSON_OBJECT) {
        rc = bad(&c, "RPC request must be a JSON object");
    } else if (!m || !(*method = primitive_text(m))) {
        rc = bad(&c, "RPC request has no valid 'method'");
    } else {
        const values_json_t *pa = values_json_get(root, "params");
        *params = pa ? values_json_compact_arena(c.arena, pa) : "null";
    }
    if (rc < 0)
        *method = NULL;
    return rc;
}

int uplink_payload_rpc_reply(arena_t *arena, const values_cfg_t *cfg, const uint8_t *p, size_t len,
                             const char **compact, char *err, size_t err_cap)
{
    ctx_t c = {arena, cfg, err, err_cap};
    *compact = NULL;
    values_json_t *root = parse(&c, p, len);
    if (!root)
        return -EBADMSG;
    int rc = 0;
    if (root->kind == VALUES_JSON_OBJECT)
        *compact = values_json_compact_arena(c.arena, root);
    else
        rc = bad(&c, "RPC reply must be a JSON object");
    return rc;
}

int uplink_payload_claim(arena_t *arena, const values_cfg_t *cfg, const uint8_t *p, size_t len,
                         const char **secret, int64_t *duration_ms, char *err, size_t err_cap)
{
    ctx_t c = {arena, cfg, err, err_cap};
    *secret = NULL;
    *duration_ms = 0;
    if (len == 0) {
        *secret = "";
        return 0;
    }
    values_json_t *root = parse(&c, p, len);
    if (!root)
        return -EBADMSG;
    int rc = 0;
    const values_json_t *sk = values_json_get(root, "secretKey");
    const values_json_t *du = values_json_get(root, "durationMs");
    if (sk && !(*secret = primitive_text(sk)))
        rc = bad(&c, "'secretKey' is not a string");
    if (rc == 0 && du && values_json_as_long(du, duration_ms) < 0)
        rc = bad(&c, "'durationMs' is not a valid long");
    if (rc == 0 && !*secret)
        *secret = "";
    if (rc < 0)
        *secret = NULL;
    return rc;
}
