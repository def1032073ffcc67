/* b64.c -- strict base64 decoding (RFC 4648 §4), the inverse of digest_base64(). */
#include "b64.h"

#include <stdio.h>

/* 0..63 for the alphabet, 64 for '=', 255 for anything else. */
static unsigned char b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return (unsigned char)(c - 'A');
    if (c >= 'a' && c <= 'z')
        return (unsigned char)(c - 'a' + 26);
    if (c >= '0' && c <= '9')
        return (unsigned char)(c - '0' + 52);
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return c == '=' ? 64 : 255;
}

size_t b64_decoded_max(size_t len)
{
    return (len + 3) / 4 * 3;
}

int b64_decode(const char *in, size_t len, unsigned char *out, size_t *outlen, char *err,
               size_t errlen)
{
    size_t n = 0;
    if (len % 4 != 0) {
        snprintf(err, errlen, "length %zu is not a multiple of 4", len);
        return -1;
    }
    for (size_t i = 0; i < len; i += 4) {
        unsigned char v[4];
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            v[k] = b64_value((unsigned char)in[i + k]);
            if (v[k] == 255) {
                snprintf(err, errlen, "invalid character 0x%02x at offset %zu",
                         (unsigned char)in[i + k], i + k);
                return -1;
            }
            if (v[k] == 64) {
                /* '=' only in the last group, only in its last two places, only at the end. */
                if (i + 4 != len || k < 2 ||
                    (k == 2 && b64_value((unsigned char)in[i + 3]) != 64)) {
                    snprintf(err, errlen, "misplaced '=' at offset %zu", i + k);
                    return -1;
                }
                pad++;
                v[k] = 0;
            } else if (pad) {
                snprintf(err, errlen, "data after '=' at offset %zu", i + k);
                return -1;
            }
        }
        unsigned long w =
            (unsigned long)v[0] << 18 | (unsigned long)v[1] << 12 | (unsigned long)v[2] << 6 | v[3];
        if ((pad == 1 && (w & 0xff)) || (pad == 2 && (w & 0xffff))) {
            snprintf(err, errlen, "non-zero padding bits at offset %zu", i + 3 - (size_t)pad);
            return -1;
        }
        out[n++] = (unsigned char)(w >> 16);
        if (pad < 2)
            out[n++] = (unsigned char)(w >> 8);
        if (pad < 1)
            out[n++] = (unsigned char)w;
    }
    *outlen = n;
    return 0;
}
