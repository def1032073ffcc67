/* pconf.c -- config strings of the bundled plugins: typed keys, one clear message per mistake.
 * Numbers are parsed by hand rather than with strtoul()/strtod(): those accept signs, spaces,
 * hexadecimal, exponents and the locale's decimal point, none of which a config should mean. */
#include "pconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pixflow/plugin.h>

#define PCONF_SHOWN 40 /* characters of a bad value or pair quoted in a message */

/* Digits only, no sign, at most max; -1 otherwise. */
static int pconf_digits(const char *s, size_t len, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;

    if (len == 0)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
        if (v > max)
            return -1;
    }
    *out = v;
    return 0;
}

static int pconf_uint(const char *s, size_t len, uint32_t *out)
{
    uint64_t v;

    if (pconf_digits(s, len, UINT32_MAX, &v) < 0)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

/* "12", "12.5", "0.125", ".5" -> thousandths; more than 3 decimals is refused, not rounded. */
static int pconf_milli(const char *s, size_t len, uint32_t *out)
{
    const char *dot = memchr(s, '.', len);
    size_t ilen = dot != NULL ? (size_t)(dot - s) : len;
    size_t flen = dot != NULL ? len - ilen - 1 : 0;
    uint64_t whole = 0, frac = 0;

    if (dot != NULL && (flen == 0 || flen > 3))
        return -1;
    if (ilen == 0 && dot == NULL)
        return -1;
    if (ilen > 0 && pconf_digits(s, ilen, UINT32_MAX / 1000, &whole) < 0)
        return -1;
    if (flen > 0 && pconf_digits(dot + 1, flen, 999, &frac) < 0)
        return -1;
    for (size_t i = flen; i < 3; i++)
        frac *= 10;
    if (whole * 1000 + frac > UINT32_MAX)
        return -1;
    *out = (uint32_t)(whole * 1000 + frac);
    return 0;
}

/* "1.5" for 1500: a PCONF_MILLI value as a config would write it. */
static void pconf_milli_format(uint32_t milli, char *buf, size_t len)
{
    if (milli % 1000 == 0)
        snprintf(buf, len, "%u", (unsigned)(milli / 1000));
    else if (milli % 100 == 0)
        snprintf(buf, len, "%u.%u", (unsigned)(milli / 1000), (unsigned)(milli % 1000 / 100));
    else if (milli % 10 == 0)
        snprintf(buf, len, "%u.%02u", (unsigned)(milli / 1000), (unsigned)(milli % 1000 / 10));
    else
        snprintf(buf, len, "%u.%03u", (unsigned)(milli / 1000), (unsigned)(milli % 1000));
}

/* "fill, contain or cover" */
static void pconf_choices(const char *const *c, char *buf, size_t len)
{
    size_t pos = 0, n = 0;

    buf[0] = '\0';
    while (c[n] != NULL)
        n++;
    for (size_t i = 0; i < n && pos < len; i++)
        pos += (size_t)snprintf(buf + pos, len - pos, "%s%s",
                                i == 0      ? ""
                                : i + 1 < n ? ", "
                                            : " or ",
                                c[i]);
}

/* "width, height, fit" */
static void pconf_names(const struct pconf_key *keys, size_t n, char *buf, size_t len)
{
    size_t pos = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < n && pos < len; i++)
        pos += (size_t)snprintf(buf + pos, len - pos, "%s%s", i ? ", " : "", keys[i].name);
}

static int pconf_value(struct pconf_key *k, const char *v, size_t vlen, char *err, size_t errlen)
{
    char lo[16], hi[16], list[128];
    int shown = vlen > PCONF_SHOWN ? PCONF_SHOWN : (int)vlen;
    uint32_t x = 0;

    switch (k->type) {
    case PCONF_UINT:
        if (pconf_uint(v, vlen, &x) == 0 && x >= k->min && x <= k->max)
            break;
        snprintf(err, errlen, "%s must be an integer from %u to %u, got \"%.*s\"", k->name,
                 (unsigned)k->min, (unsigned)k->max, shown, v);
        return -1;
    case PCONF_MILLI:
        if (pconf_milli(v, vlen, &x) == 0 && x >= k->min && x <= k->max)
            break;
        pconf_milli_format(k->min, lo, sizeof(lo));
        pconf_milli_format(k->max, hi, sizeof(hi));
        snprintf(err, errlen,
                 "%s must be a number from %s to %s (at most 3 decimals), got \"%.*s\"", k->name,
                 lo, hi, shown, v);
        return -1;
    case PCONF_CHOICE:
        for (x = 0; k->choices[x] != NULL; x++)
            if (strlen(k->choices[x]) == vlen && memcmp(k->choices[x], v, vlen) == 0)
                break;
        if (k->choices[x] != NULL)
            break;
        pconf_choices(k->choices, list, sizeof(list));
        snprintf(err, errlen, "%s must be %s, got \"%.*s\"", k->name, list, shown, v);
        return -1;
    }
    k->value = x;
    return 0;
}

/* The pair pixflow_config_next() refused: from start, spaces skipped, to the next ';'. */
static void pconf_malformed(const char *start, char *err, size_t errlen)
{
    size_t len;

    start += strspn(start, " \t");
    len = strcspn(start, ";");
    snprintf(err, errlen, "malformed option \"%.*s\" (want key=value)",
             (int)(len > PCONF_SHOWN ? PCONF_SHOWN : len), start);
}

int pconf_parse(const char *config, struct pconf_key *keys, size_t n, char *err, size_t errlen)
{
    const char *cursor = config, *key, *value;
    size_t klen, vlen;
    char names[256];
    int rc;

    for (size_t i = 0; i < n; i++)
        keys[i].seen = 0;
    for (;;) {
        const char *start = cursor;
        struct pconf_key *k = NULL;

        rc = pixflow_config_next(&cursor, &key, &klen, &value, &vlen);
        if (rc == 0)
            return 0;
        if (n == 0) {
            snprintf(err, errlen, "takes no options, got \"%.*s\"", PCONF_SHOWN, config);
            return -1;
        }
        if (rc < 0) {
            pconf_malformed(start, err, errlen);
            return -1;
        }
        for (size_t i = 0; i < n && k == NULL; i++)
            if (strlen(keys[i].name) == klen && memcmp(keys[i].name, key, klen) == 0)
                k = &keys[i];
        if (k == NULL) {
            pconf_names(keys, n, names, sizeof(names));
            snprintf(err, errlen, "unknown option \"%.*s\" (options: %s)",
                     (int)(klen > PCONF_SHOWN ? PCONF_SHOWN : klen), key, names);
            return -1;
        }
        if (k->seen) {
            snprintf(err, errlen, "option %s given twice", k->name);
            return -1;
        }
        if (vlen == 0) {
            snprintf(err, errlen, "option %s has no value", k->name);
            return -1;
        }
        if (pconf_value(k, value, vlen, err, errlen) < 0)
            return -1;
        k->seen = 1;
    }
}

void *pconf_state(size_t size, char *err, size_t errlen)
{
    void *state = calloc(1, size);
    if (state == NULL)
        snprintf(err, errlen, "out of memory");
    return state;
}
