/* fetch.c -- picture downloads on a libevent loop with libcurl's multi_socket API.
 *
 * Shaped like curl's docs/examples/hiperfifo.c: one struct per lifetime (the engine per loop, a
 * fetch per transfer, a fetch_sock per socket curl watches), CURLOPT_PRIVATE to find the fetch
 * again, and CURLMSG_DONE drained after every socket action and timeout.
 *
 * The input is hostile, so curl is never trusted to follow anything on its own: redirects are
 * followed here, hop by hop, each Location re-checked with url_check_hop(); every address is
 * checked by netguard after DNS in CURLOPT_OPENSOCKETFUNCTION (a name that resolves to 10.0.0.1
 * never gets a socket); bodies are capped while they arrive; and the whole transfer, all hops
 * included, has one deadline.
 *
 * Bodies share one byte budget (fetch_limits.memory), so that what a worker holds in downloads
 * is bounded by configuration and not by how many transfers run: see "the byte budget" below.
 *
 * Nothing here blocks the loop: no curl_easy_perform, and the engine refuses to start unless
 * libcurl resolves names asynchronously (its threaded resolver on Debian). The one blocking
 * call is getaddrinfo() in fetch_engine_new for connect-to targets given by name, before the
 * loop runs.
 *
 * PIXFLOW_CA_FILE adds to the system store rather than replacing it (SPEC §2): CURLOPT_CAINFO
 * would replace curl's default bundle, so the file's certificates are loaded once and added to
 * each TLS context from CURLOPT_SSL_CTX_FUNCTION, after curl has loaded its defaults (from its
 * CA store cache: see fetch_ca_defaults). */
#include "fetch.h"
#include "clock.h"

#include <ctype.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "log.h"
#include "netguard.h"

#define FETCH_BODY_FIRST         (16 * 1024) /* first buffer when Content-Length is unknown */
#define FETCH_RETRY_AFTER_MAX_MS (24L * 3600 * 1000)
#define FETCH_REDIRECTS_MAX      20
#define FETCH_MAX_BYTES_MAX      (1L << 32) /* a body is one malloc: 4 GiB is already absurd */

struct fetch_sock {
    struct fetch_engine *e;
    curl_socket_t fd;
    struct event *ev;
    struct fetch_sock *prev, *next;
};

/* The fetches waiting to be sent, in order, linked through fetch.qprev/qnext. */
struct fetch_queue {
    struct fetch *head, *tail;
};

struct fetch_engine {
    struct event_base *base;
    const struct settings *s;
    struct fetch_limits lim;
    CURLM *multi;
    struct event *timer;
    struct curl_slist *connect_to; /* "HOST:PORT:CONNECT-HOST:CONNECT-PORT" for every hop */
    struct curl_slist *headers;
    STACK_OF(X509_INFO) * extra_ca; /* PIXFLOW_CA_FILE, NULL when not set */
    struct netguard_allow allow;    /* the connect-to targets, exempt from netguard */
    char user_agent[64];
    int bundle_only; /* drop curl's default CA folder: see fetch_ca_defaults */
    int active;
    int closing;                  /* fetch_engine_free: nothing more is resumed or sent */
    size_t held;                  /* bytes of the budget taken by bodies, arriving or delivered */
    size_t pending;               /* estimates of the bodies sent for and not yet arrived */
    size_t guess;                 /* running mean of the bodies delivered: the estimate */
    long requeued;                /* transfers stopped at their first byte and queued again */
    int delivered;                /* bodies the guess is the mean of, up to 8 */
    struct fetch_queue queued;    /* not sent: their body would not fit yet */
    struct fetch_result *holders; /* delivered results whose body still holds budget */
    struct fetch *fetches;        /* every fetch not yet done or cancelled */
    struct fetch_foreign *others; /* fetch_engine_add: transfers not yet done or removed */
    struct fetch_sock *socks;
    struct fetch_gate gate; /* politeness (hosts.h); ask is NULL without one */
};

/* A transfer another module put on the engine's multi (fetch_engine_add). CURLOPT_PRIVATE
 * points at a struct fetch or at one of these; both begin with `foreign`, which tells which. */
struct fetch_foreign {
    int foreign; /* first, 1 here */
    struct fetch_engine *e;
    CURL *easy;
    void (*done)(CURL *easy, CURLcode rc, void *arg);
    void *arg;
    struct fetch_foreign *prev, *next;
};

static void fetch_foreign_done(struct fetch_foreign *ff, CURLcode rc);

struct fetch {
    int foreign; /* first, 0 here: see struct fetch_foreign */
    struct fetch_engine *e;
    CURL *easy;
    int in_multi;
    struct event *later; /* fetch_later: completes it on a later loop iteration */
    fetch_done_fn *done;
    void *arg;
    struct fetch_result *res;
    double start_ms, deadline_ms;
    struct fetch_queue *queue; /* &e->queued while in it, else NULL */
    struct fetch *qprev, *qnext;
    void *ticket;      /* the gate's, from its ask until the hop ends */
    int sent;          /* the first hop went out (fetch_send): what the gate lets go next */
    long gate_left_ms; /* time left for the hop that waits for the gate */
    double gate_ms;    /* when it began to wait */
    double hop_ms;     /* when the current hop was sent */

    /* State of the current hop, reset before each. */
    size_t cap;          /* bytes allocated in res->body */
    size_t want;         /* bytes its body takes from the budget, once known */
    size_t estimate;     /* counted in e->pending: sent for, first body byte not yet here */
    int requeue;         /* stopped at the first body byte for want of room: send again */
    size_t received;     /* body bytes of this response, kept or not */
    long status;         /* status of the response whose headers are being read */
    long content_length; /* -1 when not announced */
    int in_headers;      /* between a status line and the blank line after it */
    int keep_body;       /* a 2xx: the body is the picture; anything else is read and dropped */
    int dropped;         /* a dropped body grew past the cap: the transfer stopped on purpose */
    char abort_reason[FETCH_REASON_MAX]; /* why a callback stopped the transfer */
    enum fetch_class abort_cls;
    char abort_error[200];
    char blocked[200]; /* the last address netguard refused, and why */
    char errbuf[CURL_ERROR_SIZE];

    struct fetch *prev, *next;
};

/* ---- results ---------------------------------------------------------------------------- */

static void fetch_budget_give(struct fetch_engine *e, size_t bytes);

static struct fetch_result *fetch_result_new(struct fetch_engine *e, const char *url)
{
    struct fetch_result *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->engine = e;
    r->retry_after_ms = -1;
    snprintf(r->final_url, sizeof(r->final_url), "%s", url);
    return r;
}

