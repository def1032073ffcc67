/* digest.c -- SHA-256 through OpenSSL's EVP and base64, the two encodings the store needs.
 * OpenSSL 3 looks a digest up by name on each EVP_sha256() use unless it is fetched once; the
 * fetched EVP_MD is immutable and shared by every thread. */
#include "digest.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#define DIGEST_FILE_CHUNK (64 * 1024)
/* EVP_EncodeBlock takes an int length: feed it multiples of 3 below INT_MAX. */
#define DIGEST_B64_CHUNK ((size_t)3 << 28)

static pthread_once_t digest_once = PTHREAD_ONCE_INIT;
static EVP_MD *digest_md;

static void digest_fetch(void)
{
    digest_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static const EVP_MD *digest_sha256(char *err, size_t errlen)
{
    pthread_once(&digest_once, digest_fetch);
    if (digest_md == NULL)
        snprintf(err, errlen, "OpenSSL has no SHA256");
    return digest_md;
}

static void digest_hex(const unsigned char *md, char *hex)
{
    static const char digits[] = "0123456789abcdef";

    for (int i = 0; i < 32; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[DIGEST_HEX_LEN] = '\0';
}

int digest_sha256_hex(const void *data, size_t len, char hex[DIGEST_HEX_LEN + 1], char *err,
                      size_t errlen)
{
    const EVP_MD *md = digest_sha256(err, errlen);
    unsigned char out[EVP_MAX_MD_SIZE];

    if (md == NULL)
        return -1;
    if (EVP_Digest(data, len, out, NULL, md, NULL) != 1) {
        snprintf(err, errlen, "SHA-256 failed");
        return -1;
    }
    digest_hex(out, hex);
    return 0;
}

int digest_sha256_file(const char *path, char hex[DIGEST_HEX_LEN + 1], char *err, size_t errlen)
{
    const EVP_MD *md = digest_sha256(err, errlen);
    unsigned char out[EVP_MAX_MD_SIZE];
    EVP_MD_CTX *ctx = NULL;
    unsigned char *buf = NULL;
    FILE *f = NULL;
    size_t n;

    if (md == NULL)
        return -1;
    f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    buf = malloc(DIGEST_FILE_CHUNK);
    ctx = EVP_MD_CTX_new();
    if (buf == NULL || ctx == NULL || EVP_DigestInit_ex(ctx, md, NULL) != 1) {
        snprintf(err, errlen, "SHA-256 setup failed");
        goto err;
    }
    while ((n = fread(buf, 1, DIGEST_FILE_CHUNK, f)) > 0) {
        if (EVP_DigestUpdate(ctx, buf, n) != 1) {
            snprintf(err, errlen, "SHA-256 failed");
            goto err;
        }
    }
    if (ferror(f)) {
        snprintf(err, errlen, "%s: read error", path);
        goto err;
    }
    if (EVP_DigestFinal_ex(ctx, out, NULL) != 1) {
        snprintf(err, errlen, "SHA-256 failed");
        goto err;
    }
    digest_hex(out, hex);
    EVP_MD_CTX_free(ctx);
    free(buf);
    fclose(f);
    return 0;
err:
    EVP_MD_CTX_free(ctx);
    free(buf);
    fclose(f);
    return -1;
}

int digest_base64(const void *data, size_t len, char **out, size_t *outlen, char *err,
                  size_t errlen)
{
    const unsigned char *in = data;
    size_t total = (len + 2) / 3 * 4, done = 0;
    char *buf = malloc(total + 1);

    if (buf == NULL) {
        snprintf(err, errlen, "out of memory for %zu bytes of base64", total);
        return -1;
    }
    buf[0] = '\0';
    while (len > 0) {
        size_t n = len < DIGEST_B64_CHUNK ? len : DIGEST_B64_CHUNK;

        done += (size_t)EVP_EncodeBlock((unsigned char *)buf + done, in, (int)n);
        in += n;
        len -= n;
    }
    *out = buf;
    *outlen = done;
    return 0;
}
