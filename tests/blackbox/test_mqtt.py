"""The MQTT sink against a real mosquitto on 127.0.0.1 (broker.py): topics,
Home Assistant discovery checked field by field and by applying each
value_template to the retained state, historic records kept off the state,
the will, a broker restarted under a backlog, a SIGKILL during one, and a
wrong password."""
import json
import re
import signal
import unittest

from broker import Broker, Client, retained
from harness import wait_for
from test_journal import JournalTest, heartbeat
from test_envoy import EnvoyTest
from test_solarman import FRAMES
import envoy_peers as ep

DATA = FRAMES["deye-m80g3-data-0x42"]
SERIAL = "3939932716"
P = "deye-mitm"
PAYLOAD = 11


def patch(frame, **fields):
    """The data frame with payload fields changed, checksum fixed:
    mppt (count), serial (logger), kwh_total (grid, in 0.1 kWh)."""
    b = bytearray(frame)
    if "mppt" in fields:
        b[PAYLOAD + 131] = fields["mppt"]
        for k in range(2, fields["mppt"]):
            b[PAYLOAD + 85 + 4 * k:PAYLOAD + 89 + 4 * k] = (
                (301 + k).to_bytes(2, "little") + (12).to_bytes(2, "little"))
            b[PAYLOAD + 135 + 2 * k:PAYLOAD + 137 + 2 * k] = (
                (3).to_bytes(2, "big"))
            b[PAYLOAD + 143 + 4 * k:PAYLOAD + 147 + 4 * k] = (
                (555 + k).to_bytes(4, "big"))
    if "serial" in fields:
        b[7:11] = fields["serial"].to_bytes(4, "little")
    if "kwh_total" in fields:
        b[PAYLOAD + 37:PAYLOAD + 41] = fields["kwh_total"].to_bytes(4, "little")
    b[-2] = sum(b[1:-2]) & 0xff
    return bytes(b)


def render(template, state):
    """The subset of Jinja Home Assistant needs here:
    {{ value_json['key'] }}, and a quotient rounded to 0.1 when the
    divisor is above 0."""
    m = re.fullmatch(r"\{\{ value_json\['([^']+)'\] \}\}", template)
    if m:
        return state[m.group(1)]
    m = re.fullmatch(r"\{\{ \(value_json\['([^']+)'\] / "
                     r"value_json\['([^']+)'\]\) \| round\(1\) if "
                     r"value_json\['\2'\] > 0 else None \}\}", template)
    assert m, template
    d = state[m.group(2)]
    return round(state[m.group(1)] / d, 1) if d > 0 else None


class MqttTest(JournalTest):
    def broker(self, **kw):
        b = Broker(**kw)
        self.addCleanup(b.close)
        return b

    def client(self, b, topics, **kw):
        c = Client(b.port, topics, **kw)
        self.addCleanup(c.close)
        return c

    def mqtt_daemon(self, b, *opts, **kw):
        return self.run_daemon("events=none", "mqtt.url=" + b.url, *opts, **kw)

    def kill(self, d):
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait()
        self.daemons.remove(d)
        d.err.close()
        d.dir.cleanup()

    def configs(self, b, serial=SERIAL):
        want = "homeassistant/sensor/deye_mitm_%s/" % serial
        return {t: json.loads(p) for t, p in
                retained(b.port, "homeassistant/#").items()
                if t.startswith(want)}


