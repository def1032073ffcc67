/* url.c -- catalog line -> normalized picsum URL, or the reason it is not one.
 *
 * Deliberately a hand-written scanner rather than a general URL library: the accepted language
 * is tiny (SPEC §4), every rejection needs a precise reason, and the input is hostile (1 MB
 * lines, NUL bytes, invalid UTF-8). Checks run cheapest first. */
#include "url.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define URL_SIZE_MAX 5000

static const char *const url_reason_names[URL_REASON_COUNT] = {
    "ok",       "empty",    "too_long", "not_utf8", "bad_char", "bad_scheme",
    "userinfo", "bad_host", "bad_port", "bad_path", "bad_size",
};

const char *url_reason_name(enum url_reason r)
{
    return (r >= 0 && r < URL_REASON_COUNT) ? url_reason_names[r] : "unknown";
}

static int url_host_char(unsigned char c)
{
    return isalnum(c) || c == '-' || c == '.';
}

/* Host names only: letters, digits, hyphens, non-empty labels of at most 63. */
static int url_host_valid(const char *h, size_t len)
{
    size_t label = 0;
    int alpha = 0;
    if (len == 0 || len > URL_HOST_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)h[i];
        if (!url_host_char(c))
            return 0;
        if (c == '.') {
            if (label == 0)
                return 0;
            label = 0;
            continue;
        }
        if (isalpha(c))
            alpha = 1;
        if (++label > 63)
            return 0;
    }
    /* A name made of digits and dots is an IPv4 literal in some notation: never a picsum host. */
    return label > 0 && alpha;
}

int url_hosts_parse(const char *list, struct url_hosts *out, char *err, size_t errlen)
{
    out->count = 0;
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        size_t n = strcspn(p, ", \t");
        if (n == 0)
            break;
        if (!url_host_valid(p, n)) {
            snprintf(err, errlen, "'%.*s' is not a host name", (int)(n > 64 ? 64 : n), p);
            return -1;
        }
        if (out->count == URL_HOSTS_MAX) {
            snprintf(err, errlen, "more than %d hosts", URL_HOSTS_MAX);
            return -1;
        }
        for (size_t i = 0; i < n; i++)
            out->name[out->count][i] = (char)tolower((unsigned char)p[i]);
        out->name[out->count][n] = '\0';
        out->count++;
        p += n;
    }
    if (out->count == 0) {
        snprintf(err, errlen, "no host given");
        return -1;
    }
    return 0;
}

int url_host_allowed(const struct url_hosts *hosts, const char *host, size_t len)
{
    for (int i = 0; i < hosts->count; i++)
        if (strlen(hosts->name[i]) == len && strncasecmp(hosts->name[i], host, len) == 0)
            return 1;
    return 0;
}

/* Strict UTF-8: no overlongs, no surrogates, nothing above U+10FFFF. */
static int url_utf8_valid(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        size_t need;
        unsigned min;
        if (c == 0) {
            return 0; /* NUL never belongs to a text line: the catalog is binary or corrupt */
        } else if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            need = 1, min = 0x80;
        } else if (c >= 0xe0 && c <= 0xef) {
            need = 2, min = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3, min = 0x10000;
        } else {
            return 0;
        }
        if (len - i <= need)
            return 0;
        unsigned cp = c & (0x3f >> need);
        for (size_t k = 1; k <= need; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += need + 1;
    }
    return 1;
}

/* RFC 3986: unreserved, reserved and '%'. Everything else never appears in a URL. */
static int url_char_valid(unsigned char c)
{
    return isalnum(c) || (c && strchr("-._~:/?#[]@!$&'()*+,;=%", c) != NULL);
}

static int url_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

static int url_hexval(unsigned char c)
{
    if (isdigit(c))
        return c - '0';
    c = (unsigned char)tolower(c);
    return (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
}

/* Scheme, user-info, host and port of an absolute URL of `len` bytes. On success *rest points
 * just past the authority (at '/', '?' or the end). */
static enum url_reason url_parse_authority(const char *s, size_t len, const struct url_hosts *hosts,
                                           struct url *u, const char **rest)
{
    const char *end = s + len, *sep = memmem(s, len, "://", 3);
    if (sep == NULL)
        return URL_BAD_SCHEME;
    size_t slen = (size_t)(sep - s);
    if (slen == 5 && strncasecmp(s, "https", 5) == 0)
        u->https = 1;
    else if (slen == 4 && strncasecmp(s, "http", 4) == 0)
        u->https = 0;
    else
        return URL_BAD_SCHEME;

    const char *auth = sep + 3, *aend = auth;
    while (aend < end && *aend != '/' && *aend != '?' && *aend != '#')
        aend++;
    if (memchr(auth, '@', (size_t)(aend - auth)))
        return URL_HAS_USERINFO;
    if (auth < aend && *auth == '[')
        return URL_BAD_HOST; /* IPv6 literal */

    const char *colon = memchr(auth, ':', (size_t)(aend - auth));
    const char *hend = colon ? colon : aend;
    size_t hlen = (size_t)(hend - auth);
    if (!url_host_valid(auth, hlen) || !url_host_allowed(hosts, auth, hlen))
        return URL_BAD_HOST;
    for (size_t i = 0; i < hlen; i++)
        u->host[i] = (char)tolower((unsigned char)auth[i]);
    u->host[hlen] = '\0';

    u->port = 0;
    if (colon && colon + 1 < aend) {
        long port = 0;
        for (const char *p = colon + 1; p < aend; p++) {
            if (!isdigit((unsigned char)*p) || p - colon > 5)
                return URL_BAD_PORT;
            port = port * 10 + (*p - '0');
        }
        if (port < 1 || port > 65535)
            return URL_BAD_PORT;
        if (port != (u->https ? 443 : 80))
            u->port = (int)port;
    }
    *rest = aend;
    return URL_OK;
}

static char *url_put(char *dst, const char *src, size_t n)
{
    memcpy(dst, src, n);
    return dst + n;
}

/* Decimal digits of 0 <= v < 100000 (sizes and ports). */
static char *url_put_int(char *dst, int v)
{
    char tmp[8];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v && n < (int)sizeof(tmp));
    while (n)
        *dst++ = tmp[--n];
    return dst;
}