void fetch_result_drop_body(struct fetch_result *r)
{
    struct fetch_engine *e = r->engine;
    size_t bytes = r->budget;
    free(r->body);
    r->body = NULL;
    r->budget = 0;
    if (e == NULL)
        return;
    if (r->listed) { /* delivered: off the engine's list, and done with the engine */
        if (r->hprev)
            r->hprev->hnext = r->hnext;
        else
            e->holders = r->hnext;
        if (r->hnext)
            r->hnext->hprev = r->hprev;
        r->hprev = r->hnext = NULL;
        r->listed = 0;
        r->engine = NULL;
    }
    fetch_budget_give(e, bytes);
}

void fetch_result_free(struct fetch_result *r)
{
    if (r == NULL)
        return;
    fetch_result_drop_body(r);
    free(r);
}

/* ---- the byte budget -------------------------------------------------------------------- */

/* A body takes its bytes from e->lim.memory when its first byte arrives (its Content-Length, or
 * max_bytes while a body that announces none arrives, then its length) and gives them back when
 * it is freed: by a failed transfer, or by the caller once done with a delivered body.
 *
 * Room is decided before a request is sent, so that a full budget holds requests back instead
 * of leaving responses half read: a fetch is sent only when the bytes held, plus an estimate for
 * every body already sent for, plus its own estimate fit (the running mean of delivered bodies,
 * or the length its server already announced); otherwise it waits in FIFO order. An estimate
 * can be short: a body that does not fit when its first byte arrives stops its transfer and goes
 * back to the head of the queue knowing its length, sent again once that fits. That costs a
 * request, never memory; transfers are never paused, since a paused HTTP/2 stream makes libcurl
 * buffer what keeps arriving, outside any budget. Nothing waits forever: memory >= max_bytes
 * (fetch_limits_check), and with nothing held or sent for, the head of the queue is sent. */

#define FETCH_GUESS_FIRST (256 * 1024) /* the estimate before any body was delivered */

static void fetch_queue_push(struct fetch_queue *q, struct fetch *f, int front)
{
    f->queue = q;
    if (front) {
        f->qprev = NULL;
        f->qnext = q->head;
        if (q->head)
            q->head->qprev = f;
        else
            q->tail = f;
        q->head = f;
        return;
    }
    f->qnext = NULL;
    f->qprev = q->tail;
    if (q->tail)
        q->tail->qnext = f;
    else
        q->head = f;
    q->tail = f;
}

static void fetch_queue_remove(struct fetch *f)
{
    struct fetch_queue *q = f->queue;
    if (q == NULL)
        return;
    if (f->qprev)
        f->qprev->qnext = f->qnext;
    else
        q->head = f->qnext;
    if (f->qnext)
        f->qnext->qprev = f->qprev;
    else
        q->tail = f->qprev;
    f->queue = NULL;
    f->qprev = f->qnext = NULL;
}

static size_t fetch_estimate(const struct fetch *f)
{
    const struct fetch_engine *e = f->e;
    size_t max = (size_t)e->lim.max_bytes;
    if (f->want)
        return f->want;
    return e->guess < max ? e->guess : max;
}

/* Whether f may be sent now. */
static int fetch_budget_room(const struct fetch *f)
{
    const struct fetch_engine *e = f->e;
    if (e->lim.memory == 0 || e->held + e->pending == 0)
        return 1;
    return e->held + e->pending + fetch_estimate(f) <= (size_t)e->lim.memory;
}

/* f's body has arrived, failed or been cancelled: its estimate no longer counts. */
static void fetch_pending_clear(struct fetch *f)
{
    f->e->pending -= f->estimate;
    f->estimate = 0;
}

static void fetch_begin(struct fetch *f);

/* Send the fetches at the head of the queue while they have room. */
static void fetch_budget_wake(struct fetch_engine *e)
{
    struct fetch *f;
    while (!e->closing && (f = e->queued.head) != NULL && fetch_budget_room(f)) {
        fetch_queue_remove(f);
        fetch_begin(f);
    }
}

static void fetch_budget_give(struct fetch_engine *e, size_t bytes)
{
    if (bytes == 0)
        return;
    e->held -= bytes;
    fetch_budget_wake(e);
}

/* The first body byte of f is here: take its bytes, or 0 when they do not fit. */
static int fetch_budget_take(struct fetch *f)
{
    struct fetch_engine *e = f->e;
    fetch_pending_clear(f);
    if (e->lim.memory > 0 && e->held > 0 && e->held + f->want > (size_t)e->lim.memory)
        return 0;
    e->held += f->want;
    f->res->budget = f->want;
    return 1;
}

void fetch_budget_state(const struct fetch_engine *e, struct fetch_budget_state *st)
{
    st->held = e->held;
    st->pending = e->pending;
    st->requeued = e->requeued;
    st->queued = 0;
    for (const struct fetch *f = e->queued.head; f; f = f->qnext)
        st->queued++;
}

/* ---- headers and body ------------------------------------------------------------------- */

/* When `line` (n bytes, CRLF included) is the header `name`, its trimmed value into out. */
static int fetch_header(const char *line, size_t n, const char *name, char *out, size_t outlen)
{
    size_t nlen = strlen(name);
    if (n <= nlen || line[nlen] != ':' || strncasecmp(line, name, nlen) != 0)
        return 0;
    const char *v = line + nlen + 1, *end = line + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && isspace((unsigned char)end[-1]))
        end--;
    size_t vlen = (size_t)(end - v);
    if (vlen >= outlen)
        vlen = outlen - 1;
    memcpy(out, v, vlen);
    out[vlen] = '\0';
    return 1;
}

/* Retry-After: delta-seconds or an HTTP-date (RFC 9110 §10.2.3); -1 when unreadable. */
static long fetch_retry_after(const char *v)
{
    if (*v == '\0')
        return -1;
    if (strspn(v, "0123456789") == strlen(v)) {
        long secs = 0, max = FETCH_RETRY_AFTER_MAX_MS / 1000;
        for (const char *p = v; *p && secs <= max; p++)
            secs = secs * 10 + (*p - '0');
        return secs > max ? FETCH_RETRY_AFTER_MAX_MS : secs * 1000;
    }
    time_t when = curl_getdate(v, NULL);
    if (when == -1)
        return -1;
    double ms = difftime(when, time(NULL)) * 1000.0;
    if (ms < 0)
        return 0;
    return ms > (double)FETCH_RETRY_AFTER_MAX_MS ? FETCH_RETRY_AFTER_MAX_MS : (long)ms;
}

static void fetch_abort(struct fetch *f, enum fetch_class cls, const char *reason, const char *fmt,
                        ...) __attribute__((format(printf, 4, 5)));

