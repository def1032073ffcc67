/* redact.h -- credentials out of anything printed: "scheme://user:secret@host" becomes
 * "scheme://user:***@host" (a userinfo with no colon, often a token, is masked whole). */
#ifndef PIXFLOW_REDACT_H
#define PIXFLOW_REDACT_H

#include <stddef.h>

#define REDACT_MASK "***"

/* Copies the NUL-terminated text into dst (cap bytes, always terminated, cut if needed) with
 * the credentials of every URL in it masked. Returns dst. */
char *redact_urls(char *dst, size_t cap, const char *text);

/* One URL as a setting holds it, parsed the way the settings parser does: the userinfo runs to
 * the last '@' anywhere, so even a password with '/' or '?' in it, or a URL too broken to parse,
 * is masked. For quoting a setting in an error message. */
char *redact_url(char *dst, size_t cap, const char *url);

#endif
