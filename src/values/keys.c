/* keys.c — which member names repeat: the one index behind three rules. See values_int.h.
 *
 * Gson keeps the last value of a repeated name (lenient typing skips the earlier ones),
 * jansson refused the document (strict reading), and a JSON object we write names each key
 * once (the writer groups points and attributes by key). All three ask the same question,
 * "where did this name first occur?", answered here in one pass over an open-addressing table
 * of member indexes.
 *
 * The hash is FNV-1a, unkeyed, as it was in the device typing this came from: a payload built
 * to collide costs quadratic time in its member count, bounded by the body cap. Issue #12
 * gives core one keyed hash; this table should take it when that lands.
 */
#include "values/values_int.h"

#include <string.h>

size_t values__key_slots(size_t n)
{
    size_t cap = 16;
    while (cap < n * 2)
        cap *= 2;
    return cap;
}

void values__key_first(char *const *keys, const size_t *lens, size_t n, size_t *first,
                       size_t *slots)
{
    size_t mask = values__key_slots(n) - 1;
    for (size_t i = 0; i < n; i++) {
        uint64_t h = 1469598103934665603ULL;
        for (size_t k = 0; k < lens[i]; k++)
            h = (h ^ (unsigned char)keys[i][k]) * 1099511628211ULL;
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
