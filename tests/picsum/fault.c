/* fault.c -- parsing of fault parameters and rates, and the global fault draw. Pure: the HTTP side
 * (serve.c) decides what each fault looks like on the wire. */
#include "fault.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"

static const char *const fault_names[FAULT_KIND_MAX] = {
    [FAULT_NONE] = "none",         [FAULT_500] = "500",           [FAULT_502] = "502",
    [FAULT_503] = "503",           [FAULT_429] = "429",           [FAULT_404] = "404",
    [FAULT_LOOP] = "loop",         [FAULT_REDIRECT] = "redirect", [FAULT_TRUNCATE] = "truncate",
    [FAULT_SLOW] = "slow",         [FAULT_GARBAGE] = "garbage",   [FAULT_BOMB] = "bomb",
    [FAULT_NOTIMAGE] = "notimage",
};

const char *fault_name(enum fault_kind k)
{
    if ((unsigned)k >= FAULT_KIND_MAX)
        return "none";
    return fault_names[k];
}

int fault_kind_parse(const char *name, enum fault_kind *out)
{
    for (int k = FAULT_NONE + 1; k < FAULT_KIND_MAX; k++) {
        if (strcmp(name, fault_names[k]) == 0) {
            *out = (enum fault_kind)k;
            return 0;
        }
    }
    return -1;
}

int fault_on_body(enum fault_kind k)
{
    return k >= FAULT_TRUNCATE && k < FAULT_KIND_MAX;
}

static int fault_parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    long v;

    if (*s == '\0')
        return -1;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int fault_has_ctl(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 1;
    return 0;
}

static void fault_reset(struct fault *f)
{
    f->kind = FAULT_NONE;
    f->retry_after = FAULT_DEFAULT_RETRY_AFTER;
    f->delay_ms = FAULT_DEFAULT_DELAY_MS;
    f->bytes_per_s = 0;
    f->times = FAULT_TIMES_UNLIMITED;
    f->hop = 0;
    f->to[0] = '\0';
}

/* Apply one fault parameter. 1 if the key is a fault parameter, 0 if not, -1 if its value is bad.
 */
static int fault_apply_param(struct fault *f, const struct query_param *p, char *err, size_t errlen)
{
    long v;

    if (strcmp(p->key, "fault") == 0) {
        if (fault_kind_parse(p->value, &f->kind) < 0) {
            snprintf(err, errlen, "unknown fault '%s'", p->value);
            return -1;
        }
        return 1;
    }
    if (strcmp(p->key, "retry_after") == 0) {
        if (fault_parse_long(p->value, 0, 86400, &v) < 0)
            goto bad;
        f->retry_after = (int)v;
        return 1;
    }
    if (strcmp(p->key, "delay_ms") == 0) {
        if (fault_parse_long(p->value, 0, FAULT_DELAY_MAX_MS, &v) < 0)
            goto bad;
        f->delay_ms = (int)v;
        return 1;
    }
    if (strcmp(p->key, "bytes_per_s") == 0) {
        if (fault_parse_long(p->value, 1, FAULT_BYTES_PER_S_MAX, &v) < 0) {
            snprintf(err, errlen, "invalid bytes_per_s '%.32s' (a whole number, 1..%ld)", p->value,
                     FAULT_BYTES_PER_S_MAX);
            return -1;
        }
        f->bytes_per_s = v;
        return 1;
    }
    if (strcmp(p->key, "times") == 0) {
        if (fault_parse_long(p->value, 0, 1000000000L, &v) < 0)
            goto bad;
        f->times = v;
        return 1;
    }
    if (strcmp(p->key, "hop") == 0) {
        if (fault_parse_long(p->value, 0, 1000000000L, &v) < 0)
            goto bad;
        f->hop = (int)v;
        return 1;
    }
    if (strcmp(p->key, "to") == 0) {
        if (fault_has_ctl(p->value))
            goto bad;
        memcpy(f->to, p->value, sizeof(f->to));
        return 1;
    }
    return 0;
bad:
    snprintf(err, errlen, "invalid %s", p->key);
    return -1;
}

int fault_parse_query(const char *query, struct fault *f, char *kept, size_t keptlen, char *err,
                      size_t errlen)
{
    const char *cursor = query;
    struct query_param p;
    int rc, delay_given = 0;

    fault_reset(f);
    if (keptlen > 0)
        kept[0] = '\0';
    for (;;) {
        rc = query_next(&cursor, &p);
        if (rc == 0)
            break;
        if (rc < 0) {
            snprintf(err, errlen, "malformed query");
            return -1;
        }
        rc = fault_apply_param(f, &p, err, errlen);
        if (rc < 0)
            return -1;
        if (rc > 0 && strcmp(p.key, "delay_ms") == 0)
            delay_given = 1;
        if (rc == 0 && query_append(kept, keptlen, p.raw, p.rawlen) < 0) {
            snprintf(err, errlen, "query too long");
            return -1;
        }
    }
    if (f->kind == FAULT_REDIRECT && f->to[0] == '\0') {
        snprintf(err, errlen, "fault=redirect needs to=URL");
        return -1;
    }
    if (delay_given && f->bytes_per_s > 0) {
        snprintf(err, errlen, "delay_ms and bytes_per_s exclude each other");
        return -1;
    }
    return 0;
}

int fault_carry(const struct fault *f, char *out, size_t outlen)
{
    int n;

    if (!fault_on_body(f->kind))
        n = snprintf(out, outlen, "%s", "");
    else if (f->kind == FAULT_SLOW && f->bytes_per_s > 0)
        n = snprintf(out, outlen, "fault=slow&bytes_per_s=%ld", f->bytes_per_s);
    else if (f->kind == FAULT_SLOW)
        n = snprintf(out, outlen, "fault=slow&delay_ms=%d", f->delay_ms);
    else
        n = snprintf(out, outlen, "fault=%s", fault_name(f->kind));
    return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

int fault_rate_parse(const char *s, double *rate)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !isfinite(v) || v < 0.0 || v > 1.0)
        return -1;
    *rate = v;
    return 0;
}

int fault_parse_rate(const char *arg, enum fault_kind *kind, double *rate, char *err, size_t errlen)
{
    const char *eq = strchr(arg, '=');
    char name[32];

    if (eq == NULL || (size_t)(eq - arg) >= sizeof(name)) {
        snprintf(err, errlen, "expected KIND=RATE, got '%s'", arg);
        return -1;
    }
    memcpy(name, arg, (size_t)(eq - arg));
    name[eq - arg] = '\0';
    if (fault_kind_parse(name, kind) < 0 || *kind == FAULT_REDIRECT) {
        snprintf(err, errlen, "unknown or unsupported fault kind '%s'", name);
        return -1;
    }
    if (fault_rate_parse(eq + 1, rate) < 0) {
        snprintf(err, errlen, "rate must be a number in 0..1, got '%s'", eq + 1);
        return -1;
    }
    return 0;
}

void fault_rates_init(struct fault_rates *r)
{
    memset(r, 0, sizeof(*r));
    r->retry_after = FAULT_DEFAULT_RETRY_AFTER;
    r->delay_ms = FAULT_DEFAULT_DELAY_MS;
}

enum fault_kind fault_draw(const struct fault_rates *r, int body, uint64_t *rng)
{
    for (int k = FAULT_NONE + 1; k < FAULT_KIND_MAX; k++) {
        if (k == FAULT_REDIRECT || fault_on_body((enum fault_kind)k) != body)
            continue;
        if (r->rate[k] > 0.0 && rng_unit(rng) < r->rate[k])
            return (enum fault_kind)k;
    }
    return FAULT_NONE;
}
