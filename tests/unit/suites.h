/* suites.h - the Check suites that check_main.c runs. */
#ifndef DEYE_TEST_SUITES_H
#define DEYE_TEST_SUITES_H

#include <check.h>

Suite *conf_suite(void);
Suite *addr_suite(void);
Suite *relay_suite(void);
Suite *reply_suite(void);
Suite *solarman_suite(void);
Suite *http_suite(void);
Suite *envoy_suite(void);
Suite *journal_suite(void);
Suite *outbox_ring_suite(void);
Suite *outbox_suite(void);
Suite *tap_suite(void);
Suite *sink_suite(void);
Suite *proto_suite(void);
Suite *stats_suite(void);
Suite *mqtt_suite(void);
Suite *metrics_suite(void);

/* Frees what conf_suite() allocated to build its data-driven cases. */
void conf_suite_cleanup(void);
/* Frees the fixtures and file lists solarman_suite() read. */
void solarman_suite_cleanup(void);

#endif
