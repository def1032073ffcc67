/* tls.c -- certificate authority and server certificate made at start-up, in memory, with
 * OpenSSL 3. Only the CA certificate leaves the process (clients trust it with --cacert). */
#include "tls.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#define TLS_DAYS 30
#define TLS_SAN  "DNS:picsum.photos,DNS:fastly.picsum.photos,DNS:localhost,IP:127.0.0.1,IP:::1"

static void tls_set_error(char *err, size_t errlen, const char *what)
{
    unsigned long e = ERR_get_error();
    char detail[256] = "";

    if (e != 0)
        ERR_error_string_n(e, detail, sizeof(detail));
    ERR_clear_error();
    snprintf(err, errlen, "%s%s%s", what, detail[0] ? ": " : "", detail);
}

static int tls_add_ext(X509 *cert, X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
    int ok;

    if (ext == NULL)
        return -1;
    ok = X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    return ok ? 0 : -1;
}

static int tls_random_serial(X509 *cert)
{
    unsigned char raw[16];
    BIGNUM *bn;
    int ok;

    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return -1;
    raw[0] &= 0x7f; /* positive */
    bn = BN_bin2bn(raw, sizeof(raw), NULL);
    if (bn == NULL)
        return -1;
    ok = BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) != NULL;
    BN_free(bn);
    return ok ? 0 : -1;
}

/* A certificate for key named cn, signed by issuer/issuer_key, or self-signed when issuer is
 * NULL (the CA). */
static X509 *tls_cert_new(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key)
{
    X509 *cert = X509_new();
    X509_NAME *name;
    X509V3_CTX ctx;
    int is_ca = issuer == NULL;

    if (cert == NULL)
        return NULL;
    name = X509_get_subject_name(cert);
    if (!X509_set_version(cert, 2) || tls_random_serial(cert) < 0 ||
        X509_gmtime_adj(X509_getm_notBefore(cert), -3600) == NULL ||
        X509_gmtime_adj(X509_getm_notAfter(cert), 86400L * TLS_DAYS) == NULL ||
        !X509_set_pubkey(cert, key) ||
        !X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"pixflow test",
                                    -1, -1, 0) ||
        !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1,
                                    0) ||
        !X509_set_issuer_name(cert, is_ca ? name : X509_get_subject_name(issuer)))
        goto err;

    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, is_ca ? cert : issuer, cert, NULL, NULL, 0);
    /* The subject key id must exist before the authority key id can refer to it. */
    if (tls_add_ext(cert, &ctx, NID_subject_key_identifier, "hash") < 0 ||
        tls_add_ext(cert, &ctx, NID_authority_key_identifier, "keyid:always") < 0)
        goto err;
    if (is_ca) {
        if (tls_add_ext(cert, &ctx, NID_basic_constraints, "critical,CA:TRUE") < 0 ||
            tls_add_ext(cert, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign") < 0)
            goto err;
    } else {
        if (tls_add_ext(cert, &ctx, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
            tls_add_ext(cert, &ctx, NID_key_usage, "critical,digitalSignature") < 0 ||
            tls_add_ext(cert, &ctx, NID_ext_key_usage, "serverAuth") < 0 ||
            tls_add_ext(cert, &ctx, NID_subject_alt_name, TLS_SAN) < 0)
            goto err;
    }
    if (X509_sign(cert, is_ca ? key : issuer_key, EVP_sha256()) == 0)
        goto err;
    return cert;
err:
    X509_free(cert);
    return NULL;
}

static int tls_write_pem(const char *path, X509 *cert, char *err, size_t errlen)
{
    char tmp[4096];
    FILE *f;
    int n = snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());

    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        snprintf(err, errlen, "path too long: %s", path);
        return -1;
    }
    f = fopen(tmp, "w");
    if (f == NULL) {
        snprintf(err, errlen, "cannot write %s: %m", tmp);
        return -1;
    }
    if (!PEM_write_X509(f, cert)) {
        fclose(f);
        unlink(tmp);
        tls_set_error(err, errlen, "cannot write CA certificate");
        return -1;
    }
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        snprintf(err, errlen, "cannot write %s: %m", path);
        unlink(tmp);
        return -1;
    }
    return 0;
}

SSL_CTX *tls_ctx_new(const char *ca_path, char *err, size_t errlen)
{
    EVP_PKEY *ca_key = NULL, *key = NULL;
    X509 *ca = NULL, *cert = NULL;
    SSL_CTX *ctx = NULL;

    ca_key = EVP_EC_gen("P-256");
    key = EVP_EC_gen("P-256");
    if (ca_key == NULL || key == NULL) {
        tls_set_error(err, errlen, "cannot generate keys");
        goto done;
    }
    ca = tls_cert_new(ca_key, "pixflow test CA", NULL, NULL);
    cert = ca != NULL ? tls_cert_new(key, "picsum.photos", ca, ca_key) : NULL;
    if (ca == NULL || cert == NULL) {
        tls_set_error(err, errlen, "cannot make certificates");
        goto done;
    }
    if (tls_write_pem(ca_path, ca, err, errlen) < 0)
        goto done;
    ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL || !SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
        !SSL_CTX_use_certificate(ctx, cert) || !SSL_CTX_use_PrivateKey(ctx, key) ||
        !SSL_CTX_check_private_key(ctx)) {
        tls_set_error(err, errlen, "cannot set up TLS context");
        SSL_CTX_free(ctx);
        ctx = NULL;
        goto done;
    }
done:
    X509_free(cert);
    X509_free(ca);
    EVP_PKEY_free(key);
    EVP_PKEY_free(ca_key);
    return ctx;
}
