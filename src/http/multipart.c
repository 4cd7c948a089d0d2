/* multipart.c — streaming multipart/form-data (RFC 7578, RFC 2046 §5.1.1). See multipart.h.
 *
 *   preamble CRLF? "--" boundary *(SP/HTAB) CRLF
 *   headers CRLF CRLF  body   CRLF "--" boundary *(SP/HTAB) CRLF   ...next part...
 *   ...   CRLF "--" boundary "--"  epilogue
 *
 * The body of a part ends at the first "\r\n--boundary"; boundaries consist of RFC 2046
 * bchars, which exclude CR, so a partial match of the delimiter can only restart at a CR.
 * That makes the search a byte-wise automaton with a single fallback: on a mismatch after k
 * matched bytes, those k bytes (a known prefix of the delimiter) are data, and the current
 * byte either starts a new match (CR) or is data. Data runs between matches are passed on
 * as slices of the caller's buffer, so the common case copies nothing.
 */
#include "http/multipart.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

enum { S_PREAMBLE, S_AFTER, S_AFTER_DASH, S_AFTER_CR, S_HEADERS, S_BODY, S_EPILOGUE };

/* RFC 2046 bchars: DIGIT / ALPHA / "'()+_,-./:=?" and space (not last). */
static bool bchar(char c)
{
    return isalnum((unsigned char)c) || strchr("'()+_,-./:=? ", c) != NULL;
}

/* Value of parameter `name` in a header value "x; a=b; name="v"" into out (quoted strings
 * unescaped). True if present. */
static bool param(const char *v, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    const char *s = strchr(v, ';');
    while (s) {
        s++;
        while (*s == ' ' || *s == '\t')
            s++;
        if (strncasecmp(s, name, nl) == 0 && s[nl] == '=') {
            s += nl + 1;
            size_t n = 0;
            if (*s == '"') {
                for (s++; *s && *s != '"'; s++) {
                    if (*s == '\\' && s[1])
                        s++;
                    if (n + 1 < cap)
                        out[n++] = *s;
                }
            } else {
                for (; *s && *s != ';' && *s != ' ' && *s != '\t'; s++)
                    if (n + 1 < cap)
                        out[n++] = *s;
            }
            out[n] = '\0';
            return true;
        }
        s = strchr(s, ';');
    }
    return false;
}

int http__mp_init(http_mp_t *m, const char *content_type, const http_mp_cbs_t *cbs, void *arg)
{
    memset(m, 0, sizeof *m);
    if (!content_type || strncasecmp(content_type, "multipart/form-data", 19) != 0)
        return -EINVAL;
    char b[HTTP_MP_BOUNDARY_MAX + 2];
    if (!param(content_type, "boundary", b, sizeof b))
        return -EINVAL;
    size_t bl = strlen(b);
    if (bl == 0 || bl > HTTP_MP_BOUNDARY_MAX || b[bl - 1] == ' ')
        return -EINVAL;
    for (size_t i = 0; i < bl; i++)
        if (!bchar(b[i]))
            return -EINVAL;
    m->dlen = (size_t)snprintf(m->delim, sizeof m->delim, "\r\n--%s", b);
    m->cbs = *cbs;
    m->arg = arg;
    m->state = S_PREAMBLE;
    m->mi = 2; /* the body may start with "--boundary": as if a CRLF preceded it */
    return 0;
}

/* Parses one header block (NUL-terminated, CRLF-separated lines) into part. */
static int parse_headers(char *h, http_mp_part_t *part)
{
    memset(part, 0, sizeof *part);
    for (char *line = h; line && *line;) {
        char *end = strstr(line, "\r\n");
        if (end)
            *end = '\0';
        char *colon = strchr(line, ':');
        if (!colon)
            return -EBADMSG;
        *colon = '\0';
        char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        if (strcasecmp(line, "Content-Disposition") == 0) {
            if (strncasecmp(v, "form-data", 9) != 0)
                return -EBADMSG;
            param(v, "name", part->name, sizeof part->name);
            part->has_filename = param(v, "filename", part->filename, sizeof part->filename);
        } else if (strcasecmp(line, "Content-Type") == 0) {
            snprintf(part->content_type, sizeof part->content_type, "%s", v);
        }
        line = end ? end + 2 : NULL;
    }
    return 0;
}