/* Remember why a callback is about to stop the transfer; the first reason wins. */
static void fetch_abort(struct fetch *f, enum fetch_class cls, const char *reason, const char *fmt,
                        ...)
{
    if (f->abort_reason[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->abort_error, sizeof(f->abort_error), fmt, ap);
    va_end(ap);
    snprintf(f->abort_reason, sizeof(f->abort_reason), "%s", reason);
    f->abort_cls = cls;
}

static int fetch_is_image(const char *content_type)
{
    return strncasecmp(content_type, "image/", 6) == 0 && content_type[6] != '\0';
}

/* Headers end: decide about the body before a byte of it arrives. 0 to stop the transfer. */
static int fetch_headers_done(struct fetch *f)
{
    struct fetch_result *r = f->res;
    f->in_headers = 0;
    if (f->status >= 100 && f->status < 200)
        return 1; /* interim response: the real one follows */
    f->keep_body = f->status >= 200 && f->status < 300;
    if (!f->keep_body)
        return 1;
    if (!fetch_is_image(r->content_type)) {
        fetch_abort(f, FETCH_PERMANENT, "not_image_type", "Content-Type '%s' is not image/*",
                    r->content_type);
        return 0;
    }
    if (f->content_length > f->e->lim.max_bytes) {
        fetch_abort(f, FETCH_PERMANENT, "too_large", "Content-Length %ld over the %ld byte cap",
                    f->content_length, f->e->lim.max_bytes);
        return 0;
    }
    return 1;
}

static size_t fetch_header_cb(char *line, size_t size, size_t n, void *userdata)
{
    struct fetch *f = userdata;
    struct fetch_result *r = f->res;
    char value[128];
    n *= size;

    if (n > 5 && strncmp(line, "HTTP/", 5) == 0) {
        const char *sp = memchr(line, ' ', n);
        f->status = 0;
        for (const char *p = sp ? sp + 1 : line + n; p < line + n && isdigit((unsigned char)*p);
             p++)
            f->status = f->status < 1000 ? f->status * 10 + (*p - '0') : f->status;
        f->in_headers = 1;
        f->content_length = -1;
        f->keep_body = 0;
        r->content_type[0] = '\0';
        r->retry_after_ms = -1;
        return n;
    }
    if (!f->in_headers)
        return n; /* trailers: nothing in them may change a decision already made */
    if (n <= 2 && (line[0] == '\r' || line[0] == '\n'))
        return fetch_headers_done(f) ? n : 0;
    if (fetch_header(line, n, "content-type", r->content_type, sizeof(r->content_type)))
        return n;
    if (fetch_header(line, n, "retry-after", value, sizeof(value))) {
        r->retry_after_ms = fetch_retry_after(value);
        return n;
    }
    if (fetch_header(line, n, "content-length", value, sizeof(value))) {
        char *end;
        long long v = strtoll(value, &end, 10);
        if (end != value && *end == '\0' && v >= 0)
            f->content_length = v > f->e->lim.max_bytes ? f->e->lim.max_bytes + 1 : (long)v;
    }
    return n;
}

/* Grow the body geometrically, never past the cap. 0, or -1 when out of memory. */
static int fetch_body_reserve(struct fetch *f, size_t need)
{
    size_t max = (size_t)f->e->lim.max_bytes, cap = f->cap;
    if (need <= cap)
        return 0;
    if (cap == 0)
        cap = f->content_length > 0 ? (size_t)f->content_length : FETCH_BODY_FIRST;
    while (cap < need)
        cap = cap > max / 2 ? max : cap * 2;
    if (cap > max)
        cap = max;
    unsigned char *p = realloc(f->res->body, cap);
    if (p == NULL)
        return -1;
    f->res->body = p;
    f->cap = cap;
    return 0;
}

static size_t fetch_write_cb(char *data, size_t size, size_t n, void *userdata)
{
    struct fetch *f = userdata;
    size_t max = (size_t)f->e->lim.max_bytes;
    n *= size;
    if (n > max - f->received) { /* received <= max always holds */
        if (!f->keep_body) {
            f->dropped = 1; /* enough of an error page or a redirect's body */
            return 0;
        }
        fetch_abort(f, FETCH_PERMANENT, "too_large", "body over the %ld byte cap",
                    f->e->lim.max_bytes);
        return 0;
    }
    if (!f->keep_body) {
        f->received += n;
        return n;
    }
    if (f->res->budget == 0) { /* the first body byte: its bytes come from the budget first */
        f->want = f->content_length > 0 ? (size_t)f->content_length : max;
        if (!fetch_budget_take(f)) {
            f->requeue = 1; /* fetch_hop_done queues it again */
            return 0;
        }
    }
    if (n > f->res->budget - f->res->len) { /* only when a Content-Length was announced */
        fetch_abort(f, FETCH_PERMANENT, "protocol", "body longer than its Content-Length %ld",
                    f->content_length);
        return 0;
    }
    f->received += n;
    if (fetch_body_reserve(f, f->res->len + n) < 0) {
        fetch_abort(f, FETCH_TRANSIENT, "internal", "out of memory for a %zu byte body",
                    f->res->len + n);
        return 0;
    }
    memcpy(f->res->body + f->res->len, data, n);
    f->res->len += n;
    return n;
}

/* ---- SSRF guard and TLS ----------------------------------------------------------------- */

static curl_socket_t fetch_opensocket_cb(void *clientp, curlsocktype purpose,
                                         struct curl_sockaddr *a)
{
    struct fetch *f = clientp;
    char where[INET6_ADDRSTRLEN + 16];
    if (purpose != CURLSOCKTYPE_IPCXN) {
        snprintf(f->blocked, sizeof(f->blocked), "socket purpose %d refused", (int)purpose);
        return CURL_SOCKET_BAD;
    }
    const char *why = netguard_blocked(&a->addr, &f->e->allow);
    if (why) {
        snprintf(f->blocked, sizeof(f->blocked), "address %s is %s",
                 netguard_format(&a->addr, where, sizeof(where)), why);
        return CURL_SOCKET_BAD;
    }
    return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

static CURLcode fetch_ssl_ctx_cb(CURL *easy, void *ssl_ctx, void *userdata)
{
    struct fetch_engine *e = userdata;
    X509_STORE *store = SSL_CTX_get_cert_store(ssl_ctx);
    for (int i = 0; i < sk_X509_INFO_num(e->extra_ca); i++) {
        X509_INFO *info = sk_X509_INFO_value(e->extra_ca, i);
        /* Adding a certificate the store already holds succeeds (OpenSSL >= 1.1.1). */
        if (info->x509 && X509_STORE_add_cert(store, info->x509) != 1)
            return CURLE_SSL_CACERT_BADFILE;
    }
    return CURLE_OK;
}

static STACK_OF(X509_INFO) * fetch_load_ca(const char *path, char *err, size_t errlen)
{
    BIO *bio = BIO_new_file(path, "r");
    STACK_OF(X509_INFO) *infos = bio ? PEM_X509_INFO_read_bio(bio, NULL, NULL, NULL) : NULL;
    int certs = 0;
    for (int i = 0; infos && i < sk_X509_INFO_num(infos); i++)
        certs += sk_X509_INFO_value(infos, i)->x509 != NULL;
    BIO_free(bio);
    if (certs == 0) {
        snprintf(err, errlen, "CA file '%s' holds no PEM certificate", path);
        sk_X509_INFO_pop_free(infos, X509_INFO_free);
        return NULL;
    }
    return infos;
}

/* Debian's curl has both a default CA bundle file and a CA folder, and a folder disables the
 * CA store cache of curl >= 7.87: every new connection would parse the whole bundle again, about
 * 40 ms of CPU each, on the loop thread. When the bundle file exists it holds the same
 * certificates (update-ca-certificates writes both), so the folder is dropped. */
static void fetch_ca_defaults(struct fetch_engine *e)
{
    CURL *c = curl_easy_init();
    char *bundle = NULL, *folder = NULL;
    if (c == NULL)
        return;
    curl_easy_getinfo(c, CURLINFO_CAINFO, &bundle);
    curl_easy_getinfo(c, CURLINFO_CAPATH, &folder);
    e->bundle_only = bundle && folder && access(bundle, R_OK) == 0;
    curl_easy_cleanup(c);
}

/* The connect-to targets are exempt from netguard: numeric ones as given, names as they
 * resolve now (a mirror whose address changes later needs a restart). */
static int fetch_allow_targets(struct fetch_engine *e, char *err, size_t errlen)
{
    for (int i = 0; i < e->s->connect_to_count; i++) {
        const struct connect_to *ct = &e->s->connect_to[i];
        if (netguard_allow_numeric(&e->allow, ct->to_host, ct->to_port) == 0)
            continue;
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *list, *ai;
        int rc = getaddrinfo(ct->to_host, NULL, &hints, &list);
        if (rc != 0) {
            snprintf(err, errlen, "connect-to target '%s': %s", ct->to_host, gai_strerror(rc));
            return -1;
        }
        for (ai = list; ai; ai = ai->ai_next) {
            struct sockaddr_storage ss;
            if (ai->ai_addrlen > sizeof(ss))
                continue;
            memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
            if (ss.ss_family == AF_INET)
                ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)ct->to_port);
            else if (ss.ss_family == AF_INET6)
                ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)ct->to_port);
            else
                continue;
            if (netguard_allow_add(&e->allow, (struct sockaddr *)&ss) < 0) {
                freeaddrinfo(list);
                snprintf(err, errlen, "too many connect-to addresses");
                return -1;
            }
        }
        freeaddrinfo(list);
    }
    return 0;
}

