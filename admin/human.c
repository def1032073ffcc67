/* human.c -- numbers, durations and dates as operators type and read them. */
#include "human.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *human_bytes(double bytes, char *buf, size_t len)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (bytes >= 1024 && u < 4) {
        bytes /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(buf, len, "%.0f B", bytes);
    else
        snprintf(buf, len, "%.1f %s", bytes, units[u]);
    return buf;
}

const char *human_duration(long long ms, char *buf, size_t len)
{
    if (ms < 0)
        snprintf(buf, len, "-");
    else if (ms < 1000)
        snprintf(buf, len, "%lldms", ms);
    else if (ms < 60000)
        snprintf(buf, len, "%llds", ms / 1000);
    else if (ms < 3600000)
        snprintf(buf, len, "%lldm%02llds", ms / 60000, ms / 1000 % 60);
    else if (ms < 86400000)
        snprintf(buf, len, "%lldh%02lldm", ms / 3600000, ms / 60000 % 60);
    else
        snprintf(buf, len, "%lldd%02lldh", ms / 86400000, ms / 3600000 % 24);
    return buf;
}

/* Exactly n digits at *p into *out; advances p. */
static int human_digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return -1;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

static int human_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian): timegm() without the TZ dependency. */
static long long human_days(int y, int m, int d)
{
    static const int before[] = {0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334};
    long long days = 0;
    for (int yy = 1970; yy < y; yy++)
        days += 365 + human_leap(yy);
    days += before[m - 1] + (m > 2 && human_leap(y)) + d - 1;
    return days;
}

static int human_date(const char *text, long long *out_ms)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const char *p = text;
    int y, mo, d, h = 0, mi = 0, s = 0;
    if (human_digits(&p, 4, &y) < 0 || *p++ != '-' || human_digits(&p, 2, &mo) < 0 || *p++ != '-' ||
        human_digits(&p, 2, &d) < 0)
        return -1;
    if (*p == 'T' || *p == ' ') {
        p++;
        if (human_digits(&p, 2, &h) < 0 || *p++ != ':' || human_digits(&p, 2, &mi) < 0)
            return -1;
        if (*p == ':' && (p++, human_digits(&p, 2, &s) < 0))
            return -1;
    }
    if (*p == 'Z')
        p++;
    if (*p != '\0' || y < 1970 || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || s > 59)
        return -1;
    if (d > mdays[mo - 1] + (mo == 2 && human_leap(y)))
        return -1;
    *out_ms = ((human_days(y, mo, d) * 24 + h) * 60 + mi) * 60000LL + s * 1000LL;
    return 0;
}

int human_since(const char *text, long long now_ms, long long *out_ms, char *err, size_t errlen)
{
    if (human_date(text, out_ms) == 0)
        return 0;
    char *end;
    long long v = strtoll(text, &end, 10);
    static const struct {
        const char *unit;
        long long ms;
    } units[] = {{"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
    if (end != text && isdigit((unsigned char)*text) && v >= 0 && v < (1LL << 40)) {
        for (size_t i = 0; i < sizeof(units) / sizeof(*units); i++) {
            if (strcmp(end, units[i].unit) == 0) {
                *out_ms = now_ms - v * units[i].ms;
                return 0;
            }
        }
    }
    snprintf(err, errlen,
             "'%s' is neither a UTC date (2024-05-01, 2024-05-01T12:30[:15]Z) nor "
             "a duration back from now (30s, 15m, 24h, 7d)",
             text);
    return -1;
}

size_t human_print(FILE *out, const char *s, size_t len, size_t width)
{
    size_t n = len, written = 0;
    int cut = width && len > width, dots = cut && width > 3;
    if (cut)
        n = dots ? width - 3 : width;
    while (cut && n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
        n--; /* never half a UTF-8 character */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        fputc(c < 0x20 || c == 0x7f ? '?' : c, out);
        written++;
    }
    if (dots) {
        fputs("...", out);
        written += 3;
    }
    return written;
}
