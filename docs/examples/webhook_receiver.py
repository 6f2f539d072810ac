#!/usr/bin/env python3
"""A cleanroom webhook receiver: checks each request's signature and age, drops repeats, and
prints (or appends to --log) one JSON line per event.

    python3 docs/examples/webhook_receiver.py --port 9000 --secret-file webhook-secret

The server signs `TIME.BODY` with HMAC-SHA256 under the webhook's secret and sends
`Cleanroom-Signature: t=TIME,v1=HEX` (two v1 values for a day after `cleanroom webhook
rotate-secret`: the new secret's and the old one's). Give --secret-file more than once to accept
either of two secrets while you switch over. Standard library only.
"""
import argparse
import hashlib
import hmac
import http.server
import json
import re
import ssl
import sys
import threading
import time

TOLERANCE_SECONDS = 300  # refuse signatures older (or newer) than this: replays


def verify(header, body, secrets, now=None):
    """The secret (from `secrets`) that signed `body`, or None. `header` is Cleanroom-Signature."""
    fields = [part.split("=", 1) for part in header.split(",") if "=" in part]
    timestamps = [value for key, value in fields if key == "t"]
    signatures = [value for key, value in fields if key == "v1"]
    if len(timestamps) != 1 or not re.fullmatch(r"[0-9]{1,12}", timestamps[0]) or not signatures:
        return None
    if abs((now or time.time()) - int(timestamps[0])) > TOLERANCE_SECONDS:
        return None
    signed = timestamps[0].encode() + b"." + body
    for secret in secrets:
        expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest().encode()
        if any(hmac.compare_digest(expected, signature.encode("utf-8", "replace")) for signature in signatures):
            return secret
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--secret-file", action="append", required=True, help="file holding a whsec_ secret; repeatable")
    parser.add_argument("--log", help="append events here instead of printing them")
    parser.add_argument("--fail-first", type=int, default=0, help="answer 503 to the first N events (to watch retries)")
    parser.add_argument("--tls-cert", help="serve HTTPS with this PEM certificate chain (and --tls-key)")
    parser.add_argument("--tls-key", help="the certificate's PEM private key")
    args = parser.parse_args()
    secrets = {}
    for path in args.secret_file:
        with open(path) as f:
            secrets[f.read().strip()] = path
    seen = set()
    lock = threading.Lock()
    state = {"to_fail": args.fail_first}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            secret = verify(self.headers.get("Cleanroom-Signature", ""), body, list(secrets))
            if secret is None:
                return self.answer(401)
            event = json.loads(body)
            with lock:
                if state["to_fail"] > 0:
                    state["to_fail"] -= 1
                    return self.answer(503)
                key = (event["webhookId"], event["id"])  # event ids are unique per webhook
                if key in seen:  # delivered before (at least once): already handled
                    return self.answer(204)
                line = json.dumps({
                    "event": event, "secretFile": secrets[secret], "path": self.path,
                    "attempt": int(self.headers.get("Cleanroom-Delivery-Attempt", "1")),
                    "signatures": self.headers["Cleanroom-Signature"].count("v1="),
                })
                if args.log:
                    with open(args.log, "a") as out:
                        out.write(line + "\n")
                else:
                    print(line, flush=True)
                seen.add(key)  # only once stored: a failed write answers no 2xx, so the server sends it again
            self.answer(204)

        def answer(self, status):
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_):
            pass

    server = http.server.ThreadingHTTPServer((args.host, args.port), Handler)
    scheme = "http"
    if args.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    print(f"listening on {scheme}://{args.host}:{server.server_address[1]}", file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
