/* hostlimits.c -- parsing PIXFLOW_HOST_LIMITS: `HOST:key=value,...;...` with `*` for any host. */
#include "hostlimits.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void hostlimits_defaults(struct host_limit *l, const char *host, size_t len)
{
    memcpy(l->host, host, len);
    l->host[len] = '\0';
    for (size_t i = 0; i < len; i++)
        l->host[i] = (char)tolower((unsigned char)l->host[i]);
    l->rate = HOST_RATE_DEFAULT;
    l->burst = HOST_BURST_DEFAULT;
    l->inflight = HOST_INFLIGHT_DEFAULT;
}

/* One "key=value" of an entry into l. */
static int hostlimits_key(struct host_limit *l, const char *kv, size_t len, char *err,
                          size_t errlen)
{
    char buf[64];
    const char *eq = memchr(kv, '=', len);
    if (eq == NULL || len >= sizeof(buf)) {
        snprintf(err, errlen, "'%.*s' for host '%s' is not KEY=VALUE", (int)(len > 40 ? 40 : len),
                 kv, l->host);
        return -1;
    }
    size_t klen = (size_t)(eq - kv);
    memcpy(buf, eq + 1, len - klen - 1);
    buf[len - klen - 1] = '\0';
    char *end;
    errno = 0;
    double v = strtod(buf, &end);
    int bad = buf[0] == '\0' || *end != '\0' || errno != 0 || v != v;
    if (klen == 4 && strncmp(kv, "rate", 4) == 0) {
        if (bad || v <= 0 || v > HOST_RATE_MAX) {
            snprintf(err, errlen, "rate '%s' for host '%s' must be a number above 0, at most %.0f",
                     buf, l->host, HOST_RATE_MAX);
            return -1;
        }
        l->rate = v;
    } else if ((klen == 5 && strncmp(kv, "burst", 5) == 0) ||
               (klen == 8 && strncmp(kv, "inflight", 8) == 0)) {
        long max = klen == 5 ? HOST_BURST_MAX : HOST_INFLIGHT_MAX;
        if (bad || v != (double)(long)v || v < 1 || v > (double)max) {
            snprintf(err, errlen, "%.*s '%s' for host '%s' must be a whole number 1..%ld",
                     (int)klen, kv, buf, l->host, max);
            return -1;
        }
        *(klen == 5 ? &l->burst : &l->inflight) = (long)v;
    } else {
        snprintf(err, errlen, "unknown key '%.*s' for host '%s' (rate, burst, inflight)",
                 (int)(klen > 40 ? 40 : klen), kv, l->host);
        return -1;
    }
    return 0;
}

/* One "HOST:key=value,..." entry. */
static int hostlimits_entry(struct host_limits *out, const char *p, size_t len, char *err,
                            size_t errlen)
{
    const char *colon = memchr(p, ':', len);
    size_t hlen = colon ? (size_t)(colon - p) : len;
    if (colon == NULL || hlen == 0 || hlen > URL_HOST_MAX) {
        snprintf(err, errlen, "'%.*s' is not HOST:rate=R,burst=B,inflight=N",
                 (int)(len > 60 ? 60 : len), p);
        return -1;
    }
    for (size_t i = 0; i < hlen; i++) {
        unsigned char c = (unsigned char)p[i];
        if (!(isalnum(c) || c == '.' || c == '-' || (c == '*' && hlen == 1))) {
            snprintf(err, errlen, "'%.*s' is not a host name", (int)hlen, p);
            return -1;
        }
    }
    struct host_limit l;
    hostlimits_defaults(&l, p, hlen);
    int any = strcmp(l.host, "*") == 0;
    if (!any) {
        for (int i = 0; i < out->count; i++)
            if (strcmp(out->hosts[i].host, l.host) == 0) {
                snprintf(err, errlen, "host '%s' is named twice", l.host);
                return -1;
            }
        if (out->count == HOST_LIMITS_MAX) {
            snprintf(err, errlen, "more than %d hosts", HOST_LIMITS_MAX);
            return -1;
        }
    }
    const char *k = colon + 1, *end = p + len;
    while (k < end) {
        const char *comma = memchr(k, ',', (size_t)(end - k));
        const char *kend = comma ? comma : end;
        if (hostlimits_key(&l, k, (size_t)(kend - k), err, errlen) < 0)
            return -1;
        k = kend + 1;
    }
    if (any)
        out->any = l;
    else
        out->hosts[out->count++] = l;
    return 0;
}

int host_limits_parse(const char *text, struct host_limits *out, char *err, size_t errlen)
{
    struct host_limits l;
    memset(&l, 0, sizeof(l));
    hostlimits_defaults(&l.any, "*", 1);
    if (strcasecmp(text, "off") == 0) {
        l.off = 1;
        *out = l;
        return 0;
    }
    const char *p = text;
    while (*p) {
        while (*p == ' ')
            p++;
        const char *semi = strchr(p, ';');
        size_t len = semi ? (size_t)(semi - p) : strlen(p);
        while (len > 0 && p[len - 1] == ' ')
            len--;
        if (len > 0 && hostlimits_entry(&l, p, len, err, errlen) < 0)
            return -1;
        if (semi == NULL)
            break;
        p = semi + 1;
    }
    *out = l;
    return 0;
}

const struct host_limit *host_limits_for(const struct host_limits *l, const char *host)
{
    for (int i = 0; i < l->count; i++)
        if (strcasecmp(l->hosts[i].host, host) == 0)
            return &l->hosts[i];
    return &l->any;
}
