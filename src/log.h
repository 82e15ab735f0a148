/* log.h - one line per event on stderr, formatted whole and written once;
 * from log_start() on, by a thread of its own, so that no caller ever
 * blocks on stderr (lines it cannot take are dropped and counted). */
#ifndef DEYE_LOG_H
#define DEYE_LOG_H

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

void log_init(void);                       /* before any thread starts */
void log_set_level(int level);
/* Once signals are blocked: lines go through the log thread from now on,
 * and get up to a second to be written out at exit. */
void log_start(void);

#define LOG_PRINTF __attribute__((format(printf, 1, 2)))
/* log_warn/log_error append strerror(errno); the *x variants do not. */
void log_error(const char *fmt, ...) LOG_PRINTF;
void log_errorx(const char *fmt, ...) LOG_PRINTF;
void log_warn(const char *fmt, ...) LOG_PRINTF;
void log_warnx(const char *fmt, ...) LOG_PRINTF;
void log_info(const char *fmt, ...) LOG_PRINTF;
void log_debug(const char *fmt, ...) LOG_PRINTF;
/* Start-up only: log and exit(status). */
void fatalx(int status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));

#endif
