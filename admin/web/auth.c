/* auth.c -- who may use the console: the token, the session cookie, the CSRF token.
 *
 * Sessions keep no state on the server: a cookie is a random id and its HMAC under the secret
 * (the token, or random bytes when there is none), and the CSRF token of a session is the HMAC of
 * its id. So a restart keeps sessions when the token stays, and changing the token ends them all.
 * A browser cannot be made to send the Authorization header to another site, so a request that
 * carries the Bearer token needs no CSRF token; a cookie alone never suffices for a POST. Limit:
 * a session cannot be revoked before the token changes (logout only clears the browser's copy). */
#include "web.h"

#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

#define AUTH_COOKIE    "pixflow_session"
#define AUTH_NONCE_LEN 16 /* bytes: 32 hex digits */

static void auth_hex(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

/* hex(HMAC-SHA256(secret, what || text)) into out (65 bytes). */
static void auth_mac(const struct web *w, const char *what, const char *text, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    size_t wl = strlen(what), tl = strlen(text);
    unsigned char *msg = malloc(wl + tl + 1);
    if (msg == NULL) {
        out[0] = '\0';
        return;
    }
    memcpy(msg, what, wl);
    memcpy(msg + wl, text, tl);
    if (HMAC(EVP_sha256(), w->secret, (int)w->secret_len, msg, wl + tl, md, &len) == NULL)
        len = 0;
    free(msg);
    auth_hex(md, len > 32 ? 32 : len, out);
}

/* Equal strings, in a time that does not tell how much of them matched. */
static int auth_same(const struct web *w, const char *a, const char *b)
{
    char ma[65], mb[65];
    auth_mac(w, "cmp:", a, ma);
    auth_mac(w, "cmp:", b, mb);
    return ma[0] != '\0' && CRYPTO_memcmp(ma, mb, 64) == 0;
}

int auth_init(struct web *w, char *err, size_t errlen)
{
    size_t n = strlen(w->token);
    if (n > 0) {
        if (n < 16) {
            snprintf(err, errlen,
                     "PIXFLOW_WEB_TOKEN: at least 16 characters (openssl rand -hex 24)");
            return -1;
        }
        /* HMAC hashes longer keys first: the digest of the token is as good a key. */
        unsigned int len = 0;
        if (EVP_Digest(w->token, n, w->secret, &len, EVP_sha256(), NULL) != 1) {
            snprintf(err, errlen, "sha256 failed");
            return -1;
        }
        w->secret_len = len;
        return 0;
    }
    if (RAND_bytes(w->secret, 32) != 1) {
        snprintf(err, errlen, "no random bytes for the session secret");
        return -1;
    }
    w->secret_len = 32;
    return 0;
}

/* The session id of a valid cookie into sid; 0 when there is none or it is forged. */
static int auth_cookie(const struct web *w, struct evhttp_request *req, char sid[AUTH_SID_MAX])
{
    const char *c = evhttp_find_header(evhttp_request_get_input_headers(req), "Cookie");
    size_t klen = strlen(AUTH_COOKIE);
    while (c && *c) {
        while (*c == ' ' || *c == ';')
            c++;
        if (strncmp(c, AUTH_COOKIE "=", klen + 1) == 0)
            break;
        c = strchr(c, ';');
    }
    if (c == NULL || *c == '\0')
        return 0;
    c += klen + 1;
    size_t n = strcspn(c, "; ");
    const char *dot = memchr(c, '.', n);
    if (dot == NULL || dot - c != 2 * AUTH_NONCE_LEN || n != 2 * AUTH_NONCE_LEN + 1 + 64)
        return 0;
    char nonce[2 * AUTH_NONCE_LEN + 1], mac[65];
    memcpy(nonce, c, 2 * AUTH_NONCE_LEN);
    nonce[2 * AUTH_NONCE_LEN] = '\0';
    auth_mac(w, "session:", nonce, mac);
    if (mac[0] == '\0' || CRYPTO_memcmp(mac, dot + 1, 64) != 0)
        return 0;
    memcpy(sid, nonce, sizeof(nonce));
    return 1;
}

static int auth_set_cookie(const struct web *w, struct evhttp_request *req, char sid[AUTH_SID_MAX])
{
    unsigned char nonce[AUTH_NONCE_LEN];
    char mac[65], header[AUTH_SID_MAX + 128];
    if (RAND_bytes(nonce, sizeof(nonce)) != 1)
        return -1;
    auth_hex(nonce, sizeof(nonce), sid);
    auth_mac(w, "session:", sid, mac);
    snprintf(header, sizeof(header), AUTH_COOKIE "=%s.%s; Path=/; HttpOnly; SameSite=Strict", sid,
             mac);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Set-Cookie", header);
    return 0;
}

int auth_check(struct web *w, struct evhttp_request *req, char sid[AUTH_SID_MAX], int *bearer)
{
    const char *a = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    sid[0] = '\0';
    *bearer = 0;
    if (w->token[0] && a && strncmp(a, "Bearer ", 7) == 0 && auth_same(w, a + 7, w->token)) {
        *bearer = 1;
        return 1;
    }
    if (auth_cookie(w, req, sid))
        return 1;
    if (w->token[0])
        return 0;
    if (auth_set_cookie(w, req, sid) < 0)
        sid[0] = '\0';
    return 1;
}

void auth_csrf(const struct web *w, const char *sid, char out[65])
{
    auth_mac(w, "csrf:", sid, out);
}

int auth_csrf_ok(const struct web *w, struct evhttp_request *req, const char *sid, int bearer,
                 const char *form)
{
    if (bearer)
        return 1;
    if (sid[0] == '\0')
        return 0;
    char want[65];
    auth_csrf(w, sid, want);
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "X-CSRF-Token");
    char *field = h ? NULL : web_param(form, "csrf");
    const char *got = h ? h : field;
    int ok = got && want[0] && strlen(got) == 64 && CRYPTO_memcmp(got, want, 64) == 0;
    free(field);
    return ok;
}

static void auth_redirect(struct evhttp_request *req, const char *to)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), "Location", to);
    evhttp_send_reply(req, 303, "See Other", NULL);
}

void auth_login(struct web *w, struct evhttp_request *req)
{
    char *form = web_body(req), *token = form ? web_param(form, "token") : NULL;
    char sid[AUTH_SID_MAX];
    if (w->token[0] == '\0')
        auth_redirect(req, "/");
    else if (token && auth_same(w, token, w->token) && auth_set_cookie(w, req, sid) == 0)
        auth_redirect(req, "/");
    else
        auth_redirect(req, "/login?failed=1");
    free(token);
    free(form);
}

void auth_logout(struct web *w, struct evhttp_request *req)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), "Set-Cookie",
                      AUTH_COOKIE "=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    auth_redirect(req, "/login");
}
