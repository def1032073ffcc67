/* log.c -- one line per event on stderr, key=value or JSON.
 *
 * Each line is formatted into a stack buffer and written with a single write(2), so lines from
 * several threads never interleave and no lock is needed. Lines longer than the buffer are cut
 * (and marked with "..."): a log line is not the place for a 1 MB catalog line. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 2048

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

/* Append src to dst as the inside of a JSON string. */
static size_t log_json_escape(char *dst, size_t cap, const char *src, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len && n + 7 < cap; i++) {
        unsigned char c = (unsigned char)src[i];
        if (c == '"' || c == '\\') {
            dst[n++] = '\\';
            dst[n++] = (char)c;
        } else if (c < 0x20) {
            n += (size_t)snprintf(dst + n, cap - n, "\\u%04x", c);
        } else {
            dst[n++] = (char)c;
        }
    }
    return n;
}

/* Turn "a=1 b=x y" style pairs into JSON members. A value runs to the next " key=" so that
 * free text at the end (msg=...) survives; values are always strings, which is what log
 * shippers expect. */
static size_t log_pairs_to_json(char *dst, size_t cap, const char *pairs)
{
    size_t n = 0;
    const char *p = pairs;
    while (*p && n + 16 < cap) {
        const char *eq = strchr(p, '=');
        if (eq == NULL)
            break;
        const char *end = eq + 1;
        for (;;) {
            const char *sp = strchr(end, ' ');
            if (sp == NULL) {
                end += strlen(end);
                break;
            }
            const char *k = sp + 1;
            while (*k && *k != ' ' && *k != '=')
                k++;
            if (*k == '=' && k > sp + 1) {
                end = sp;
                break;
            }
            end = sp + 1;
        }
        dst[n++] = ',';
        dst[n++] = '"';
        n += log_json_escape(dst + n, cap - n, p, (size_t)(eq - p));
        dst[n++] = '"';
        dst[n++] = ':';
        dst[n++] = '"';
        n += log_json_escape(dst + n, cap - n, eq + 1, (size_t)(end - eq - 1));
        dst[n++] = '"';
        p = *end ? end + 1 : end;
    }
    return n;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    if (level < log_min)
        return;

    char body[LOG_LINE_MAX], line[LOG_LINE_MAX * 2];
    va_list ap;
    va_start(ap, fmt);
    int blen = vsnprintf(body, sizeof(body), fmt, ap);
    va_end(ap);
    if (blen >= (int)sizeof(body))
        memcpy(body + sizeof(body) - 4, "...", 4);

    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    char when[32];
    size_t w = strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + w, sizeof(when) - w, ".%03ldZ", ts.tv_nsec / 1000000);

    size_t n;
    if (log_json) {
        n = (size_t)snprintf(line, sizeof(line), "{\"ts\":\"%s\",\"level\":\"%s\",\"prog\":\"%s\"",
                             when, log_names[level], log_prog);
        n += log_pairs_to_json(line + n, sizeof(line) - n - 2, body);
        line[n++] = '}';
    } else {
        n = (size_t)snprintf(line, sizeof(line), "%s %s %s %s", when, log_names[level], log_prog,
                             body);
        if (n > sizeof(line) - 2)
            n = sizeof(line) - 2;
    }
    line[n++] = '\n';
    ssize_t r = write(STDERR_FILENO, line, n);
    (void)r;
}
