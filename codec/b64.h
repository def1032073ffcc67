/* b64.h -- strict base64 decoding, to prove a stored image is exactly what was written. */
#ifndef PIXFLOW_B64_H
#define PIXFLOW_B64_H

#include <stddef.h>

/* The decoded size of a well-formed text of len characters (an upper bound otherwise). */
size_t b64_decoded_max(size_t len);

/* Decodes standard base64 (RFC 4648 §4: '+' '/', '=' padding required, no whitespace, unused
 * bits zero) into out (room for b64_decoded_max(len) bytes). Returns 0 with *outlen set, or -1
 * with err naming the first offending offset: anything digest_base64() would not have written
 * is corruption. */
int b64_decode(const char *in, size_t len, unsigned char *out, size_t *outlen, char *err,
               size_t errlen);

#endif
