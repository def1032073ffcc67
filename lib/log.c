/* log.c -- one line per event on stderr, key=value or JSON.
 *
 * The format string is the event's shape: " key=" parts in it name the fields, and the text up
 * to the next one (conversions and literals) is that field's value. Each value is formatted from
 * its own arguments, then escaped on its own, so nothing a value holds (a newline from a hostile
 * URL, quotes, spaces, " key=") can end the line, start a field or break the JSON. Every value
 * also has the credentials of any URL in it masked (redact.c).
 *
 * Each line is built in a stack buffer and written with a single write(2), so lines from several
 * threads never interleave and no lock is needed. A value longer than LOG_VALUE_MAX is cut and a
 * line that does not fit is cut between fields, both marked with "...": a log line is not the
 * place for a 1 MB catalog line. */
#include "log.h"
#include "redact.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define LOG_VALUE_MAX 1024
#define LOG_KEY_MAX   64
#define LOG_SPEC_MAX  32

static const char *log_prog = "pixflow";
static enum log_level log_min = LL_INFO;
static int log_json;
static const char *const log_names[] = {"debug", "info", "warn", "error"};

void log_init(const char *prog, enum log_level min, int json)
{
    log_prog = prog;
    log_min = min;
    log_json = json;
}

int log_level_parse(const char *text, enum log_level *out)
{
    for (int i = LL_DEBUG; i <= LL_ERROR; i++) {
        if (strcasecmp(text, log_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return -1;
}

int log_enabled(enum log_level level)
{
    return level >= log_min;
}

/* ---- the format: fields and conversions ---- */

static int log_is_key_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.';
}

/* Length of the key at p when p starts "key=", else 0. */
static size_t log_key_at(const char *p)
{
    size_t n = 0;
    while (log_is_key_char(p[n]))
        n++;
    return n > 0 && n < LOG_KEY_MAX && p[n] == '=' ? n : 0;
}

/* Length of the conversion at p (p[0] == '%'), 0 when it is malformed. */
static size_t log_spec_len(const char *p)
{
    size_t n = 1;
    n += strspn(p + n, "-+ #0'");
    if (p[n] == '*')
        n++;
    else
        n += strspn(p + n, "0123456789");
    if (p[n] == '.') {
        n++;
        if (p[n] == '*')
            n++;
        else
            n += strspn(p + n, "0123456789");
    }
    n += strspn(p + n, "hljztL");
    return p[n] && strchr("diouxXcspfFeEgGaA%", p[n]) && n < LOG_SPEC_MAX ? n + 1 : 0;
}

/* End of the value template starting at p: the next " key=" outside a conversion, or the end.
 * A template in quotes (note=\"keeping transforms=%s\") runs to its closing quote, so literal
 * text in it may hold " key=". */
static const char *log_value_end(const char *p)
{
    if (*p == '"') {
        for (const char *q = p + 1; *q; q++) {
            if (*q == '%') {
                size_t n = log_spec_len(q);
                q += n ? n - 1 : 0;
            } else if (*q == '"' && (q[1] == '\0' || (q[1] == ' ' && log_key_at(q + 2)))) {
                return q + 1;
            }
        }
    }
    while (*p) {
        if (*p == '%') {
            size_t n = log_spec_len(p);
            p += n ? n : 1;
        } else if (*p == ' ' && log_key_at(p + 1)) {
            return p;
        } else {
            p++;
        }
    }
    return p;
}

struct log_buf {
    char *s;
    size_t cap, n;
    int cut;
};

static void log_put(struct log_buf *b, const char *s, size_t len)
{
    if (len > b->cap - 1 - b->n) {
        len = b->cap - 1 - b->n;
        b->cut = 1;
    }
    memcpy(b->s + b->n, s, len);
    b->n += len;
    b->s[b->n] = '\0';
}

/* Formats one conversion, taking its argument(s) from *ap with the type the spec names. */
static void log_convert(struct log_buf *out, const char *spec, size_t len, va_list *ap)
{
    char f[LOG_SPEC_MAX + 1], tmp[LOG_VALUE_MAX];
    int star[2], nstar = 0, w;
    memcpy(f, spec, len);
    f[len] = '\0';
    for (size_t i = 0; i < len; i++)
        if (f[i] == '*' && nstar < 2)
            star[nstar++] = va_arg(*ap, int);

    char conv = f[len - 1];
    const char *lm = f + len - 1;
    while (lm > f && strchr("hljztL", lm[-1]))
        lm--;
    size_t lml = (size_t)(f + len - 1 - lm);
#define FMT(arg)                                                                                   \
    (nstar == 2   ? snprintf(tmp, sizeof(tmp), f, star[0], star[1], arg)                           \
     : nstar == 1 ? snprintf(tmp, sizeof(tmp), f, star[0], arg)                                    \
                  : snprintf(tmp, sizeof(tmp), f, arg))
    if (conv == '%') {
        w = snprintf(tmp, sizeof(tmp), "%%");
    } else if (conv == 's') {
        const char *s = va_arg(*ap, const char *);
        w = FMT(s ? s : "(null)");
    } else if (conv == 'p') {
        w = FMT(va_arg(*ap, void *));
    } else if (strchr("fFeEgGaA", conv)) {
        if (lml == 1 && *lm == 'L')
            w = FMT(va_arg(*ap, long double));
        else
            w = FMT(va_arg(*ap, double));
    } else if (conv == 'c') {
        w = FMT(va_arg(*ap, int));
    } else {
        int is_signed = conv == 'd' || conv == 'i';
        if (lml == 2 && lm[0] == 'l')
            w = is_signed ? FMT(va_arg(*ap, long long)) : FMT(va_arg(*ap, unsigned long long));
        else if (lml == 1 && *lm == 'l')
            w = is_signed ? FMT(va_arg(*ap, long)) : FMT(va_arg(*ap, unsigned long));
        else if (lml == 1 && *lm == 'z')
            w = is_signed ? FMT(va_arg(*ap, ssize_t)) : FMT(va_arg(*ap, size_t));
        else if (lml == 1 && *lm == 'j')
            w = is_signed ? FMT(va_arg(*ap, intmax_t)) : FMT(va_arg(*ap, uintmax_t));
        else if (lml == 1 && *lm == 't')
            w = FMT(va_arg(*ap, ptrdiff_t));
        else /* int, and hh/h which are promoted to int */
            w = is_signed ? FMT(va_arg(*ap, int)) : FMT(va_arg(*ap, unsigned int));
    }
#undef FMT
    if (w < 0)
        w = 0;
    log_put(out, tmp, (size_t)w < sizeof(tmp) ? (size_t)w : sizeof(tmp) - 1);
    if ((size_t)w >= sizeof(tmp))
        out->cut = 1;
}

/* The raw value of the template [p, end): literals copied, conversions formatted. Quotes around
 * the whole template ("%s") are the caller asking for a quoted value: quoting is ours. */
static void log_value(struct log_buf *out, const char *p, const char *end, va_list *ap)
{
    if (end - p >= 2 && *p == '"' && end[-1] == '"') {
        p++;
        end--;
    }
    while (p < end) {
        if (*p == '%') {
            size_t n = log_spec_len(p);
            if (n == 0 || p + n > end) {
                log_put(out, p, 1);
                p++;
                continue;
            }
            log_convert(out, p, n, ap);
            p += n;
        } else {
            const char *q = memchr(p, '%', (size_t)(end - p));
            if (q == NULL)
                q = end;
            log_put(out, p, (size_t)(q - p));
            p = q;
        }
    }
}

/* ---- the output: escaping ---- */

static int log_needs_quotes(const char *v)
{
    if (*v == '\0')
        return 1;
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if (*p <= ' ' || *p == '"' || *p == '=' || *p == '\\' || *p >= 0x7f)
            return 1;
    return 0;
}

/* One escaped character of v into e (room for 7); its length. */
static size_t log_escape_char(unsigned char c, char *e, int json)
{
    switch (c) {
    case '"':
    case '\\':
        e[0] = '\\';
        e[1] = (char)c;
        return 2;
    case '\n':
        memcpy(e, "\\n", 2);
        return 2;
    case '\r':
        memcpy(e, "\\r", 2);
        return 2;
    case '\t':
        memcpy(e, "\\t", 2);
        return 2;
    default:
        if (c < 0x20 || c == 0x7f)
            return (size_t)snprintf(e, 8, json ? "\\u%04x" : "\\x%02x", c);
        e[0] = (char)c;
        return 1;
    }
}

/* Length of the well-formed UTF-8 sequence at p (shortest form, no surrogates), 0 if none. */
static size_t log_utf8_len(const unsigned char *p)
{
    size_t n = p[0] >= 0xc2 && p[0] <= 0xdf   ? 2
               : p[0] >= 0xe0 && p[0] <= 0xef ? 3
               : p[0] >= 0xf0 && p[0] <= 0xf4 ? 4
                                              : 0;
    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    if ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] >= 0xa0) ||
        (p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] >= 0x90))
        return 0;
    return n;
}