static int emit(http_mp_t *m, const uint8_t *p, size_t n)
{
    if (n == 0 || m->state != S_BODY)
        return 0;
    return m->cbs.part_data ? m->cbs.part_data(m->arg, p, n) : 0;
}

/* The delimiter was found: the part (if any) ends. */
static int delimiter(http_mp_t *m)
{
    int rc = 0;
    if (m->in_part && m->cbs.part_end)
        rc = m->cbs.part_end(m->arg);
    m->in_part = false;
    m->state = S_AFTER;
    m->mi = 0;
    return rc;
}

static int feed(http_mp_t *m, const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        switch (m->state) {
        case S_PREAMBLE:
        case S_BODY: {
            size_t run = i; /* start of data not yet passed on */
            for (; i < n; i++) {
                uint8_t c = p[i];
                if (c == (uint8_t)m->delim[m->mi]) {
                    if (m->mi == 0) {
                        int rc = emit(m, p + run, i - run);
                        if (rc < 0)
                            return rc;
                    }
                    if (++m->mi == m->dlen) {
                        i++;
                        int rc = delimiter(m);
                        if (rc < 0)
                            return rc;
                        break;
                    }
                    continue;
                }
                if (m->mi > 0) {
                    /* The matched bytes were data after all (a known prefix of delim). */
                    int rc = emit(m, (const uint8_t *)m->delim, m->mi);
                    if (rc < 0)
                        return rc;
                    m->mi = c == '\r' ? 1 : 0;
                    run = c == '\r' ? i + 1 : i;
                }
            }
            if (m->state == S_BODY || m->state == S_PREAMBLE) {
                if (m->mi == 0) {
                    int rc = emit(m, p + run, i - run);
                    if (rc < 0)
                        return rc;
                }
            }
            break;
        }
        case S_AFTER: {
            uint8_t c = p[i++];
            if (c == '-')
                m->state = S_AFTER_DASH;
            else if (c == '\r')
                m->state = S_AFTER_CR;
            else if (c != ' ' && c != '\t')
                return -EBADMSG;
            break;
        }
        case S_AFTER_DASH:
            if (p[i++] != '-')
                return -EBADMSG;
            m->state = S_EPILOGUE;
            break;
        case S_AFTER_CR:
            if (p[i++] != '\n')
                return -EBADMSG;
            m->state = S_HEADERS;
            m->hlen = 0;
            break;
        case S_HEADERS: {
            if (m->hlen + 1 >= sizeof m->hdr)
                return -EMSGSIZE;
            m->hdr[m->hlen++] = (char)p[i++];
            m->hdr[m->hlen] = '\0';
            /* The block ends with an empty line: "\r\n" alone, or "\r\n\r\n" after headers. */
            bool empty = m->hlen == 2 && memcmp(m->hdr, "\r\n", 2) == 0;
            if (empty || (m->hlen >= 4 && memcmp(m->hdr + m->hlen - 4, "\r\n\r\n", 4) == 0)) {
                m->hdr[empty ? 0 : m->hlen - 2] = '\0';
                http_mp_part_t part;
                int rc = parse_headers(m->hdr, &part);
                if (rc < 0)
                    return rc;
                m->state = S_BODY;
                m->mi = 0;
                m->in_part = true;
                if (m->cbs.part_begin && (rc = m->cbs.part_begin(m->arg, &part)) < 0)
                    return rc;
            }
            break;
        }
        case S_EPILOGUE:
            return 0;
        }
    }
    return 0;
}

int http__mp_feed(http_mp_t *m, const uint8_t *p, size_t n)
{
    if (m->err)
        return m->err;
    int rc = feed(m, p, n);
    if (rc < 0)
        m->err = rc;
    return rc;
}

int http__mp_finish(http_mp_t *m)
{
    if (m->err)
        return m->err;
    return m->state == S_EPILOGUE ? 0 : -EBADMSG;
}
