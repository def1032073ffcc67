/* redact.c -- mask the credentials of every URL in a text before it is printed.
 *
 * It works on free text, not on one parsed URL, because secrets reach messages in many shapes:
 * a setting quoted in an error, a MongoDB driver message, a URL inside an error string. Userinfo
 * is what follows "://" up to the last '@' before the authority ends ('/', '?', '#', space,
 * quote or end). The user name stays (it helps to diagnose), the password goes; without a ':'
 * the whole userinfo may be a token (https://TOKEN@host), so it goes too. */
#include "redact.h"

#include <string.h>

static void redact_put(char *dst, size_t cap, size_t *n, const char *s, size_t len)
{
    if (len > cap - 1 - *n)
        len = cap - 1 - *n;
    memcpy(dst + *n, s, len);
    *n += len;
}

char *redact_url(char *dst, size_t cap, const char *url)
{
    const char *sep = strstr(url, "://"), *auth = sep ? sep + 3 : url, *at = strrchr(auth, '@');
    size_t n = 0;

    if (cap == 0)
        return dst;
    if (at == NULL) {
        redact_put(dst, cap, &n, url, strlen(url));
    } else {
        const char *colon = memchr(auth, ':', (size_t)(at - auth));
        redact_put(dst, cap, &n, url, (size_t)((colon ? colon + 1 : auth) - url));
        redact_put(dst, cap, &n, REDACT_MASK, sizeof(REDACT_MASK) - 1);
        redact_put(dst, cap, &n, at, strlen(at));
    }
    dst[n] = '\0';
    return dst;
}

/* End of the authority that starts at p. */
static const char *redact_authority_end(const char *p)
{
    return p + strcspn(p, "/?#\"' \t\r\n<>");
}

char *redact_urls(char *dst, size_t cap, const char *text)
{
    size_t n = 0;
    const char *p = text;

    if (cap == 0)
        return dst;
#define PUT(s, len) redact_put(dst, cap, &n, (s), (len))
    while (*p && n < cap - 1) {
        const char *sep = strstr(p, "://");
        if (sep == NULL) {
            PUT(p, strlen(p));
            break;
        }
        const char *auth = sep + 3, *end = redact_authority_end(auth), *at = NULL;
        for (const char *q = auth; q < end; q++)
            if (*q == '@')
                at = q;
        PUT(p, (size_t)(auth - p));
        if (at == NULL) {
            p = auth;
            continue;
        }
        const char *colon = memchr(auth, ':', (size_t)(at - auth));
        if (colon != NULL)
            PUT(auth, (size_t)(colon + 1 - auth));
        PUT(REDACT_MASK, sizeof(REDACT_MASK) - 1);
        p = at; /* the '@' and the host follow as they are */
    }
#undef PUT
    dst[n] = '\0';
    return dst;
}