/* Appends v, quoted and escaped (always in JSON, when needed in text). Bytes that are not UTF-8
 * are escaped one by one, so a JSON line always parses. Stops before the buffer end with room
 * for the closing quote and what follows the field, marking a cut value. */
static void log_put_value(struct log_buf *b, const char *v, int json, size_t reserve)
{
    int quote = json || log_needs_quotes(v);
    char e[8];
    if (quote)
        log_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)v; *p;) {
        size_t take = 1, n;
        const char *out = e;
        if (*p < 0x80) {
            n = log_escape_char(*p, e, json);
        } else if ((take = log_utf8_len(p)) > 0) {
            out = (const char *)p;
            n = take;
        } else {
            take = 1;
            n = (size_t)snprintf(e, sizeof(e), json ? "\\u%04x" : "\\x%02x", *p);
        }
        if (b->n + n + reserve + 4 >= b->cap) {
            log_put(b, "...", 3);
            b->cut = 1;
            break;
        }
        log_put(b, out, n);
        p += take;
    }
    if (quote)
        log_put(b, "\"", 1);
}

static void log_field(struct log_buf *b, const char *key, size_t klen, const char *raw)
{
    char clean[LOG_VALUE_MAX];
    redact_urls(clean, sizeof(clean), raw);
    if (log_json) {
        log_put(b, ",\"", 2);
        log_put(b, key, klen);
        log_put(b, "\":", 2);
    } else {
        log_put(b, " ", 1);
        log_put(b, key, klen);
        log_put(b, "=", 1);
    }
    log_put_value(b, clean, log_json, 2);
}

