/* keys.c — which member names repeat: the one index behind three rules. See values_int.h.
 *
 * Gson keeps the last value of a repeated name (lenient typing skips the earlier ones),
 * jansson refused the document (strict reading), and a JSON object we write names each key
 * once (the writer groups points and attributes by key). All three ask the same question,
 * "where did this name first occur?", answered here in one pass over an open-addressing table
 * of member indexes.
 *
 * The names come from whoever sends the payload, so they are hashed with core's keyed hash:
 * nobody can build a body whose names all land in one probe run. The table is not core/htab
 * because it lives one request in the parse arena (sized 2n, no growth, no malloc on the
 * datagram path); it is an index of positions, not a table of objects.
 */
#include "values/values_int.h"

#include "core/hash.h"

#include <string.h>

/* Up to this many members, comparing each name with the earlier ones costs less than hashing
 * each (a device's telemetry object usually has a handful of keys); beyond it the table keeps
 * the work linear. */
#define KEYS_LINEAR_MAX 8

size_t values__key_slots(size_t n)
{
    /* Also for a few keys, compared pairwise without the table: callers reuse the scratch as
     * an array of n entries afterwards (body.c, render.c). */
    size_t cap = 16;
    while (cap < n * 2)
        cap *= 2;
    return cap;
}

void values__key_first(char *const *keys, const size_t *lens, size_t n, size_t *first,
                       size_t *slots)
{
    if (n <= KEYS_LINEAR_MAX) {
        for (size_t i = 0; i < n; i++) {
            first[i] = i;
            for (size_t o = 0; o < i; o++) {
                if (lens[o] == lens[i] && memcmp(keys[o], keys[i], lens[i]) == 0) {
                    first[i] = first[o];
                    break;
                }
            }
        }
        return;
    }
    size_t mask = values__key_slots(n) - 1;
    for (size_t i = 0; i < n; i++) {
        uint64_t h = hash_bytes(keys[i], lens[i]);
        for (size_t j = h & mask;; j = (j + 1) & mask) {
            if (slots[j] == 0) { /* slots hold member index + 1; 0 = empty */
                slots[j] = i + 1;
                first[i] = i;
                break;
            }
            size_t o = slots[j] - 1;
            if (lens[o] == lens[i] && memcmp(keys[o], keys[i], lens[i]) == 0) {
                first[i] = o;
                break;
            }
        }
    }
}
