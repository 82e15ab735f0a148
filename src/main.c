/*
 * main.c - command line, start-up and the signal thread.
 *
 * Start-up order: configuration (exit 78 on any error), wipe the secrets of
 * -o from argv and make a process that holds a secret non-dumpable (no core
 * file, no ptrace by its user), raise the fd limit, bind the listeners, drop
 * privileges, block signals in every thread, start the log thread and the
 * listeners, then wait in sigwait() for SIGTERM/SIGINT.  Shutdown stops
 * accepting, shuts every live connection down and joins every thread.
 */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <mosquitto.h>

#include "clock.h"
#include "conf.h"
#include "decode_cli.h"
#include "event.h"
#include "log.h"
#include "metrics/metrics.h"
#include "modules.h"
#include "pipeline/journal.h"
#include "pipeline/outbox.h"
#include "pipeline/worker.h"
#include "proto/capture.h"
#include "proto/proto.h"
#include "relay/accept.h"
#include "relay/relay.h"
#include "sinks/sink.h"

#ifndef DEYE_VERSION
#define DEYE_VERSION "0.1.0"
#endif

#define SHUTDOWN_MS 3000
#define HEC_GRACE_MS 2000

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: deye-mitm [-f FILE] [-o KEY=VALUE]... [-n] [-v]... [-q]\n"
	    "       deye-mitm --decode [FILE|-]\n"
	    "       deye-mitm -V | -h\n"
	    "\n"
	    "  -f, --config FILE      configuration file\n"
	    "  -o, --set KEY=VALUE    set a key; SECTION.KEY for a section's key\n"
	    "  -n, --check-config     validate, print the effective configuration, exit\n"
	    "  -v, -q                 more / less logging (repeatable)\n"
	    "  --decode [FILE|-]      decode captured frames (hex lines or raw bytes)\n"
	    "                         to one JSON event per line on stdout, exit\n"
	    "  -V, --version          print the version\n"
	    "  -h, --help             this help\n"
	    "\n"
	    "See deye-mitm(8) and deye-mitm.conf(5).\n");
}

/* deye-mitm --decode [FILE|-] */
static int
decode_main(int argc, char **argv)
{
	const char *path = argc > 2 ? argv[2] : "-";
	FILE *in = stdin;
	int status;

	if (argc > 3) {
		usage(stderr);
		return 2;
	}
	if (strcmp(path, "-") != 0 && (in = fopen(path, "rbe")) == NULL) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return 1;
	}
	status = decode_run(in, strcmp(path, "-") == 0 ? "stdin" : path, stdout);
	if (in != stdin)
		fclose(in);
	return status;
}

static void
raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			log_warn("cannot raise the open file limit");
	}
}

static void
drop_privileges(const char *user)
{
	struct passwd *pw;

	if (geteuid() != 0) {
		log_info("not started as root: user = %s not needed", user);
		return;
	}
	if ((pw = getpwnam(user)) == NULL) /* checked by conf, gone since */
		fatalx(CONF_EXIT, "user '%s' does not exist", user);
	if (setgroups(1, &pw->pw_gid) != 0 || setgid(pw->pw_gid) != 0 ||
	    setuid(pw->pw_uid) != 0)
		fatalx(1, "cannot drop privileges to %s: %s", user, strerror(errno));
	if (setuid(0) == 0)
		fatalx(1, "privileges were not dropped");
	log_info("running as %s", user);
}

/* Before binding: a second instance on this state_dir stops here. */
static void
lock_state_dir(const struct conf *c)
{
	struct passwd *pw = NULL;
	char err[CONF_ERR_MAX];

	if (c->user != NULL && geteuid() == 0 && (pw = getpwnam(c->user)) == NULL)
		fatalx(CONF_EXIT, "user '%s' does not exist", c->user);
	if (journal_lock(c->state_dir, pw ? pw->pw_uid : (uid_t)-1,
	    pw ? pw->pw_gid : (gid_t)-1, err, sizeof err) != 0)
		fatalx(1, "%s", err);
}

/* The directories a listener writes to, made if missing (not parents). */
static void
make_dir(const struct listener_conf *lc, const char *key, const char *d)
{
	if (mkdir(d, 0750) != 0 && errno != EEXIST)
		fatalx(1, "[%s] %s %s: %s", lc->name, key, d, strerror(errno));
	if (access(d, W_OK | X_OK) != 0)
		fatalx(1, "[%s] %s %s: %s", lc->name, key, d, strerror(errno));
}

