/* digest.h -- SHA-256 (hex) and base64 of byte buffers and files, for content addresses. */
#ifndef PIXFLOW_DIGEST_H
#define PIXFLOW_DIGEST_H

#include <stddef.h>

#define DIGEST_HEX_LEN 64 /* a SHA-256 in lowercase hex, without the NUL */

/* hex receives 64 lowercase hex digits and a NUL. 0, or -1 with err. Safe from any thread. */
int digest_sha256_hex(const void *data, size_t len, char hex[DIGEST_HEX_LEN + 1], char *err,
                      size_t errlen);

/* The same over the contents of a file (the lineage of a plugin .so). */
int digest_sha256_file(const char *path, char hex[DIGEST_HEX_LEN + 1], char *err, size_t errlen);

/* Standard base64 (RFC 4648, '+' '/', '=' padding, no line breaks) of data. *out is malloc'd,
 * NUL-terminated, *outlen excludes the NUL. 0, or -1 with err (out of memory). */
int digest_base64(const void *data, size_t len, char **out, size_t *outlen, char *err,
                  size_t errlen);

#endif