/* ---- one transfer ----------------------------------------------------------------------- */

static void fetch_link(struct fetch *f)
{
    struct fetch_engine *e = f->e;
    f->next = e->fetches;
    if (e->fetches)
        e->fetches->prev = f;
    e->fetches = f;
    e->active++;
}

/* Take f out of curl and the engine; what remains is f itself and its result. */
static void fetch_detach(struct fetch *f)
{
    struct fetch_engine *e = f->e;
    if (f->in_multi)
        curl_multi_remove_handle(e->multi, f->easy);
    f->in_multi = 0;
    if (f->easy)
        curl_easy_cleanup(f->easy);
    f->easy = NULL;
    if (f->later)
        event_free(f->later);
    f->later = NULL;
    fetch_queue_remove(f);
    fetch_pending_clear(f);
    if (f->ticket)
        e->gate.drop(f->ticket);
    f->ticket = NULL;
    if (f->prev)
        f->prev->next = f->next;
    else
        e->fetches = f->next;
    if (f->next)
        f->next->prev = f->prev;
    e->active--;
}

static void fetch_finish(struct fetch *f, enum fetch_class cls, const char *reason, const char *fmt,
                         ...) __attribute__((format(printf, 4, 5)));

/* The end of every transfer that is not cancelled: fill the result, free f, call done. */
static void fetch_finish(struct fetch *f, enum fetch_class cls, const char *reason, const char *fmt,
                         ...)
{
    struct fetch_result *r = f->res;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->error, sizeof(r->error), fmt, ap);
    va_end(ap);
    r->cls = cls;
    snprintf(r->reason, sizeof(r->reason), "%s", reason);
    fetch_detach(f); /* first: giving bytes back may resume or start other transfers */
    if (cls != FETCH_OK) {
        fetch_result_drop_body(r);
        r->len = 0;
        r->engine = NULL;            /* holds nothing: may outlive the engine */
    } else if (r->budget > r->len) { /* a body without Content-Length held max_bytes */
        unsigned char *p = realloc(r->body, r->len);
        size_t spare = r->budget - r->len;
        if (p)
            r->body = p;
        r->budget = r->len;
        fetch_budget_give(f->e, spare);
    }
    if (cls == FETCH_OK) {
        /* the mean of the bodies so far, then of about the last 8 */
        struct fetch_engine *e = f->e;
        e->delivered += e->delivered < 8;
        e->guess = (size_t)((double)e->guess + ((double)r->len - (double)e->guess) / e->delivered);
        r->listed = 1;
        r->hnext = f->e->holders;
        if (r->hnext)
            r->hnext->hprev = r;
        f->e->holders = r;
    }
    fetch_budget_wake(f->e); /* its estimate, if nothing else, was given back */
    r->total_ms = clock_now_ms() - f->start_ms;
    log_debug("event=fetch_done url=%s result=%s reason=%s http=%ld bytes=%zu redirects=%d "
              "ms=%.1f",
              r->final_url,
              cls == FETCH_OK          ? "ok"
              : cls == FETCH_TRANSIENT ? "transient"
                                       : "permanent",
              r->reason, r->http_code, r->len, r->redirects, r->total_ms);

    fetch_done_fn *done = f->done;
    void *arg = f->arg;
    free(f);
    done(r, arg);
}

static void fetch_hop_reset(struct fetch *f)
{
    fetch_result_drop_body(f->res);
    f->res->len = 0;
    f->cap = 0;
    f->want = 0;
    f->received = 0;
    f->status = 0;
    f->content_length = -1;
    f->in_headers = 0;
    f->keep_body = 0;
    f->dropped = 0;
    f->abort_reason[0] = '\0';
    f->abort_error[0] = '\0';
    f->blocked[0] = '\0';
    f->errbuf[0] = '\0';
}

static long fetch_remaining_ms(const struct fetch *f)
{
    double left = f->deadline_ms - clock_now_ms();
    return left < 1 ? 0 : (long)left;
}

