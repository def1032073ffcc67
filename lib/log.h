/* log.h -- one line per event, "ts level key=value ...", safe from any thread. */
#ifndef PIXFLOW_LOG_H
#define PIXFLOW_LOG_H

enum log_level { LL_DEBUG, LL_INFO, LL_WARN, LL_ERROR };

/* Called once at start, before any thread exists. */
void log_init(const char *prog, enum log_level min, int json);
int log_level_parse(const char *text, enum log_level *out);
int log_enabled(enum log_level level);

/* The format is the event's key=value pairs, e.g. "event=start redis=%s:%d error=%s". Each
 * " key=" in the format starts a field; its value is everything up to the next one, formatted
 * from its own arguments, then escaped and (if it holds spaces, quotes or control characters)
 * quoted by the logger: callers never quote or escape. Text before any key is the "msg" field.
 * URL credentials in values are masked. In JSON mode the same fields become members. */
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LL_DEBUG, __VA_ARGS__)
#define log_info(...)  log_msg(LL_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LL_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LL_ERROR, __VA_ARGS__)

#endif
