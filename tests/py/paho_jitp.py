#!/usr/bin/env python3
"""An independent MQTT client (Eclipse Paho, Python's ssl) against jitpilot's
endpoint: what a device written for AWS IoT does with its factory cert.

1. connect: JITP registers the cert and the endpoint closes without CONNACK;
2. connect again: CONNACK accepted;
3. subscribe to its own rotation response topic: granted QoS 1.

Prints one JSON line: {"first": ..., "second": ..., "echo": ...}.
Needs `python3 -m pip install paho-mqtt` (2.x).
"""
import argparse
import json
import ssl
import sys
import time

import paho.mqtt.client as mqtt

WAIT_S = 30.0


def attempt(args):
    """Connects once; returns (outcome, client) where outcome is
    'accepted' (CONNACK 0) or 'refused' (closed/no CONNACK)."""
    state = {"connack": None, "closed": False, "suback": None}
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=args.client_id, protocol=mqtt.MQTTv311)
    client.tls_set(ca_certs=args.ca, certfile=args.cert, keyfile=args.key, tls_version=ssl.PROTOCOL_TLS_CLIENT)

    def on_connect(_c, _u, _flags, reason_code, _props):
        state["connack"] = reason_code

    def on_disconnect(_c, _u, _flags, _reason_code, _props):
        state["closed"] = True

    def on_subscribe(_c, _u, _mid, reason_codes, _props):
        state["suback"] = [int(rc.value) for rc in reason_codes]

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    client.on_subscribe = on_subscribe
    host, port = args.addr.rsplit(":", 1)
    try:
        client.connect(host, int(port), keepalive=30)
    except (ssl.SSLError, OSError) as e:
        return "refused", None, state, str(e)
    deadline = time.monotonic() + WAIT_S
    # Wait on the client's own events: CONNACK or the connection closing.
    while time.monotonic() < deadline and state["connack"] is None and not state["closed"]:
        rc = client.loop(timeout=0.2)
        if rc != mqtt.MQTT_ERR_SUCCESS and state["connack"] is None:
            return "refused", None, state, f"loop rc {rc}"
    if state["connack"] is not None and not state["connack"].is_failure:
        return "accepted", client, state, ""
    return "refused", None, state, "closed before CONNACK"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--addr", required=True)
    p.add_argument("--client-id", required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--ca", required=True)
    args = p.parse_args()

    first, _, _, why1 = attempt(args)
    second, client, state, why2 = attempt(args)
    echo = False
    if client is not None:
        topic = f"/cert-rotation/create-man-cert/{args.client_id}/rspn"
        client.subscribe(topic, qos=1)
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline and state["suback"] is None and not state["closed"]:
            client.loop(timeout=0.2)
        echo = state["suback"] == [1]
        client.disconnect()
    print(json.dumps({"first": first, "second": second, "echo": echo, "why": [why1, why2]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
