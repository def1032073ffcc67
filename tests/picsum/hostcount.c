/* hostcount.c -- requests at once and per second for each Host header.
 *
 * Each host keeps the start times of its last HOSTCOUNT_RING requests: the requests that began
 * within the second before a new one are those still in the ring after the older ones are dropped,
 * so the peak per second is exact as long as fewer than HOSTCOUNT_RING begin within a second.
 * Requests in flight are a small array searched linearly: a test server holds few at once. */
#include "hostcount.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/keyvalq_struct.h>

#include "stats.h"

#define HOSTCOUNT_HOSTS  16
#define HOSTCOUNT_RING   4096
#define HOSTCOUNT_FLIGHT 8192
#define HOSTCOUNT_NAME   256

struct hostcount_host {
    char name[HOSTCOUNT_NAME];
    unsigned long requests;
    long in_flight, peak, peak_per_s;
    double last_at; /* wall clock, seconds */
    double ring[HOSTCOUNT_RING];
    size_t first, count; /* the ring's oldest start time and how many it holds */
};

struct hostcount_flight {
    struct evhttp_request *req;
    int host;
};

struct hostcount {
    struct hostcount_host hosts[HOSTCOUNT_HOSTS];
    int nhosts;
    struct hostcount_flight flight[HOSTCOUNT_FLIGHT];
    size_t nflight;
};

struct hostcount *hostcount_new(void)
{
    return calloc(1, sizeof(struct hostcount));
}

void hostcount_free(struct hostcount *hc)
{
    free(hc);
}

static double hostcount_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The host's index, made when new; -1 when the table is full. */
static int hostcount_host(struct hostcount *hc, const char *header)
{
    char name[HOSTCOUNT_NAME];
    size_t len = strcspn(header != NULL ? header : "", ":");

    if (len >= sizeof(name))
        len = sizeof(name) - 1;
    memcpy(name, header != NULL ? header : "", len);
    name[len] = '\0';
    for (int i = 0; i < hc->nhosts; i++)
        if (strcmp(hc->hosts[i].name, name) == 0)
            return i;
    if (hc->nhosts == HOSTCOUNT_HOSTS)
        return -1;
    snprintf(hc->hosts[hc->nhosts].name, HOSTCOUNT_NAME, "%s", name);
    return hc->nhosts++;
}

void hostcount_begin(struct hostcount *hc, struct evhttp_request *req)
{
    const char *header = evhttp_find_header(evhttp_request_get_input_headers(req), "Host");
    int i = hostcount_host(hc, header);
    struct hostcount_host *h;
    double now = hostcount_now();

    if (i < 0 || hc->nflight == HOSTCOUNT_FLIGHT)
        return;
    h = &hc->hosts[i];
    hc->flight[hc->nflight++] = (struct hostcount_flight){req, i};
    h->requests++;
    h->last_at = now;
    if (++h->in_flight > h->peak)
        h->peak = h->in_flight;
    while (h->count > 0 && h->ring[h->first] <= now - 1.0) {
        h->first = (h->first + 1) % HOSTCOUNT_RING;
        h->count--;
    }
    if (h->count == HOSTCOUNT_RING) { /* more than the ring in a second: keep the newest */
        h->first = (h->first + 1) % HOSTCOUNT_RING;
        h->count--;
    }
    h->ring[(h->first + h->count++) % HOSTCOUNT_RING] = now;
    if ((long)h->count > h->peak_per_s)
        h->peak_per_s = (long)h->count;
}

void hostcount_end(struct hostcount *hc, struct evhttp_request *req)
{
    for (size_t i = 0; i < hc->nflight; i++) {
        if (hc->flight[i].req != req)
            continue;
        hc->hosts[hc->flight[i].host].in_flight--;
        hc->flight[i] = hc->flight[--hc->nflight];
        return;
    }
}

void hostcount_reset(struct hostcount *hc)
{
    for (int i = 0; i < hc->nhosts; i++) {
        struct hostcount_host *h = &hc->hosts[i];

        h->requests = 0;
        h->peak = h->in_flight;
        h->peak_per_s = 0;
        h->first = h->count = 0;
    }
}

void hostcount_json(const struct hostcount *hc, struct evbuffer *out)
{
    evbuffer_add(out, "{", 1);
    for (int i = 0; i < hc->nhosts; i++) {
        const struct hostcount_host *h = &hc->hosts[i];

        if (i > 0)
            evbuffer_add(out, ", ", 2);
        stats_json_string(h->name, out);
        evbuffer_add_printf(out,
                            ": {\"requests\": %lu, \"in_flight\": %ld, \"peak_in_flight\": %ld, "
                            "\"peak_per_second\": %ld, \"last_at\": %.6f}",
                            h->requests, h->in_flight, h->peak, h->peak_per_s, h->last_at);
    }
    evbuffer_add(out, "}", 1);
}