static int fetch_easy_setup(struct fetch *f)
{
    struct fetch_engine *e = f->e;
    const struct fetch_limits *lim = &e->lim;
    CURL *c = f->easy;
    CURLcode rc = CURLE_OK;
#define SET(opt, val)                                                                              \
    do {                                                                                           \
        if (rc == CURLE_OK)                                                                        \
            rc = curl_easy_setopt(c, opt, val);                                                    \
    } while (0)
    SET(CURLOPT_PRIVATE, f);
    SET(CURLOPT_ERRORBUFFER, f->errbuf);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_FOLLOWLOCATION, 0L); /* hops are followed by fetch_follow, checked */
    SET(CURLOPT_PROXY, "");          /* no proxy from the environment: addresses are checked */
    SET(CURLOPT_USERAGENT, e->user_agent);
    SET(CURLOPT_HTTPHEADER, e->headers);
    SET(CURLOPT_CONNECT_TO, e->connect_to);
    SET(CURLOPT_OPENSOCKETFUNCTION, fetch_opensocket_cb);
    SET(CURLOPT_OPENSOCKETDATA, f);
    SET(CURLOPT_HEADERFUNCTION, fetch_header_cb);
    SET(CURLOPT_HEADERDATA, f);
    SET(CURLOPT_WRITEFUNCTION, fetch_write_cb);
    SET(CURLOPT_WRITEDATA, f);
    SET(CURLOPT_TCP_KEEPALIVE, 1L);
    if (lim->connect_timeout_ms > 0)
        SET(CURLOPT_CONNECTTIMEOUT_MS, lim->connect_timeout_ms);
    if (lim->low_speed_secs > 0) {
        SET(CURLOPT_LOW_SPEED_LIMIT, lim->low_speed_bytes);
        SET(CURLOPT_LOW_SPEED_TIME, lim->low_speed_secs);
    }
    if (e->bundle_only)
        SET(CURLOPT_CAPATH, NULL);
    if (e->extra_ca) {
        SET(CURLOPT_SSL_CTX_FUNCTION, fetch_ssl_ctx_cb);
        SET(CURLOPT_SSL_CTX_DATA, e);
    }
#undef SET
    return rc == CURLE_OK ? 0 : -1;
}

/* Start the hop to f->res->final_url with `left_ms` to go. 0, or -1 when curl refuses. */
static int fetch_hop(struct fetch *f, long left_ms)
{
    fetch_hop_reset(f);
    /* HTTP/2 (over TLS only): wait for a connection to multiplex on. Not for http://, which has
     * no HTTP/2 to wait for (cleartext HTTP/2 needs prior knowledge), and where curl would hold
     * the other transfers to the host back until one of them ends. */
    long pipewait = strncasecmp(f->res->final_url, "https:", 6) == 0;
    if (curl_easy_setopt(f->easy, CURLOPT_PIPEWAIT, pipewait) != CURLE_OK ||
        curl_easy_setopt(f->easy, CURLOPT_URL, f->res->final_url) != CURLE_OK ||
        curl_easy_setopt(f->easy, CURLOPT_TIMEOUT_MS, left_ms) != CURLE_OK ||
        curl_multi_add_handle(f->e->multi, f->easy) != CURLM_OK)
        return -1;
    f->in_multi = 1;
    f->hop_ms = clock_now_ms();
    return 0;
}

/* A 3xx with a Location: follow it if it is allowed. `location` belongs to the easy handle and
 * is copied before the handle changes. */
static int fetch_gate_ask(struct fetch *f, long left_ms);

static void fetch_follow(struct fetch *f, const char *location)
{
    struct fetch_result *r = f->res;
    if (r->redirects >= f->e->lim.max_redirects) {
        fetch_finish(f, FETCH_PERMANENT, "too_many_redirects",
                     "more than %d redirects, next: %.200s", f->e->lim.max_redirects, location);
        return;
    }
    enum url_reason why = url_check_hop(location, &f->e->s->allowed);
    if (why != URL_OK) {
        fetch_finish(f, FETCH_PERMANENT,
                     why == URL_BAD_SCHEME ? "redirect_scheme" : "redirect_host",
                     "redirect to %.200s refused: %s", location, url_reason_name(why));
        return;
    }
    memcpy(r->final_url, location, strlen(location) + 1); /* url_check_hop: <= URL_MAX */
    curl_multi_remove_handle(f->e->multi, f->easy);
    f->in_multi = 0;
    r->redirects++;
    long left = fetch_remaining_ms(f);
    if (left == 0)
        fetch_finish(f, FETCH_TRANSIENT, "timeout", "%ld ms spent before hop %d",
                     f->e->lim.total_timeout_ms, r->redirects);
    else if (fetch_gate_ask(f, left) == 0 && fetch_hop(f, left) < 0)
        fetch_finish(f, FETCH_TRANSIENT, "internal", "cannot start hop %d", r->redirects);
}

static void fetch_http_done(struct fetch *f)
{
    struct fetch_result *r = f->res;
    long code = r->http_code;
    if (code >= 200 && code < 300) {
        if (r->len == 0)
            fetch_finish(f, FETCH_PERMANENT, "empty_body", "HTTP %ld with no body", code);
        else
            fetch_finish(f, FETCH_OK, "ok", "%s", "");
    } else if (code == 408 || code == 429) {
        fetch_finish(f, FETCH_TRANSIENT, code == 408 ? "http_408" : "http_429", "HTTP %ld", code);
    } else if (code >= 500 && code <= 599) {
        fetch_finish(f, FETCH_TRANSIENT, "http_5xx", "HTTP %ld", code);
    } else if (code >= 100 && code <= 599) {
        char reason[FETCH_REASON_MAX];
        snprintf(reason, sizeof(reason), "http_%03ld", code);
        fetch_finish(f, FETCH_PERMANENT, reason, "HTTP %ld", code);
    } else {
        fetch_finish(f, FETCH_PERMANENT, "protocol", "HTTP status %ld", code);
    }
}

static void fetch_curl_failed(struct fetch *f, CURLcode rc)
{
    const char *detail = f->errbuf[0] ? f->errbuf : curl_easy_strerror(rc);
    enum fetch_class cls = FETCH_TRANSIENT;
    const char *reason;
    switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
        reason = "dns";
        break;
    case CURLE_COULDNT_CONNECT:
        if (f->blocked[0]) {
            fetch_finish(f, FETCH_PERMANENT, "blocked_address", "%s", f->blocked);
            return;
        }
        reason = "connect";
        break;
    case CURLE_OPERATION_TIMEDOUT:
        reason = "timeout";
        break;
    case CURLE_PARTIAL_FILE:
        reason = "truncated";
        break;
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        reason = f->received > 0 ? "truncated" : "network";
        break;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
        /* Transient: a certificate problem is usually the operator's to fix, and entries
         * retried meanwhile succeed afterwards instead of being dead-lettered. */
        reason = "tls";
        break;
    case CURLE_OUT_OF_MEMORY:
        reason = "internal";
        break;
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
        cls = FETCH_PERMANENT;
        reason = "bad_url";
        break;
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_BAD_CONTENT_ENCODING:
        cls = FETCH_PERMANENT;
        reason = "protocol";
        break;
    default:
        reason = "network";
        break;
    }
    fetch_finish(f, cls, reason, "%s (curl %d)", detail, (int)rc);
}