class TestDiscovery(MqttTest):
    def check_configs(self, b, serial, mppt):
        state = json.loads(retained(b.port, "%s/%s/data" % (P, serial))[
            "%s/%s/data" % (P, serial)])
        configs = self.configs(b, serial)
        self.assertEqual(len(configs), 7 + 5 * mppt, sorted(configs))
        for topic, c in configs.items():
            obj = topic.split("/")[3]
            with self.subTest(topic=topic):
                self.assertEqual(c["unique_id"], "deye_mitm_%s_%s" % (serial, obj))
                self.assertEqual(c["state_topic"], "%s/%s/data" % (P, serial))
                self.assertEqual(c["availability_mode"], "all")
                self.assertEqual(c["availability"], [
                    {"topic": P + "/status"},
                    {"topic": "%s/%s/availability" % (P, serial)}])
                self.assertEqual(c["expire_after"], 600)
                self.assertEqual(c["origin"]["name"], "deye-mitm")
                self.assertRegex(c["origin"]["sw_version"], r"^\d+\.\d+")
                dev = c["device"]
                self.assertEqual(dev["identifiers"], ["deye_mitm_" + serial])
                self.assertEqual(dev["manufacturer"], "Deye")
                self.assertEqual(dev["serial_number"], "2305107146")
                self.assertEqual(dev["sw_version"], "AC V1.2.1.8, DC V0.1.1.7")
                self.assertIn("800 W", dev["model"])
                unit = {"voltage": "V", "current": "A", "frequency": "Hz",
                        "power": "W", "temperature": "\u00b0C",
                        "energy": "kWh"}[c["device_class"]]
                self.assertEqual(c["unit_of_measurement"], unit)
                self.assertEqual(c["state_class"],
                                 "total_increasing" if unit == "kWh"
                                 else "measurement")
                key = re.fullmatch(r"\{\{ value_json\['([^']+)'\] \}\}",
                                   c["value_template"]).group(1)
                self.assertEqual(render(c["value_template"], state), state[key])
                self.assertIsInstance(state[key], (int, float))
        return state, configs

    def test_discovery_and_state_for_the_fixture_frame(self):
        b = self.broker()
        d = self.mqtt_daemon(b)
        self.send(d, [DATA])
        wait_for(lambda: len(self.configs(b)) >= 17, 10)
        state, configs = self.check_configs(b, SERIAL, 2)
        self.assertEqual(state["grid.v"], 232.0)
        self.assertEqual(state["pv.kWh_total.2"], 88.1)
        grid_v = configs["homeassistant/sensor/deye_mitm_%s/grid_v/config"
                         % SERIAL]
        self.assertEqual(grid_v["value_template"], "{{ value_json['grid.v'] }}")
        r = retained(b.port, P + "/#")
        self.assertEqual(r[P + "/status"], "online")
        # The connection ended: the logger is offline until its next frame.
        self.assertEqual(r["%s/%s/availability" % (P, SERIAL)], "offline")
        self.stop_clean(d)
        # A clean stop says offline itself (the will is for crashes).
        self.assertEqual(retained(b.port, P + "/status")[P + "/status"],
                         "offline")

    def test_four_inputs_give_four_times_five_pv_entities(self):
        b = self.broker()
        d = self.mqtt_daemon(b)
        self.send(d, [patch(DATA, mppt=4, serial=1234567890)])
        wait_for(lambda: len(self.configs(b, "1234567890")) >= 27, 10)
        state, configs = self.check_configs(b, "1234567890", 4)
        self.assertEqual(state["pv.kWh_total.4"], 55.8)
        self.assertIn("homeassistant/sensor/deye_mitm_1234567890/"
                      "pv4_energy_total/config", configs)

    def test_historic_never_on_the_state_and_totals_never_go_down(self):
        b = self.broker()
        sub = self.client(b, [P + "/#"])
        d = self.mqtt_daemon(b)
        historic = FRAMES["solis-data-0x42-a"]
        self.send(d, [DATA, historic, patch(DATA, kwh_total=1700)])
        sub.wait(lambda ms: sum(m.topic.endswith("/data") for m in ms) >= 2
                 and any(m.topic.endswith("/historic") for m in ms), 10)
        for m in sub.snapshot():
            if m.topic.endswith("/data"):
                self.assertNotIn("data.historic", json.loads(m.payload))
        hist = [m for m in sub.snapshot() if m.topic.endswith("/historic")]
        self.assertTrue(json.loads(hist[0].payload)["data.historic"])
        self.assertFalse(any(m.retain for m in hist))
        states = [json.loads(m.payload) for m in sub.snapshot()
                  if m.topic == "%s/%s/data" % (P, SERIAL)]
        self.assertEqual(states[0]["grid.kWh_total"], 177.5)
        self.assertNotIn("grid.kWh_total", states[1])
        self.assertEqual(states[1]["grid.kWh_today"], 0.9)
        d.wait_log(r"mqtt: logger %s: grid.kWh_total 170 is below the 177.5 "
                   r"published before, left out" % SERIAL)
        # Other types: their own topics, not retained.
        self.assertTrue(any(m.topic == "%s/%s/reply" % (P, SERIAL)
                            and not m.retain for m in sub.snapshot()))

    def test_home_assistant_birth_republishes_discovery(self):
        b = self.broker()
        d = self.mqtt_daemon(b)
        self.send(d, [DATA])
        wait_for(lambda: len(self.configs(b)) >= 17, 10)
        watch = self.client(b, ["homeassistant/sensor/#"], qos=0)
        watch.sync()
        before = len(watch.snapshot())  # the retained ones
        ha = self.client(b, [])
        ha.publish("homeassistant/status", "online")
        watch.wait(lambda ms: len(ms) >= before + 17, 10)
        d.wait_log(r"mqtt: Home Assistant is online")


