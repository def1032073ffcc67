/* tls.h -- a throw-away CA and server certificate for the image server's HTTPS listener. */
#ifndef PICSUM_TLS_H
#define PICSUM_TLS_H

#include <stddef.h>

#include <openssl/ssl.h>

/* Generate a fresh CA (EC P-256) and a server certificate it signs, valid for picsum.photos,
 * fastly.picsum.photos, localhost, 127.0.0.1 and ::1; write the CA certificate as PEM to
 * ca_path (atomically: temporary file, then rename) and return a server SSL_CTX using the
 * server certificate. NULL with a message in err on failure. */
SSL_CTX *tls_ctx_new(const char *ca_path, char *err, size_t errlen);

#endif