/* The body did not fit when its first byte came: send this hop again once its length fits,
 * before any fetch queued after it. */
static void fetch_requeue(struct fetch *f)
{
    struct fetch_engine *e = f->e;
    size_t want = f->want;
    curl_multi_remove_handle(e->multi, f->easy);
    f->in_multi = 0;
    fetch_hop_reset(f);
    f->want = want;
    f->requeue = 0;
    e->requeued++;
    log_debug("event=fetch_requeued url=%s bytes=%zu held=%zu", f->res->final_url, want, e->held);
    fetch_queue_push(&e->queued, f, 1);
    fetch_budget_wake(e);
}

/* The gate is told how the hop ended. 1 when the host said to wait (429): the hop waits for the
 * gate and goes again, the fetch neither failed nor done. A 503 pauses the host too (the gate's
 * business) but fails the fetch as the 5xx it is: a URL its origin cannot serve still ends. */
static int fetch_gate_done(struct fetch *f, CURLcode rc, long code)
{
    enum fetch_hop_end end = FETCH_HOP_FAILED;
    if (f->abort_reason[0])
        end = code > 0 ? FETCH_HOP_ANSWERED : FETCH_HOP_LOCAL;
    else if (rc == CURLE_OK || (rc == CURLE_WRITE_ERROR && f->dropped))
        end = FETCH_HOP_ANSWERED;
    else if (rc == CURLE_OPERATION_TIMEDOUT)
        end = FETCH_HOP_TIMEOUT;
    else if (rc == CURLE_COULDNT_CONNECT && f->blocked[0])
        end = FETCH_HOP_LOCAL;
    void *ticket = f->ticket;
    f->ticket = NULL;
    f->e->gate.done(ticket, end, code, f->res->retry_after_ms, clock_now_ms() - f->hop_ms);
    long left = f->res->redirects ? fetch_remaining_ms(f) : f->e->lim.total_timeout_ms;
    if (end != FETCH_HOP_ANSWERED || f->abort_reason[0] || code != 429 || left == 0)
        return 0;
    curl_multi_remove_handle(f->e->multi, f->easy);
    f->in_multi = 0;
    fetch_pending_clear(f); /* a waiting fetch holds no budget */
    if (f->res->redirects == 0)
        f->sent = 0; /* the first hop again: through the budget once the gate lets it go */
    if (fetch_gate_ask(f, left))
        return 1;
    f->sent = 1;
    return 0; /* no ticket to be had: it ends as the transient failure it is */
}