class TestFaults(MqttTest):
    def test_will_on_sigkill(self):
        b = self.broker()
        d = self.mqtt_daemon(b, "mqtt.keepalive=5s")
        wait_for(lambda: retained(b.port, P + "/status").get(P + "/status")
                 == "online", 10)
        self.kill(d)
        # The socket closes with the process: the broker sends the will.
        self.assertTrue(wait_for(
            lambda: retained(b.port, P + "/status").get(P + "/status")
            == "offline", 10))

    def test_broker_restart_under_30_frames_loses_nothing(self):
        b = self.broker(persistence=True)
        sub = self.client(b, [P + "/+/heartbeat"], client_id="persistent",
                          clean=False)
        d = self.mqtt_daemon(b)
        wait_for(lambda: retained(b.port, P + "/status").get(P + "/status")
                 == "online", 10)
        sub.close()
        b.stop()
        for i in range(30):
            self.send(d, [heartbeat(i)])
        b.start()
        sub = self.client(b, [], client_id="persistent", clean=False)
        ms = sub.wait(lambda ms: len(ms) >= 30, 30)
        seqs = [json.loads(m.payload)["frame.seq"] for m in ms]
        self.assertEqual(sorted(set(seqs)), ["f5 %02x" % i for i in range(30)])
        self.assertTrue(all(m.qos == 1 for m in ms))

    def test_sigkill_during_a_backlog_loses_nothing(self):
        b = self.broker(persistence=True)
        sub = self.client(b, [P + "/+/heartbeat"], client_id="keeper",
                          clean=False)
        sub.close()
        b.stop()
        d = self.mqtt_daemon(b)
        for i in range(20):
            self.send(d, [heartbeat(i)])
        self.kill(d)
        b.start()
        d = self.mqtt_daemon(b)
        sub = self.client(b, [], client_id="keeper", clean=False)
        ms = sub.wait(lambda ms: len({m.payload for m in ms}) >= 20, 30)
        seqs = {json.loads(m.payload)["frame.seq"] for m in ms}
        self.assertEqual(seqs, {"f5 %02x" % i for i in range(20)})

    def test_wrong_password_is_logged_once_and_events_kept(self):
        b = self.broker(users={"deye": "right"})
        d = self.mqtt_daemon(b, "mqtt.username=deye",
                             env={"DEYE_MQTT_PASSWORD": "wrong"})
        self.send(d, [heartbeat(1)])
        d.wait_log(r"mqtt: mqtt://127\.0\.0\.1:\d+ refused the connection: "
                   r"(not authorised|bad user name or password); events "
                   r"are kept and retried")
        # Backoff from 0.5 s: several attempts within 3 s, one line.
        wait_for(lambda: b.log().count("not authorised") >= 3, 5)
        self.assertEqual(d.log().count("refused the connection"), 1)
        self.assertNotIn("wrong", d.log())
        self.stop_clean(d)
        # The right password delivers what was kept.
        b.stop()
        b.start()
        sub = self.client(b, [P + "/+/heartbeat"], username="deye",
                          password="right")
        d = self.mqtt_daemon(b, "mqtt.username=deye",
                             env={"DEYE_MQTT_PASSWORD": "right"})
        ms = sub.wait(lambda ms: len(ms) >= 1, 10)
        self.assertEqual(json.loads(ms[0].payload)["frame.seq"], "f5 01")


