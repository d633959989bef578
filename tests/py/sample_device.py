#!/usr/bin/env python3
"""A device that behaves like the AWS sample's `linux_device/mqtt_client.py`
(written from its behaviour, not copied): Eclipse Paho with the 1.x callback
API, a new connection per attempt, fixed waits between attempts, and — the
point of this test — a CSR made from the VENDOR key, as the sample's
`gen_csr` does. It never stops early: like the sample, it tries a fixed
number of times and logs whatever arrives on its response topics.

  --jitp         connect with the vendor cert + CA chain until it is accepted
  --create_cert  CSR from the vendor key -> .../create-man-cert/<serial>/rqst
  --ack_cert     connect with the manufacturer cert (and the vendor key, as
                 the sample does) -> .../ack-man-cert/<serial>/rqst

Prints one JSON line with what happened in each step, including every
payload received on a response topic and the attempt it arrived in.
"""
import argparse
import json
import os
import ssl
import sys
import tempfile
import time

import paho.mqtt.client as mqtt


def new_client(serial):
    # paho 2.x keeps the 1.x callback signatures behind VERSION1.
    if hasattr(mqtt, "CallbackAPIVersion"):
        return mqtt.Client(mqtt.CallbackAPIVersion.VERSION1, client_id=serial)
    return mqtt.Client(client_id=serial)


class Device:
    def __init__(self, args, certfile, keyfile):
        self.args = args
        self.connected = False
        self.closed = False
        self.subscribed = False
        self.received = []  # (topic, payload dict or text)
        c = new_client(args.serial)
        c.on_connect = self.on_connect
        c.on_disconnect = self.on_disconnect
        c.on_subscribe = self.on_subscribe
        c.on_message = self.on_message
        c.tls_set(ca_certs=os.path.join(args.creds, "root-ca.pem"), certfile=certfile,
                  keyfile=keyfile, cert_reqs=ssl.CERT_REQUIRED,
                  tls_version=ssl.PROTOCOL_TLSv1_2)
        self.client = c

    # 1.x callback signatures
    def on_connect(self, client, userdata, flags, rc):
        self.connected = rc == 0

    def on_disconnect(self, client, userdata, rc):
        self.closed = True
        self.connected = False
        self.subscribed = False

    def on_subscribe(self, client, userdata, mid, granted_qos):
        self.subscribed = True

    def on_message(self, client, userdata, msg):
        try:
            payload = json.loads(msg.payload)
        except ValueError:
            payload = msg.payload.decode(errors="replace")
        self.received.append((msg.topic, payload))

    def wait_for(self, done, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not done():
            time.sleep(0.05)
        return done()

    def connect(self):
        host, port = self.args.addr.rsplit(":", 1)
        try:
            self.client.connect(host, int(port), keepalive=120)
        except (ssl.SSLError, OSError):
            return False
        self.client.loop_start()
        return self.wait_for(lambda: self.connected or self.closed, self.args.wait) and self.connected

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()

    def request(self, step, payload, done):
        """The sample's inner loop: subscribe, publish, wait, look."""
        rspn = f"/cert-rotation/{step}/{self.args.serial}/rspn"
        rqst = f"/cert-rotation/{step}/{self.args.serial}/rqst"
        answers = []
        for attempt in range(1, self.args.attempts + 1):
            if not self.subscribed:
                self.client.subscribe(rspn, qos=1)
                self.wait_for(lambda: self.subscribed, self.args.wait)
            before = len(self.received)
            self.client.publish(rqst, json.dumps(payload), qos=1)
            self.wait_for(lambda: len(self.received) > before, self.args.wait)
            for topic, body in self.received[before:]:
                if topic == rspn:
                    answers.append({"attempt": attempt, "payload": body})
            if any(done(a["payload"]) for a in answers):
                return attempt, answers, True
        return self.args.attempts, answers, False


def csr_from_vendor_key(serial, key_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    with open(key_path, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), None)
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, serial)]))
           .sign(key, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--addr", required=True)
    p.add_argument("--creds", required=True)
    p.add_argument("--serial", required=True)
    p.add_argument("--jitp", action="store_true")
    p.add_argument("--create_cert", action="store_true")
    p.add_argument("--ack_cert", action="store_true")
    p.add_argument("--attempts", type=int, default=3)
    p.add_argument("--wait", type=float, default=5.0)
    args = p.parse_args()
    vendor_cert = os.path.join(args.creds, "vendor.cert.pem")
    vendor_key = os.path.join(args.creds, "vendor.key.pem")
    work = tempfile.mkdtemp()
    man_cert = os.path.join(work, "ManufacturerDeviceCertAndCACert.pem")
    out = {}

    if args.jitp:
        for attempt in range(1, 11):
            d = Device(args, vendor_cert, vendor_key)
            ok = d.connect()
            d.close()
            if ok:
                out["jitp"] = {"attempts": attempt, "ok": True}
                break
            time.sleep(0.5)
        else:
            out["jitp"] = {"attempts": 10, "ok": False}

    if args.create_cert:
        csr = csr_from_vendor_key(args.serial, vendor_key)
        d = Device(args, vendor_cert, vendor_key)
        if not d.connect():
            raise SystemExit("create_cert: the vendor cert cannot connect")
        attempts, answers, ok = d.request("create-man-cert", {"csr": csr},
                                          lambda body: isinstance(body, dict) and "pem" in body)
        d.close()
        out["create_cert"] = {"attempts": attempts, "answers": answers, "ok": ok}
        if ok:
            body = next(a["payload"] for a in answers if "pem" in a["payload"])
            with open(os.path.join(args.creds, "manufacturer-ca.pem")) as f:
                ca = f.read()
            with open(man_cert, "w") as f:
                f.write(body["pem"] + ca)
            out["create_cert"]["cert_id"] = body["cert_id"]

    if args.ack_cert and out.get("create_cert", {}).get("ok"):
        cert_id = out["create_cert"]["cert_id"]
        d = Device(args, man_cert, vendor_key)
        if not d.connect():
            raise SystemExit("ack_cert: the manufacturer cert cannot connect")
        attempts, answers, ok = d.request("ack-man-cert", {"cert_id": cert_id},
                                          lambda body: isinstance(body, dict) and body.get("cert_id") == cert_id)
        d.close()
        out["ack_cert"] = {"attempts": attempts, "answers": answers, "ok": ok}

    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
