/* log.h — leveled logging to stderr, text or JSON lines.
 *
 * Log once, where the decision is made. Never pass tokens, passwords, JWTs or keys.
 * The level and format are the only mutable globals of the project (STYLE.md §4).
 */
#ifndef COAPHUB_CORE_LOG_H
#define COAPHUB_CORE_LOG_H

typedef enum { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG } log_level_t;

/* Sets the threshold; messages above it are dropped. */
void log_set_level(log_level_t level);
/* Parses "error", "warn", "info" or "debug"; returns 0 or -EINVAL. */
int log_parse_level(const char *s, log_level_t *out);
/* Selects JSON lines (true) or human text (false). */
void log_set_json(int json);
/* True if a message of this level would be printed (to skip building costly messages). */
int log_enabled(log_level_t level);
/* Writes one line; component names the module ("coap", "store", ...). Any thread. */
void log_msg(log_level_t level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define LOG_E(comp, ...) log_msg(LOG_ERROR, comp, __VA_ARGS__)
#define LOG_W(comp, ...) log_msg(LOG_WARN, comp, __VA_ARGS__)
#define LOG_I(comp, ...) log_msg(LOG_INFO, comp, __VA_ARGS__)
#define LOG_D(comp, ...) (log_enabled(LOG_DEBUG) ? log_msg(LOG_DEBUG, comp, __VA_ARGS__) : (void)0)

#endif