# Hypfer's dummycloud (dummycloud/src/MqttClient.js), written out here
# from its source: per-value topic -> (config object after "<sn>_", id
# after "deye_dummycloud_<sn>_", name, unit, device class, energy?).
def dummycloud_table(mppt):
    t = {}
    for i in range(1, mppt + 1):
        t["pv/%d/v" % i] = ("pv%d_v" % i, "pv_%d_v" % i, "PV %d Voltage" % i,
                            "V", "voltage", False)
        t["pv/%d/i" % i] = ("pv%d_i" % i, "pv_%d_i" % i, "PV %d Current" % i,
                            "A", "current", False)
        t["pv/%d/w" % i] = ("pv%d_w" % i, "pv_%d_w" % i, "PV %d Power" % i,
                            "W", "power", False)
        t["pv/%d/kWh_today" % i] = ("pv%d_kWh_today" % i,
                                    "pv_%d_kWh_today" % i,
                                    "PV %d Energy Today" % i, "kWh",
                                    "energy", True)
        t["pv/%d/kWh_total" % i] = ("pv%d_kWh_total" % i,
                                    "pv_%d_kWh_total" % i,
                                    "PV %d Energy Total" % i, "kWh",
                                    "energy", True)
    t["grid/active_power_w"] = ("grid_active_power_w", "grid_active_power_w",
                                "Grid Power (Active)", "W", "power", False)
    t["grid/kWh_today"] = ("grid_kWh_today", "grid_energy_today",
                           "Grid Energy Today", "kWh", "energy", True)
    t["grid/kWh_total"] = ("grid_kWh_total", "grid_energy_total",
                           "Grid Energy Total", "kWh", "energy", True)
    t["grid/v"] = ("grid_v", "grid_v", "Grid Voltage", "V", "voltage", False)
    t["grid/hz"] = ("grid_hz", "grid_hz", "Grid Frequency", "Hz",
                    "frequency", False)
    t["inverter/radiator_temperature"] = (
        "inverter_radiator_temperature", "inverter_radiator_temperature",
        "Radiator Temperature", "\u00b0C", "temperature", False)
    return t


class TestDummycloud(MqttTest):
    def test_dummycloud_topics_payloads_and_ids_for_the_fixture_frame(self):
        b = self.broker()
        sub = self.client(b, ["deye-dummycloud/#"])
        d = self.mqtt_daemon(b, "mqtt.dummycloud_topics=yes")
        self.send(d, [DATA])
        dc = "deye-dummycloud/%s/" % SERIAL
        table = dummycloud_table(2)
        ms = sub.wait(lambda ms: {m.topic for m in ms} >=
                      {dc + k for k in table} | {dc + "inverter/efficiency"},
                      10)
        got = {m.topic[len(dc):]: m for m in ms}
        # Plain numbers as JavaScript writes them; the energy ones retained.
        want = {"pv/1/v": "27.1", "pv/1/i": "0", "pv/1/w": "0",
                "pv/1/kWh_today": "0.4", "pv/1/kWh_total": "80.7",
                "pv/2/v": "27.8", "pv/2/i": "0", "pv/2/w": "0",
                "pv/2/kWh_today": "0.4", "pv/2/kWh_total": "88.1",
                "grid/active_power_w": "4", "grid/kWh_today": "0.9",
                "grid/kWh_total": "177.5", "grid/v": "232", "grid/hz": "50.1",
                "inverter/radiator_temperature": "27.7",
                # No DC power: dummycloud says null.
                "inverter/efficiency": "null"}
        self.assertEqual({k: m.payload for k, m in got.items()}, want)
        # A live message has no retain flag; what the broker kept has.
        kept = retained(b.port, "deye-dummycloud/#")
        self.assertEqual({t[len(dc):] for t in kept},
                         {k for k in want if "kWh" in k})
        # Discovery: one retained config per value, dummycloud's ids.
        prefix = "homeassistant/sensor/deye_dummycloud_%s/" % SERIAL
        wait_for(lambda: len([t for t in retained(b.port, "homeassistant/#")
                              if t.startswith(prefix)]) >= len(table) + 1, 10)
        configs = {t[len(prefix):]: json.loads(p) for t, p in
                   retained(b.port, "homeassistant/#").items()
                   if t.startswith(prefix)}
        self.assertEqual(set(configs), {"%s_%s/config" % (SERIAL, v[0])
                                        for v in table.values()} |
                         {SERIAL + "_inverter_efficiency/config"})
        device = {"manufacturer": "Deye", "model": "Microinverter",
                  "name": "Deye Microinverter " + SERIAL,
                  "configuration_url": "http://127.0.0.1/index_cn.html",
                  "identifiers": ["deye_dummycloud_" + SERIAL]}
        for topic, (obj, uid, name, unit, dclass, energy) in table.items():
            c = configs["%s_%s/config" % (SERIAL, obj)]
            with self.subTest(topic=topic):
                want = {"state_topic": dc + topic, "name": name,
                        "unit_of_measurement": unit, "device_class": dclass,
                        "state_class": "total_increasing" if energy
                        else "measurement",
                        "object_id": "deye_dummycloud_%s_%s" % (SERIAL, uid),
                        "unique_id": "deye_dummycloud_%s_%s" % (SERIAL, uid),
                        "device": device}
                if not energy:
                    want["expire_after"] = 360
                if topic.startswith("pv/"):
                    want["enabled_by_default"] = int(topic[3]) < 3
                self.assertEqual(c, want)
        self.assertEqual(configs[SERIAL + "_inverter_efficiency/config"], {
            "state_topic": dc + "inverter/efficiency",
            "name": "Inverter Efficiency", "unit_of_measurement": "%",
            "entity_category": "diagnostic", "icon": "mdi:cog-transfer",
            "state_class": "measurement",
            "object_id": "deye_dummycloud_%s_inverter_efficiency" % SERIAL,
            "unique_id": "deye_dummycloud_%s_inverter_efficiency" % SERIAL,
            "expire_after": 360, "value_template": "{{ value_json }}",
            "device": device})
        # deye-mitm's own topics and entities are there too.
        self.assertEqual(len(self.configs(b)), 17)

    def test_dummycloud_efficiency_and_no_zero_total(self):
        b = self.broker()
        sub = self.client(b, ["deye-dummycloud/#"])
        d = self.mqtt_daemon(b, "mqtt.dummycloud_topics=yes")
        # 3 inputs with power, a grid total of 0 (not published, as there).
        self.send(d, [patch(DATA, mppt=3, kwh_total=0)])
        dc = "deye-dummycloud/%s/" % SERIAL
        sub.wait(lambda ms: any(m.topic == dc + "inverter/efficiency"
                                for m in ms), 10)
        sub.sync()
        self.assertIsNone(sub.last(dc + "grid/kWh_total"))
        # pv3: 30.3 V x 1.2 A = 36.4 W; AC 4 W: 4 / 36.4.
        self.assertEqual(sub.last(dc + "pv/3/w"), "36.4")
        self.assertEqual(sub.last(dc + "inverter/efficiency"),
                         "%.2f" % (4 / 36.4 * 100))


