/* report.c -- the summary line and the "how far did it get" message. */
#include "report.h"

#include <string.h>

/* A JSON string body: quotes, backslashes and every byte outside printable ASCII escaped
 * (a file name need not be UTF-8, the output must stay valid JSON). */
static void report_json_string(FILE *out, const char *s)
{
    putc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(out, "\\%c", *p);
        else if (*p < 0x20 || *p >= 0x7f)
            fprintf(out, "\\u%04x", *p);
        else
            putc(*p, out);
    }
    putc('"', out);
}

static void report_json(FILE *out, const struct report *r)
{
    const struct batch_counts *c = r->counts;
    fprintf(out, "{\"status\":\"%s\",\"lines\":%lu,\"queued\":%lu,\"duplicates\":%lu,", r->status,
            c->lines, c->queued, c->dup_input + c->dup_seen);
    fprintf(out, "\"duplicates_input\":%lu,\"duplicates_seen\":%lu,\"invalid\":%lu,", c->dup_input,
            c->dup_seen, c->invalid);
    fputs("\"invalid_reasons\":{", out);
    const char *sep = "";
    for (int i = 0; i < URL_REASON_COUNT; i++) {
        if (c->invalid_by[i]) {
            fprintf(out, "%s\"%s\":%lu", sep, url_reason_name((enum url_reason)i),
                    c->invalid_by[i]);
            sep = ",";
        }
    }
    fprintf(out, "},\"blank\":%lu,\"last_source\":", c->blank);
    if (r->acked->source[0])
        report_json_string(out, r->acked->source);
    else
        fputs("null", out);
    fprintf(out, ",\"last_line\":%lu,\"elapsed_s\":%.3f,\"lines_per_s\":%.0f,", r->acked->line,
            r->elapsed_s, r->elapsed_s > 0 ? (double)c->lines / r->elapsed_s : 0.0);
    if (r->watch)
        fprintf(out, "\"files_done\":%lu,\"files_failed\":%lu,", r->files_done, r->files_failed);
    fprintf(out, "\"dedup_bytes\":%zu,\"dedup_full\":%s}\n", r->dedup_bytes,
            r->dedup_full ? "true" : "false");
}

static void report_text(FILE *out, const struct report *r)
{
    const struct batch_counts *c = r->counts;
    fprintf(out, "ingest %s: lines=%lu queued=%lu duplicates=%lu (input=%lu seen=%lu) invalid=%lu",
            r->status, c->lines, c->queued, c->dup_input + c->dup_seen, c->dup_input, c->dup_seen,
            c->invalid);
    if (c->invalid) {
        const char *sep = " (";
        for (int i = 0; i < URL_REASON_COUNT; i++) {
            if (c->invalid_by[i]) {
                fprintf(out, "%s%s=%lu", sep, url_reason_name((enum url_reason)i),
                        c->invalid_by[i]);
                sep = " ";
            }
        }
        putc(')', out);
    }
    fprintf(out, " blank=%lu", c->blank);
    if (r->watch)
        fprintf(out, " files_done=%lu files_failed=%lu", r->files_done, r->files_failed);
    if (r->acked->source[0])
        fprintf(out, " last=%s:%lu", r->acked->source, r->acked->line);
    fprintf(out, " elapsed=%.3fs rate=%.0f/s", r->elapsed_s,
            r->elapsed_s > 0 ? (double)c->lines / r->elapsed_s : 0.0);
    if (r->dedup_full)
        fputs(" dedup=full", out);
    putc('\n', out);
}

void report_summary(FILE *out, const struct report *r, int json)
{
    if (json)
        report_json(out, r);
    else
        report_text(out, r);
    fflush(out);
}

void report_how_far(FILE *out, const char *prog, const struct push_mark *acked,
                    unsigned long window, const char *watch_dir)
{
    if (watch_dir) {
        fprintf(out,
                "%s: files in %s/.done/ are fully queued; the file being read stays in %s and "
                "the next run reads it again from line 1 (URLs queued twice are harmless: the "
                "consumer keeps the first, SADD on the seen set drops the rest)\n",
                prog, watch_dir, watch_dir);
        return;
    }
    if (acked->source[0] == '\0') {
        fprintf(out,
                "%s: no batch was acknowledged by Redis; rerun the same command (URLs queued "
                "twice are harmless: the consumer's SADD on the seen set drops repeats)\n",
                prog);
        return;
    }
    fprintf(out,
            "%s: acknowledged by Redis: everything up to %s line %lu (counted and in the "
            "stream)",
            prog, acked->source, acked->line);
    if (window)
        fprintf(out, "; up to %lu lines after it may be in the stream too", window);
    fprintf(out,
            ". Rerun with --resume '%s:%lu' and the same inputs to go on: nothing is lost, the "
            "counters count each line once, and a URL sent twice is dropped by the consumer's "
            "SADD on the seen set\n",
            acked->source, acked->line);
}