/* One hop ended (CURLMSG_DONE): finish, or follow a redirect. */
static void fetch_hop_done(struct fetch *f, CURLcode rc)
{
    struct fetch_result *r = f->res;
    curl_off_t connect_us = 0, ttfb_us = 0;
    const char *ctype = NULL;
    long code = 0, connects = 0;
    curl_easy_getinfo(f->easy, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_getinfo(f->easy, CURLINFO_NUM_CONNECTS, &connects);
    r->connections += (int)connects;
    curl_easy_getinfo(f->easy, CURLINFO_CONNECT_TIME_T, &connect_us);
    curl_easy_getinfo(f->easy, CURLINFO_STARTTRANSFER_TIME_T, &ttfb_us);
    if (curl_easy_getinfo(f->easy, CURLINFO_CONTENT_TYPE, &ctype) == CURLE_OK && ctype)
        snprintf(r->content_type, sizeof(r->content_type), "%s", ctype);
    r->http_code = code;
    r->connect_ms = (double)connect_us / 1e3;
    r->ttfb_ms = (double)ttfb_us / 1e3;

    if (f->requeue) { /* the same request again: it keeps its ticket */
        fetch_requeue(f);
        return;
    }
    if (f->ticket && fetch_gate_done(f, rc, code))
        return;
    if (f->abort_reason[0]) {
        fetch_finish(f, f->abort_cls, f->abort_reason, "%s", f->abort_error);
        return;
    }
    if (rc == CURLE_WRITE_ERROR && f->dropped)
        rc = CURLE_OK; /* an over-long error page or redirect body: the status says enough */
    if (rc != CURLE_OK) {
        fetch_curl_failed(f, rc);
        return;
    }
    if (code >= 300 && code < 400) {
        const char *location = NULL;
        curl_easy_getinfo(f->easy, CURLINFO_REDIRECT_URL, &location);
        if (location && *location) {
            fetch_follow(f, location);
            return;
        }
    }
    fetch_http_done(f);
}

/* ---- the loop side ---------------------------------------------------------------------- */

static void fetch_drain(struct fetch_engine *e)
{
    CURLMsg *m;
    int left;
    /* One message at a time: a done callback may cancel other fetches, and removing a handle
     * also removes its queued message, so nothing read here can dangle. */
    while ((m = curl_multi_info_read(e->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        CURLcode rc = m->data.result;
        char *priv = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
        if (*(int *)(void *)priv)
            fetch_foreign_done((struct fetch_foreign *)(void *)priv, rc);
        else
            fetch_hop_done((struct fetch *)(void *)priv, rc);
    }
}

static void fetch_event_cb(evutil_socket_t fd, short kind, void *arg)
{
    struct fetch_engine *e = arg;
    int action =
        ((kind & EV_READ) ? CURL_CSELECT_IN : 0) | ((kind & EV_WRITE) ? CURL_CSELECT_OUT : 0);
    int running;
    curl_multi_socket_action(e->multi, fd, action, &running);
    fetch_drain(e);
}

static void fetch_timer_cb(evutil_socket_t fd, short kind, void *arg)
{
    struct fetch_engine *e = arg;
    int running;
    curl_multi_socket_action(e->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    fetch_drain(e);
}

/* CURLMOPT_TIMERFUNCTION: curl asks to be woken up after timeout_ms (-1: never). */
static int fetch_multi_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    struct fetch_engine *e = userp;
    if (timeout_ms < 0) {
        evtimer_del(e->timer);
        return 0;
    }
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    return evtimer_add(e->timer, &tv) == 0 ? 0 : -1;
}

static void fetch_sock_free(struct fetch_sock *fs)
{
    struct fetch_engine *e = fs->e;
    if (fs->prev)
        fs->prev->next = fs->next;
    else
        e->socks = fs->next;
    if (fs->next)
        fs->next->prev = fs->prev;
    if (fs->ev)
        event_free(fs->ev);
    free(fs);
}

/* CURLMOPT_SOCKETFUNCTION: watch fd for what curl wants, or forget it. */
static int fetch_multi_sock_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *sockp)
{
    struct fetch_engine *e = userp;
    struct fetch_sock *fs = sockp;
    if (what == CURL_POLL_REMOVE) {
        if (fs)
            fetch_sock_free(fs);
        curl_multi_assign(e->multi, fd, NULL);
        return 0;
    }
    if (fs == NULL) {
        fs = calloc(1, sizeof(*fs));
        if (fs == NULL)
            return -1;
        fs->e = e;
        fs->fd = fd;
        fs->next = e->socks;
        if (e->socks)
            e->socks->prev = fs;
        e->socks = fs;
        curl_multi_assign(e->multi, fd, fs);
    }
    short kind = (short)(((what & CURL_POLL_IN) ? EV_READ : 0) |
                         ((what & CURL_POLL_OUT) ? EV_WRITE : 0) | EV_PERSIST);
    if (fs->ev) {
        event_free(fs->ev);
        fs->ev = NULL;
    }
    fs->ev = event_new(e->base, fd, kind, fetch_event_cb, e);
    if (fs->ev == NULL || event_add(fs->ev, NULL) < 0)
        return -1;
    return 0;
}

static void fetch_later_cb(evutil_socket_t fd, short kind, void *arg)
{
    struct fetch *f = arg;
    fetch_finish(f, f->abort_cls, f->abort_reason, "%s", f->abort_error);
}

/* Complete f on a later loop iteration: done never runs inside fetch_start, nor inside whatever
 * gave bytes back to the budget. The event exists from fetch_start on, so this cannot fail for
 * want of memory. */
static int fetch_later(struct fetch *f, enum fetch_class cls, const char *reason, const char *error)
{
    struct timeval now = {0, 0};
    f->abort_cls = cls;
    snprintf(f->abort_reason, sizeof(f->abort_reason), "%s", reason);
    snprintf(f->abort_error, sizeof(f->abort_error), "%s", error);
    return evtimer_add(f->later, &now);
}

/* Send the request now, its body's estimate counted: the fetch-timeout starts here, not when
 * the budget queued it. 0, or -1 when curl refuses. */
static int fetch_send(struct fetch *f)
{
    f->sent = 1;
    f->estimate = fetch_estimate(f);
    f->e->pending += f->estimate;
    f->deadline_ms = clock_now_ms() + (double)f->e->lim.total_timeout_ms;
    if (fetch_hop(f, f->e->lim.total_timeout_ms) == 0)
        return 0;
    fetch_pending_clear(f);
    return -1;
}

static void fetch_begin(struct fetch *f)
{
    if (fetch_send(f) < 0)
        fetch_later(f, FETCH_TRANSIENT, "internal", "cannot start the transfer");
}

/* The first hop may go as far as its host is concerned: sent now, or queued for the budget. The
 * host is asked first so that a fetch waiting for its host holds no budget; one the budget then
 * holds back keeps its host slot meanwhile (its lease outlives the fetch timeout by a margin). */
static int fetch_admit(struct fetch *f)
{
    struct fetch_engine *e = f->e;
    if (e->lim.memory > 0 && (e->queued.head || !fetch_budget_room(f))) {
        fetch_queue_push(&e->queued, f, 0);
        return 0;
    }
    return fetch_send(f);
}

/* The gate lets the waiting hop go: the first through fetch_admit, a later one at once, with the
 * time it had left when it began to wait. */
static void fetch_gate_go(void *arg, int waited)
{
    struct fetch *f = arg;
    f->res->host_waits += waited;
    f->res->host_wait_ms += clock_now_ms() - f->gate_ms;
    if (!f->sent) {
        if (fetch_admit(f) < 0)
            fetch_finish(f, FETCH_TRANSIENT, "internal", "cannot start the transfer");
        return;
    }
    f->deadline_ms = clock_now_ms() + (double)f->gate_left_ms;
    if (fetch_hop(f, f->gate_left_ms) < 0)
        fetch_finish(f, FETCH_TRANSIENT, "internal", "cannot start hop %d", f->res->redirects);
}

/* Ask the gate for the next hop. 1: it waits (fetch_gate_go follows); 0: no gate, go now. */
static int fetch_gate_ask(struct fetch *f, long left_ms)
{
    struct fetch_engine *e = f->e;
    if (e->gate.ask == NULL)
        return 0;
    f->gate_left_ms = left_ms;
    f->gate_ms = clock_now_ms();
    f->ticket = e->gate.ask(e->gate.ctx, f->res->final_url, fetch_gate_go, f);
    return f->ticket != NULL;
}

struct fetch *fetch_start(struct fetch_engine *e, const char *url, fetch_done_fn *done, void *arg)
{
    struct fetch *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return NULL;
    f->e = e;
    f->done = done;
    f->arg = arg;
    f->start_ms = clock_now_ms();
    f->deadline_ms = f->start_ms + (double)e->lim.total_timeout_ms;
    f->res = fetch_result_new(e, url);
    f->later = evtimer_new(e->base, fetch_later_cb, f);
    if (f->res == NULL || f->later == NULL)
        goto err;

    enum url_reason why = url_check_hop(url, &e->s->allowed);
    if (why != URL_OK) {
        char error[64];
        snprintf(error, sizeof(error), "URL refused before any connection: %s",
                 url_reason_name(why));
        if (fetch_later(f, FETCH_PERMANENT, url_reason_name(why), error) < 0)
            goto err;
    } else {
        f->easy = curl_easy_init();
        if (f->easy == NULL || fetch_easy_setup(f) < 0)
            goto err;
        if (fetch_gate_ask(f, e->lim.total_timeout_ms) == 0 && fetch_admit(f) < 0)
            goto err;
    }
    fetch_link(f);
    return f;
err:
    if (f->later)
        event_free(f->later);
    if (f->easy)
        curl_easy_cleanup(f->easy);
    fetch_result_free(f->res);
    free(f);
    return NULL;
}

void fetch_cancel(struct fetch *f)
{
    if (f == NULL)
        return;
    struct fetch_engine *e = f->e;
    fetch_detach(f);
    fetch_result_free(f->res);
    free(f);
    fetch_budget_wake(e);
}

int fetch_active(const struct fetch_engine *e)
{
    return e->active;
}

void fetch_engine_gate(struct fetch_engine *e, const struct fetch_gate *g)
{
    e->gate = *g;
}

/* ---- the engine ------------------------------------------------------------------------- */

static int fetch_limits_check(const struct fetch_limits *lim, char *err, size_t errlen)
{
    if (lim->max_bytes < 1 || lim->max_bytes > FETCH_MAX_BYTES_MAX)
        snprintf(err, errlen, "max_bytes must be 1..%ld", FETCH_MAX_BYTES_MAX);
    else if (lim->memory != 0 && lim->memory < lim->max_bytes)
        snprintf(err, errlen,
                 "the download memory (%ld bytes) must hold one body of max_bytes "
                 "(%ld)",
                 lim->memory, lim->max_bytes);
    else if (lim->total_timeout_ms < 1)
        snprintf(err, errlen, "total_timeout_ms must be positive");
    else if (lim->connect_timeout_ms < 0 || lim->low_speed_bytes < 0 || lim->low_speed_secs < 0)
        snprintf(err, errlen, "timeouts and low-speed limits must not be negative");
    else if (lim->max_redirects < 0 || lim->max_redirects > FETCH_REDIRECTS_MAX)
        snprintf(err, errlen, "max_redirects must be 0..%d", FETCH_REDIRECTS_MAX);
    else
        return 0;
    return -1;
}

static int fetch_connect_to_list(struct fetch_engine *e, char *err, size_t errlen)
{
    for (int i = 0; i < e->s->connect_to_count; i++) {
        const struct connect_to *ct = &e->s->connect_to[i];
        char entry[URL_HOST_MAX + 300];
        snprintf(entry, sizeof(entry), "%s:%d:%s:%d", ct->host, ct->port, ct->to_host, ct->to_port);
        struct curl_slist *l = curl_slist_append(e->connect_to, entry);
        if (l == NULL) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        e->connect_to = l;
    }
    return 0;
}

struct fetch_engine *fetch_engine_new(struct event_base *base, const struct settings *s,
                                      const struct fetch_limits *lim, char *err, size_t errlen)
{
    if (fetch_limits_check(lim, err, errlen) < 0)
        return NULL;
    /* Thread-safe and reference-counted since curl 7.84; paired with the cleanup in _free. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(err, errlen, "curl_global_init failed");
        return NULL;
    }
    const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
    struct fetch_engine *e = calloc(1, sizeof(*e));
    if (e == NULL) {
        snprintf(err, errlen, "out of memory");
        curl_global_cleanup();
        return NULL;
    }
    e->base = base;
    e->s = s;
    e->lim = *lim;
    e->guess = FETCH_GUESS_FIRST;
    snprintf(e->user_agent, sizeof(e->user_agent), "pixflow/%s", PIXFLOW_VERSION);

    if (!(v->features & CURL_VERSION_ASYNCHDNS)) {
        snprintf(err, errlen, "libcurl %s resolves names synchronously: it would block the loop",
                 v->version);
        goto err;
    }
    if (s->ca_file) {
        e->extra_ca = fetch_load_ca(s->ca_file, err, errlen);
        if (e->extra_ca == NULL)
            goto err;
    }
    fetch_ca_defaults(e);
    if (fetch_allow_targets(e, err, errlen) < 0 || fetch_connect_to_list(e, err, errlen) < 0)
        goto err;
    e->headers = curl_slist_append(NULL, "Accept: image/*");
    e->multi = curl_multi_init();
    e->timer = evtimer_new(base, fetch_timer_cb, e);
    if (e->headers == NULL || e->multi == NULL || e->timer == NULL) {
        snprintf(err, errlen, "out of memory");
        goto err;
    }
    curl_multi_setopt(e->multi, CURLMOPT_SOCKETFUNCTION, fetch_multi_sock_cb);
    curl_multi_setopt(e->multi, CURLMOPT_SOCKETDATA, e);
    curl_multi_setopt(e->multi, CURLMOPT_TIMERFUNCTION, fetch_multi_timer_cb);
    curl_multi_setopt(e->multi, CURLMOPT_TIMERDATA, e);
    if (lim->idle_connections > 0)
        curl_multi_setopt(e->multi, CURLMOPT_MAXCONNECTS, lim->idle_connections);
    log_info("event=fetch_engine curl=%s tls=%s async_dns=yes http2=%s user_agent=%s "
             "connect_to=%d extra_ca=%s",
             v->version, v->ssl_version ? v->ssl_version : "none",
             (v->features & CURL_VERSION_HTTP2) ? "yes" : "no", e->user_agent, s->connect_to_count,
             s->ca_file ? s->ca_file : "none");
    return e;
err:
    fetch_engine_free(e);
    return NULL;
}

void fetch_engine_free(struct fetch_engine *e)
{
    if (e == NULL)
        return;
    e->closing = 1;
    while (e->fetches)
        fetch_cancel(e->fetches);
    while (e->others)
        fetch_engine_remove(e, e->others->easy);
    for (struct fetch_result *r = e->holders, *next; r; r = next) {
        next = r->hnext; /* results the caller frees later give nothing back */
        r->engine = NULL;
        r->listed = 0;
        r->hprev = r->hnext = NULL;
    }
    if (e->multi)
        curl_multi_cleanup(e->multi);
    /* curl does not always report CURL_POLL_REMOVE for connections closed by the cleanup. */
    while (e->socks)
        fetch_sock_free(e->socks);
    if (e->timer)
        event_free(e->timer);
    curl_slist_free_all(e->connect_to);
    curl_slist_free_all(e->headers);
    sk_X509_INFO_pop_free(e->extra_ca, X509_INFO_free);
    free(e);
    curl_global_cleanup();
}

/* ---- transfers of other modules --------------------------------------------------------- */

static void fetch_foreign_unlink(struct fetch_foreign *ff)
{
    struct fetch_engine *e = ff->e;
    curl_multi_remove_handle(e->multi, ff->easy);
    if (ff->prev)
        ff->prev->next = ff->next;
    else
        e->others = ff->next;
    if (ff->next)
        ff->next->prev = ff->prev;
}

static void fetch_foreign_done(struct fetch_foreign *ff, CURLcode rc)
{
    void (*done)(CURL *, CURLcode, void *) = ff->done;
    CURL *easy = ff->easy;
    void *arg = ff->arg;
    fetch_foreign_unlink(ff);
    free(ff);
    done(easy, rc, arg);
}

int fetch_engine_add(struct fetch_engine *e, CURL *easy,
                     void (*done)(CURL *easy, CURLcode rc, void *arg), void *arg)
{
    struct fetch_foreign *ff = calloc(1, sizeof(*ff));
    if (ff == NULL)
        return -1;
    ff->foreign = 1;
    ff->e = e;
    ff->easy = easy;
    ff->done = done;
    ff->arg = arg;
    if (curl_easy_setopt(easy, CURLOPT_PRIVATE, ff) != CURLE_OK ||
        curl_multi_add_handle(e->multi, easy) != CURLM_OK) {
        free(ff);
        return -1;
    }
    ff->next = e->others;
    if (e->others)
        e->others->prev = ff;
    e->others = ff;
    return 0;
}

void fetch_engine_remove(struct fetch_engine *e, CURL *easy)
{
    for (struct fetch_foreign *ff = e->others; ff; ff = ff->next)
        if (ff->easy == easy) {
            fetch_foreign_unlink(ff);
            free(ff);
            return;
        }
}