/* Builds the whole line for level and fmt into line (with its '\n'); returns its length. */
static size_t log_format(char *line, size_t cap, enum log_level level, const char *fmt, va_list *ap)
{
    struct log_buf b = {line, cap - 2, 0, 0}; /* room kept for the '}' and the '\n' */
    struct timespec ts;
    struct tm tm;
    char when[40];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t w = strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + w, sizeof(when) - w, ".%03ldZ", ts.tv_nsec / 1000000);

    if (log_json)
        b.n = (size_t)snprintf(line, b.cap, "{\"ts\":\"%s\",\"level\":\"%s\",\"prog\":\"%s\"", when,
                               log_names[level], log_prog);
    else
        b.n = (size_t)snprintf(line, b.cap, "%s %s %s", when, log_names[level], log_prog);

    const char *p = fmt;
    while (*p) {
        const char *key = "msg";
        size_t klen = log_key_at(p);
        if (klen) {
            key = p;
            p += klen + 1;
        } else {
            klen = 3; /* text with no key of its own: it is the message */
        }
        const char *end = log_value_end(p);
        char raw[LOG_VALUE_MAX];
        struct log_buf v = {raw, sizeof(raw), 0, 0};
        raw[0] = '\0';
        log_value(&v, p, end, ap);
        if (v.cut && v.n >= 3)
            memcpy(raw + v.n - 3, "...", 3);
        if (b.n + klen + 8 >= b.cap) {
            b.cut = 1;
            break;
        }
        log_field(&b, key, klen, raw);
        p = *end ? end + 1 : end;
    }
    if (b.cut && !log_json && b.n + 4 < b.cap)
        log_put(&b, " ...", 4);
    if (log_json)
        line[b.n++] = '}';
    line[b.n++] = '\n';
    return b.n;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    if (level < log_min)
        return;
    char line[LOG_VALUE_MAX * 4];
    va_list ap;
    va_start(ap, fmt);
    size_t n = log_format(line, sizeof(line), level, fmt, &ap);
    va_end(ap);
    ssize_t r = write(STDERR_FILENO, line, n);
    (void)r;
}