/* Digits of a size, leading zeros allowed; *out is 0 when out of range. */
static const char *url_size(const char *p, const char *end, int *out)
{
    long v = 0;
    const char *start = p;
    while (p < end && isdigit((unsigned char)*p)) {
        if (v <= URL_SIZE_MAX)
            v = v * 10 + (*p - '0');
        p++;
    }
    if (p == start)
        return NULL;
    *out = (v >= 1 && v <= URL_SIZE_MAX) ? (int)v : 0;
    return p;
}

/* Path "/W[/H][.jpg][/]" after decoding %XX of unreserved characters (RFC 3986 §6.2.2.2). */
static enum url_reason url_parse_path(const char *p, const char *end, struct url *u, char *path,
                                      size_t *plen)
{
    char dec[64];
    size_t n = 0;
    for (; p < end; p++) {
        char c = *p;
        if (c == '%') {
            int hi = end - p > 2 ? url_hexval((unsigned char)p[1]) : -1;
            int lo = hi >= 0 ? url_hexval((unsigned char)p[2]) : -1;
            if (lo < 0)
                return URL_BAD_PATH;
            c = (char)(hi * 16 + lo);
            if (!isalnum((unsigned char)c) && !strchr("-._~", c))
                return URL_BAD_PATH;
            p += 2;
        }
        if (n == sizeof(dec))
            return URL_BAD_PATH;
        dec[n++] = c;
    }
    if (n > 1 && dec[n - 1] == '/')
        n--;
    int jpg = n > 4 && strncasecmp(dec + n - 4, ".jpg", 4) == 0;
    if (jpg)
        n -= 4;

    const char *q = dec, *dend = dec + n;
    if (q == dend || *q++ != '/')
        return URL_BAD_PATH;
    q = url_size(q, dend, &u->width);
    if (q == NULL)
        return URL_BAD_PATH;
    int square = q == dend;
    u->height = u->width;
    if (!square) {
        if (*q++ != '/')
            return URL_BAD_PATH;
        q = url_size(q, dend, &u->height);
        if (q == NULL || q != dend)
            return URL_BAD_PATH;
    }
    if (u->width == 0 || u->height == 0)
        return URL_BAD_SIZE;

    /* Canonical digits: no leading zeros, so /0200/300 and /200/300 are one URL. */
    char *w = path;
    *w++ = '/';
    w = url_put_int(w, u->width);
    if (!square) {
        *w++ = '/';
        w = url_put_int(w, u->height);
    }
    if (jpg)
        w = url_put(w, ".jpg", 4);
    *plen = (size_t)(w - path);
    return URL_OK;
}

enum url_reason url_parse(const char *line, size_t len, const struct url_hosts *hosts,
                          struct url *u)
{
    /* A UTF-8 byte order mark (what some editors put first in a file) counts as whitespace. */
    if (len >= 3 && memcmp(line, "\xef\xbb\xbf", 3) == 0)
        line += 3, len -= 3;
    while (len && url_space((unsigned char)*line))
        line++, len--;
    while (len && url_space((unsigned char)line[len - 1]))
        len--;
    if (len == 0)
        return URL_EMPTY;
    if (len > URL_MAX)
        return URL_TOO_LONG;
    if (!url_utf8_valid((const unsigned char *)line, len))
        return URL_NOT_UTF8;
    for (size_t i = 0; i < len; i++)
        if (!url_char_valid((unsigned char)line[i]))
            return URL_BAD_CHAR;

    const char *hash = memchr(line, '#', len);
    if (hash)
        len = (size_t)(hash - line);

    const char *end = line + len, *rest;
    enum url_reason r = url_parse_authority(line, len, hosts, u, &rest);
    if (r != URL_OK)
        return r;

    const char *qmark = memchr(rest, '?', (size_t)(end - rest));
    const char *pend = qmark ? qmark : end;
    char path[64];
    size_t plen;
    r = url_parse_path(rest, pend, u, path, &plen);
    if (r != URL_OK)
        return r;

    size_t qlen = qmark ? (size_t)(end - qmark) : 0;
    if (qlen == 1)
        qlen = 0; /* a bare '?' says nothing */
    size_t hlen = strlen(u->host);
    char port[8];
    size_t portlen = u->port ? (size_t)(url_put_int(port + 1, u->port) - port) : 0;
    port[0] = ':';
    if ((u->https ? 8 : 7) + hlen + portlen + plen + qlen >= sizeof(u->norm))
        return URL_TOO_LONG; /* not reached: the normal form is never longer than the line */
    char *w = u->https ? url_put(u->norm, "https://", 8) : url_put(u->norm, "http://", 7);
    w = url_put(w, u->host, hlen);
    w = url_put(w, port, portlen);
    w = url_put(w, path, plen);
    w = url_put(w, qmark ? qmark : "", qlen);
    *w = '\0';
    return URL_OK;
}

enum url_reason url_check_hop(const char *location, const struct url_hosts *hosts)
{
    struct url u;
    const char *rest;
    size_t len = strlen(location);
    if (len > URL_MAX)
        return URL_TOO_LONG;
    for (size_t i = 0; i < len; i++)
        if (!url_char_valid((unsigned char)location[i]))
            return URL_BAD_CHAR;
    return url_parse_authority(location, len, hosts, &u, &rest);
}
