/* url.h -- validate and normalize one catalog line into a picsum URL (SPEC §4).
 *
 * The same rules serve ingest (every catalog line), the consumer (every stream entry, and every
 * redirect hop) and the admin CLI, so there is exactly one idea of what a valid URL is. */
#ifndef PIXFLOW_URL_H
#define PIXFLOW_URL_H

#include <stddef.h>

#define URL_MAX       2048 /* longer lines are too_long: no real picsum URL comes close */
#define URL_HOSTS_MAX 32
#define URL_HOST_MAX  253

enum url_reason {
    URL_OK = 0,
    URL_EMPTY,        /* nothing but whitespace: skipped silently by ingest */
    URL_TOO_LONG,     /* over URL_MAX bytes */
    URL_NOT_UTF8,     /* bytes that are not UTF-8 (includes NUL) */
    URL_BAD_CHAR,     /* control characters, spaces, non-ASCII, characters URLs never hold */
    URL_BAD_SCHEME,   /* missing, or not http/https */
    URL_HAS_USERINFO, /* user:password@ */
    URL_BAD_HOST,     /* empty, malformed, IP literal, or not in the allowed list */
    URL_BAD_PORT,     /* not 1..65535 */
    URL_BAD_PATH,     /* not /W/H or /W with an optional .jpg */
    URL_BAD_SIZE,     /* W or H outside 1..5000 */
    URL_REASON_COUNT
};

struct url_hosts {
    int count;
    char name[URL_HOSTS_MAX][URL_HOST_MAX + 1]; /* lowercase */
};

struct url {
    char norm[URL_MAX + 1]; /* normalized form: the dedup key and what gets fetched */
    int https;
    char host[URL_HOST_MAX + 1];
    int port; /* 0 when default */
    int width, height;
};

/* Comma-separated host names, e.g. "picsum.photos,fastly.picsum.photos". */
int url_hosts_parse(const char *list, struct url_hosts *out, char *err, size_t errlen);
int url_host_allowed(const struct url_hosts *hosts, const char *host, size_t len);

/* Checks `len` bytes (not NUL-terminated, may contain NUL). Returns URL_OK and fills *out. */
enum url_reason url_parse(const char *line, size_t len, const struct url_hosts *hosts,
                          struct url *out);
const char *url_reason_name(enum url_reason r);

/* For redirect hops: the same scheme and host rules, any path. Returns URL_OK when a fetch may
 * follow `location` (an absolute URL). */
enum url_reason url_check_hop(const char *location, const struct url_hosts *hosts);

#endif