class TestEnvoyDiscovery(EnvoyTest):
    def test_a_microinverter_gets_its_entities_from_its_readings(self):
        b = Broker()
        self.addCleanup(b.close)
        enphase, d = self.start(None, "mqtt.url=" + b.url)
        c = self.client(d)
        c.send(ep.fixture("SYNTHETIC_request_performance_report.http.bin"))
        c.finish()
        enphase.wait(1)
        inv, envoy = "999999100001", "999999000001"
        prefix = "homeassistant/sensor/deye_mitm_envoy_%s/" % inv
        state_topic = "%s/envoy/%s/%s/envoy_reading" % (P, envoy, inv)

        def configs():
            return {t[len(prefix):]: json.loads(p) for t, p in
                    retained(b.port, "homeassistant/#").items()
                    if t.startswith(prefix)}
        self.assertTrue(wait_for(lambda: len(configs()) >= 6, 10))
        cf = configs()
        state = json.loads(retained(b.port, state_topic)[state_topic])
        want = {"ac_v": ("V", "voltage", 250.102),
                "ac_hz": ("Hz", "frequency", 59.979),
                "dc_v": ("V", "voltage", 27.782),
                "dc_i": ("A", "current", 7.462),
                "temperature": ("\u00b0C", "temperature", 49),
                "power": ("W", "power", 228.2)}  # 67535 Ws in 296 s
        self.assertEqual(set(cf), {o + "/config" for o in want})
        for obj, (unit, dclass, value) in want.items():
            c = cf[obj + "/config"]
            with self.subTest(obj=obj):
                uid = "deye_mitm_envoy_%s_%s" % (inv, obj)
                self.assertEqual(c["unique_id"], uid)
                self.assertEqual(c["object_id"], uid)
                self.assertEqual(c["state_topic"], state_topic)
                self.assertEqual(c["unit_of_measurement"], unit)
                self.assertEqual(c["device_class"], dclass)
                self.assertEqual(c["state_class"], "measurement")
                self.assertEqual(c["expire_after"], 600)
                self.assertEqual(c["availability"], [{"topic": P + "/status"}])
                self.assertEqual(c["origin"]["name"], "deye-mitm")
                self.assertEqual(c["device"], {
                    "identifiers": ["deye_mitm_envoy_" + inv],
                    "manufacturer": "Enphase", "model": "microinverter",
                    "name": "Enphase microinverter " + inv,
                    "serial_number": inv})
                self.assertEqual(render(c["value_template"], state), value)


if __name__ == "__main__":
    unittest.main()
