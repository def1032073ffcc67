/* human.c -- numbers, durations and dates as operators type and read them. */
#include "human.h"

#include <ctype.h>
#include <stdarg.h>
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

/* ---- tables ---- */

struct human_row {
    char **cells; /* ncols, each sanitized; NULL for a text line */
    char *text;   /* the tail of a row, or the text line */
};

struct human_table {
    int ncols, gap, failed;
    char *align;
    size_t *width; /* per column, in characters */
    struct human_row *rows;
    size_t nrows, caprows;
};

/* The length of the UTF-8 sequence starting at s (at most n bytes), 0 when it is not one. */
static size_t human_utf8_len(const unsigned char *s, size_t n)
{
    size_t len = s[0] < 0x80             ? 1
                 : (s[0] & 0xe0) == 0xc0 ? 2
                 : (s[0] & 0xf0) == 0xe0 ? 3
                 : (s[0] & 0xf8) == 0xf0 ? 4
                                         : 0;
    if (len == 0 || len > n || (len == 2 && s[0] < 0xc2))
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return len;
}

/* A copy of s that a terminal shows as it is (control characters and broken UTF-8 as '?'), cut
 * to `max` characters (0: never); its width in characters into *width. */
static char *human_cell(const char *s, size_t max, size_t *width)
{
    size_t n = strlen(s), chars = 0, o = 0, i = 0;
    for (size_t j = 0; j < n; chars++) {
        size_t len = human_utf8_len((const unsigned char *)s + j, n - j);
        j += len ? len : 1;
    }
    size_t keep = max && chars > max ? max - 3 : chars;
    char *out = malloc(n + 4);
    if (out == NULL)
        return NULL;
    for (size_t w = 0; w < keep; w++) {
        size_t len = human_utf8_len((const unsigned char *)s + i, n - i);
        if (len <= 1) {
            unsigned char c = (unsigned char)s[i++];
            out[o++] = len == 0 || c < 0x20 || c == 0x7f ? '?' : (char)c;
        } else {
            memcpy(out + o, s + i, len);
            o += len;
            i += len;
        }
    }
    if (keep < chars) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
    *width = keep < chars ? max : chars;
    return out;
}

struct human_table *human_table_new(const char *align, int gap)
{
    struct human_table *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->ncols = (int)strlen(align);
    t->gap = gap;
    t->align = strdup(align);
    t->width = calloc((size_t)t->ncols + 1, sizeof(*t->width));
    if (t->align == NULL || t->width == NULL) {
        human_table_free(t);
        return NULL;
    }
    return t;
}

static struct human_row *human_table_add(struct human_table *t)
{
    if (t->nrows == t->caprows) {
        size_t cap = t->caprows ? t->caprows * 2 : 32;
        struct human_row *r = realloc(t->rows, cap * sizeof(*r));
        if (r == NULL)
            return NULL;
        t->rows = r;
        t->caprows = cap;
    }
    struct human_row *r = &t->rows[t->nrows++];
    r->cells = NULL;
    r->text = NULL;
    return r;
}

int human_table_row(struct human_table *t, const char *const *cells, const char *tail)
{
    size_t w, *widths = calloc((size_t)t->ncols, sizeof(*widths));
    char **copy = calloc((size_t)t->ncols, sizeof(*copy));
    struct human_row *r = NULL;
    if (widths == NULL || copy == NULL)
        goto fail;
    for (int i = 0; i < t->ncols; i++)
        if ((copy[i] = human_cell(cells[i] ? cells[i] : "", HUMAN_CELL_MAX, &widths[i])) == NULL)
            goto fail;
    char *text = NULL;
    if (tail && (text = human_cell(tail, 0, &w)) == NULL)
        goto fail;
    if ((r = human_table_add(t)) == NULL) {
        free(text);
        goto fail;
    }
    r->cells = copy;
    r->text = text;
    for (int i = 0; i < t->ncols; i++)
        if (widths[i] > t->width[i])
            t->width[i] = widths[i];
    free(widths);
    return 0;
fail:
    for (int i = 0; copy && i < t->ncols; i++)
        free(copy[i]);
    free(copy);
    free(widths);
    t->failed = 1;
    return -1;
}

int human_table_text(struct human_table *t, const char *fmt, ...)
{
    va_list ap;
    char *text = NULL;
    va_start(ap, fmt);
    int n = vasprintf(&text, fmt, ap);
    va_end(ap);
    struct human_row *r = n < 0 ? NULL : human_table_add(t);
    if (r == NULL) {
        if (n >= 0)
            free(text);
        t->failed = 1;
        return -1;
    }
    r->text = text;
    return 0;
}

/* Characters in a sanitized cell (valid UTF-8 by then). */
static size_t human_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

int human_table_print(const struct human_table *t, FILE *out)
{
    for (size_t i = 0; i < t->nrows; i++) {
        const struct human_row *r = &t->rows[i];
        if (r->cells == NULL) {
            fprintf(out, "%s\n", r->text);
            continue;
        }
        int last = -1;
        for (int c = 0; c < t->ncols; c++)
            if (r->cells[c][0])
                last = c;
        for (int c = 0; c <= last; c++) {
            int pad = (int)(t->width[c] - human_chars(r->cells[c]));
            int right = t->align[c] == 'r';
            if (c > 0)
                fprintf(out, "%*s", t->gap, "");
            if (right)
                fprintf(out, "%*s", pad, "");
            fputs(r->cells[c], out);
            if (!right && (c < last || r->text))
                fprintf(out, "%*s", pad, "");
        }
        if (r->text)
            fprintf(out, "%*s%s", last >= 0 ? t->gap : 0, "", r->text);
        fputc('\n', out);
    }
    return t->failed ? -1 : 0;
}

void human_table_free(struct human_table *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->nrows; i++) {
        for (int c = 0; t->rows[i].cells && c < t->ncols; c++)
            free(t->rows[i].cells[c]);
        free(t->rows[i].cells);
        free(t->rows[i].text);
    }
    free(t->rows);
    free(t->width);
    free(t->align);
    free(t);
}
