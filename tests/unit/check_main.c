/*
 * check_main.c - the unit test runner.  Run from tests/ (make unit does), as
 * the data-driven cases read tests/data/ by relative path.
 *
 * CK_RUN_SUITE=conf / CK_RUN_CASE=duration select what runs, CK_FORK=no runs
 * in one process (valgrind), CK_VERBOSITY=verbose lists every test: all of
 * that is Check's own.  CK_ENV is CK_NORMAL unless CK_VERBOSITY says
 * otherwise.
 */
#include <stdlib.h>

#include <curl/curl.h>

#include "suites.h"

int
main(void)
{
	SRunner *sr;
	int failed;

	/* The HEC URL check parses with libcurl's URL API. */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
		return EXIT_FAILURE;
	sr = srunner_create(conf_suite());
	srunner_add_suite(sr, addr_suite());
	srunner_add_suite(sr, relay_suite());
	srunner_add_suite(sr, reply_suite());
	srunner_add_suite(sr, solarman_suite());
	srunner_add_suite(sr, http_suite());
	srunner_add_suite(sr, envoy_suite());
	srunner_add_suite(sr, journal_suite());
	srunner_add_suite(sr, outbox_ring_suite());
	srunner_add_suite(sr, outbox_suite());
	srunner_add_suite(sr, tap_suite());
	srunner_add_suite(sr, sink_suite());
	srunner_add_suite(sr, proto_suite());
	srunner_add_suite(sr, stats_suite());
	srunner_add_suite(sr, mqtt_suite());
	srunner_add_suite(sr, metrics_suite());
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	conf_suite_cleanup();
	solarman_suite_cleanup();
	curl_global_cleanup();
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