static void
make_dirs(const struct conf *c)
{
	for (size_t i = 0; i < c->nlisteners; i++) {
		const struct listener_conf *lc = &c->listeners[i];

		if (lc->capture_dir != NULL)
			make_dir(lc, "capture_dir", lc->capture_dir);
		if (lc->protocol == PROTO_ENVOY)
			make_dir(lc, "spool_dir", lc->spool_dir);
	}
}

/* A number from a /proc file, or -1. */
static long
proc_long(const char *path)
{
	FILE *f = fopen(path, "re");
	long v = -1;

	if (f == NULL)
		return -1;
	if (fscanf(f, "%ld", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

#define FD_RESERVE 64     /* journal, sinks, listeners, libcurl, logs */
#define THREAD_RESERVE 16 /* masters, writer, sinks, signals */

/*
 * Whether this host lets max_connections be reached: each connection takes
 * 2 fds (4 with capture files) and 3 threads (a controller and two pumps).
 * Running short later is handled (refused or ended as resources), but the
 * time to say that the limits do not fit is now.  Called after the drop of
 * privileges: RLIMIT_NPROC does not hold for root.
 */
static void
warn_resources(const struct conf *c)
{
	struct rlimit rl;
	long per = 2, fds, threads, v;

	for (size_t i = 0; i < c->nlisteners; i++)
		if (c->listeners[i].capture_dir != NULL)
			per = 4;
	fds = c->max_connections * per + FD_RESERVE;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur < (rlim_t)fds)
		log_warnx("max_connections = %ld needs about %ld open files (%ld "
		    "per connection, %d more for the journal, sinks and "
		    "listeners) but the limit is %llu: raise it (LimitNOFILE= "
		    "in the systemd unit, ulimit -n) or lower max_connections "
		    "to %ld", c->max_connections, fds, per, FD_RESERVE,
		    (unsigned long long)rl.rlim_cur,
		    rl.rlim_cur > FD_RESERVE + (rlim_t)per ?
		    (long)((rl.rlim_cur - FD_RESERVE) / (rlim_t)per) : 1L);

	threads = c->max_connections * 3 + THREAD_RESERVE;
	if (geteuid() != 0 && getrlimit(RLIMIT_NPROC, &rl) == 0 &&
	    rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (rlim_t)threads)
		log_warnx("max_connections = %ld needs about %ld threads (3 per "
		    "connection) but this user may run only %llu processes and "
		    "threads: raise it (LimitNPROC= in the systemd unit, ulimit "
		    "-u) or lower max_connections", c->max_connections, threads,
		    (unsigned long long)rl.rlim_cur);
	if ((v = proc_long("/proc/sys/kernel/threads-max")) >= 0 && v < threads)
		log_warnx("max_connections = %ld needs about %ld threads (3 per "
		    "connection) but kernel.threads-max is %ld: raise it or "
		    "lower max_connections", c->max_connections, threads, v);
	if ((v = proc_long("/proc/sys/kernel/pid_max")) >= 0 && v < threads)
		log_warnx("max_connections = %ld needs about %ld threads (3 per "
		    "connection), each with a pid, but kernel.pid_max is %ld: "
		    "raise it or lower max_connections", c->max_connections,
		    threads, v);
}

/* Say what a listener's settings ask for that it cannot do. */
static void
warn_limits(const struct conf *c)
{
	for (size_t i = 0; i < c->nlisteners; i++) {
		const struct listener_conf *lc = &c->listeners[i];
		bool local = lc->upstream.none ||
		    lc->on_upstream_failure == ON_FAILURE_ANSWER;

		if (local && proto_get(lc->protocol)->replies == NULL)
			log_warnx("[%s] protocol %s cannot answer clients locally: "
			    "without an upstream they are read but not answered",
			    lc->name, conf_proto_name(lc->protocol));
	}
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'f'},
		{"set", required_argument, NULL, 'o'},
		{"check-config", no_argument, NULL, 'n'},
		{"version", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *file = NULL;
	char **opts = NULL;
	int nopts = 0, verbose = 0, check = 0, ch, sig;
	char err[CONF_ERR_MAX];
	struct conf *c;
	sigset_t set;
	unsigned left;
	bool worker_done;
	int64_t start_ms;

	log_init();
	if (argc > 1 && strcmp(argv[1], "--decode") == 0)
		return decode_main(argc, argv);
	if ((opts = calloc((size_t)argc, sizeof *opts)) == NULL)
		fatalx(1, "out of memory");
	while ((ch = getopt_long(argc, argv, "f:o:nvqVh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'f':
			/* Which one would win is a guess: say so instead. */
			if (file != NULL) {
				fprintf(stderr, "deye-mitm: -f given twice\n");
				usage(stderr);
				free(opts);
				return 2;
			}
			file = optarg;
			break;
		case 'o': opts[nopts++] = optarg; break;
		case 'n': check = 1; break;
		case 'v': verbose++; break;
		case 'q': verbose--; break;
		case 'V':
			printf("deye-mitm %s\n", DEYE_VERSION);
			free(opts);
			return 0;
		case 'h':
			usage(stdout);
			free(opts);
			return 0;
		default:
			usage(stderr);
			free(opts);
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "deye-mitm: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		free(opts);
		return 2;
	}

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
		fatalx(1, "libcurl initialisation failed");
	/* Not thread-safe: once, here, before any thread starts. */
	if (mosquitto_lib_init() != MOSQ_ERR_SUCCESS)
		fatalx(1, "libmosquitto initialisation failed");
	if ((c = conf_new(modules_sections())) == NULL)
		fatalx(1, "out of memory");
	if ((file != NULL && conf_load_file(c, file, err, sizeof err) != 0) ||
	    conf_load_env(c, err, sizeof err) != 0)
		goto conf_error;
	for (int i = 0; i < nopts; i++)
		if (conf_set_option(c, opts[i], err, sizeof err) != 0)
			goto conf_error;
	if (conf_finish(c, err, sizeof err) != 0)
		goto conf_error;
	/* Every user can read /proc/PID/cmdline; conf has its own copies. */
	for (int i = 0; i < nopts; i++)
		conf_wipe_option(c, opts[i]);
	free(opts);
	if (conf_has_secret(c) && prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
		log_warn("cannot make the process non-dumpable: a core dump "
		    "would hold the token");
	log_set_level(c->log_level + verbose);
	if (check) {
		conf_print(c, stdout);
		fprintf(stderr, "configuration OK\n");
		conf_free(c);
		curl_global_cleanup();
		mosquitto_lib_cleanup();
		return 0;
	}

	start_ms = clock_wall_ms();
	log_info("deye-mitm %s starting", DEYE_VERSION);
	raise_fd_limit();
	lock_state_dir(c);
	if (listeners_open(c, err, sizeof err) != 0 ||
	    metrics_open(c, err, sizeof err) != 0)
		fatalx(1, "%s", err);
	if (c->user != NULL)
		drop_privileges(c->user);
	make_dirs(c);
	warn_limits(c);
	warn_resources(c);

	/* Every thread inherits this mask; only sigwait() below sees them. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	log_start(); /* from here on no thread waits for stderr */

	event_ids_init();
	if (journal_open(c, err, sizeof err) != 0)
		fatalx(1, "%s", err);
	if (sinks_start(c, err, sizeof err) != 0)
		fatalx(1, "%s", err);
	journal_start_deleting();
	proto_register_builders();
	if (outbox_start(c->state_dir) != 0 || worker_start(c->state_dir) != 0)
		return 1;
	relay_init(c->max_connections, c->max_connections_per_peer,
	    listener_is_self);
	if (listeners_start() != 0 || metrics_start(c, start_ms) != 0) {
		metrics_stop();
		listeners_stop();
		relay_shutdown(SHUTDOWN_MS);
		worker_stop(0);
		outbox_stop();
		if (sinks_stop(0))
			journal_close();
		return 1;
	}
	for (;;) {
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			log_info("SIGHUP: the events file is opened again; nothing "
			    "else is reloaded (restart to apply changes)");
			sinks_reopen();
			continue;
		}
		break;
	}
	log_info("%s: shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
	metrics_stop();
	listeners_stop();
	left = relay_shutdown(SHUTDOWN_MS);
	capture_stop(HEC_GRACE_MS);
	worker_done = worker_stop(HEC_GRACE_MS);
	outbox_stop();
	if (!sinks_stop(HEC_GRACE_MS))
		return 0; /* its thread ends with the process */
	journal_close();
	if (left > 0) {
		log_warnx("%u connection(s) did not end in time", left);
		return 0; /* their threads end with the process */
	}
	if (!worker_done)
		return 0; /* its job uses the configuration */
	listeners_free();
	conf_free(c);
	curl_global_cleanup();
	mosquitto_lib_cleanup();
	log_info("stopped");
	return 0;

conf_error:
	fprintf(stderr, "%s\n", err);
	conf_free(c);
	free(opts);
	curl_global_cleanup();
	mosquitto_lib_cleanup();
	return CONF_EXIT;
}
