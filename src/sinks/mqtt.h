/* mqtt.h - delivery to an MQTT 3.1.1 broker with Home Assistant discovery,
 * from the journal (cursor "mqtt"), by the sink runner with libmosquitto. */
#ifndef DEYE_SINK_MQTT_H
#define DEYE_SINK_MQTT_H

#include <stdbool.h>
#include <stdint.h>

#include "conf.h"
#include "sinks/sink.h"

/* The [mqtt] section (deye-mitm.conf(5), MQTT KEYS). */
struct mqtt_conf {
	char *url;      /* a password in its userinfo is a secret too */
	char *username;
	char *password; /* secret: printed as *** */
	char *password_file;
	char *client_id; /* unset: deye-mitm-<hostname> */
	char *ca_file;
	char *cert_file;
	char *key_file;
	bool insecure;
	char *topic_prefix;
	long qos;
	int64_t keepalive_ms;
	bool discovery;
	char *discovery_prefix;
	int64_t expire_after_ms;
	bool dummycloud_topics;
};

extern const struct conf_section sink_mqtt_section;
extern const struct sink_ops sink_mqtt_ops;

#endif
