#!/usr/bin/env python3
"""An HTTP-level mutator against herald's three ingest endpoints: whatever arrives, herald answers it without a
server error, stays healthy and keeps its memory bounded (RELIABILITY.md).

Starts herald (release build, a temporary SQLite store, loopback, default limits: 4 MiB bodies) and sends --requests
requests to POST /api/v2/alerts, POST /webhook/alertmanager and POST|PUT /webhook/grafana (no HMAC secret set, so
Grafana's bodies reach the parser), from --workers connections at once. Each request starts from a valid body of its
endpoint and takes one to three mutations, drawn from a generator seeded with --seed (request i is the same in every
run with the same seed):

  body:    byte flips, inserted and deleted bytes, truncation, a splice of another endpoint's body, JSON values swapped
           for another type, huge numbers, huge strings (up to 5 MiB, past the body limit), deep nesting (up to
           100,000 levels), invalid UTF-8 (stray continuation bytes, overlong forms, surrogates), duplicate keys,
           empty and null bodies
  headers: wrong, missing or odd content types, a claimed gzip encoding, chunked bodies (well formed, with bad chunk
           sizes, or cut short), a Content-Length that disagrees with the body, two Content-Length headers, a huge
           header, many headers, bad Authorization and Grafana signature headers, another method

Requests whose framing is broken go on a connection of their own, closed for writing after the request (so a body
announced longer than it is ends); the others share keep-alive connections, and a request that finds its kept-alive
connection closed by the server after the previous answer is sent once more on a new one, as HTTP clients do. A
half-closed connection may go unanswered (hyper drops a connection whose client closed its write side): those are
counted by mutation, not failed; so are requests whose connection the server closed while their body was still being
sent, or reset after a body over 64 KiB was sent (the server may answer, as 413, 415 or 405, before reading a body,
and close the connection with the body unread: the reset that follows discards the answer).

Checks: no answer 5xx other than 503; every well-framed request answered; no panic in herald's log; afterwards
herald answers /-/healthy 200 and takes a valid alert (200); its RSS stays under --max-rss-mib (sampled every
200 ms). Prints the answers by status code, the requests without an answer, the bytes of the bodies accepted (alerts with
huge strings that are accepted are kept, so they weigh on the RSS; --skip huge_string leaves them out), the time
taken and the RSS; exits 1 when a check failed.

    cargo build --release
    bench/mutate.py [--requests 20000] [--seed 1] [--workers 4]
"""

import argparse
import json
import os
import random
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import herald_bench as hb  # noqa: E402

V2 = [
    {"labels": {"alertname": "DiskFull", "instance": "db-1", "severity": "critical"},
     "annotations": {"summary": "disk 97% full"}, "startsAt": "2026-11-21T09:00:00Z",
     "endsAt": "2100-01-01T00:00:00Z", "generatorURL": "http://prometheus:9090/graph"},
    {"labels": {"alertname": "CPU", "instance": "web-3"}},
]
ALERTMANAGER = {
    "version": "4", "groupKey": "{}:{alertname=\"DiskFull\"}", "truncatedAlerts": 0, "status": "firing",
    "receiver": "herald", "groupLabels": {"alertname": "DiskFull"}, "commonLabels": {"alertname": "DiskFull"},
    "commonAnnotations": {}, "externalURL": "http://alertmanager:9093",
    "alerts": [
        {"status": "firing", "labels": {"alertname": "DiskFull", "instance": "db-1", "severity": "critical"},
         "annotations": {"summary": "disk 97% full"}, "startsAt": "2026-11-21T09:00:00.5Z",
         "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prometheus:9090/graph", "fingerprint": "abc"},
        {"status": "resolved", "labels": {"alertname": "DiskFull", "instance": "db-2"}, "annotations": {},
         "startsAt": "2026-11-21T08:00:00Z", "endsAt": "2026-11-21T09:30:00Z", "generatorURL": "",
         "fingerprint": "def"},
    ],
}
GRAFANA = {
    "receiver": "herald", "status": "firing", "orgId": 1, "version": "1", "state": "alerting",
    "groupKey": "{}:{alertname=\"CPU\"}", "truncatedAlerts": 0, "title": "[FIRING:1] CPU", "message": "**Firing**",
    "externalURL": "http://grafana:3000/", "groupLabels": {"alertname": "CPU"}, "commonLabels": {"alertname": "CPU"},
    "commonAnnotations": {},
    "alerts": [{
        "status": "firing", "labels": {"alertname": "CPU", "grafana_folder": "Infra", "instance": "web-3"},
        "annotations": {"summary": "CPU above 90%"}, "startsAt": "2026-11-21T09:55:00Z",
        "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://grafana:3000/alerting/grafana/abc/view",
        "fingerprint": "c6eadffa33fcdf37", "silenceURL": "http://grafana:3000/alerting/silence/new?x=1",
        "dashboardURL": "http://grafana:3000/d/dash", "panelURL": "http://grafana:3000/d/dash?viewPanel=2",
        "values": {"B": 93.5, "C": 1}, "valueString": "[ var='B' labels={} value=93.5 ]",
        "imageURL": "http://grafana:3000/render/x.png",
    }],
}
ENDPOINTS = [("POST", "/api/v2/alerts", V2), ("POST", "/webhook/alertmanager", ALERTMANAGER),
             ("POST", "/webhook/grafana", GRAFANA), ("PUT", "/webhook/grafana", GRAFANA)]
SEEDS = [json.dumps(body).encode() for _, _, body in ENDPOINTS]


# --- Body mutations: (rng, body bytes) -> body bytes.

def flip(rng, body):
    data = bytearray(body)
    for _ in range(rng.randint(1, 8)):
        if data:
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    return bytes(data)


def insert_bytes(rng, body):
    at = rng.randint(0, len(body))
    return body[:at] + bytes(rng.randrange(256) for _ in range(rng.randint(1, 16))) + body[at:]


def delete_bytes(rng, body):
    if not body:
        return body
    at = rng.randrange(len(body))
    return body[:at] + body[at + rng.randint(1, 32):]


def truncate(rng, body):
    return body[:rng.randint(0, len(body))]


def splice(rng, body):
    other = rng.choice(SEEDS)
    return body[:rng.randint(0, len(body))] + other[rng.randint(0, len(other)):]


def _nodes(value, path=()):
    yield path
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _nodes(child, path + (key,))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _nodes(child, path + (index,))


def _replace(value, path, new):
    if not path:
        return new
    value[path[0]] = _replace(value[path[0]], path[1:], new)
    return value


def _load(body):
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


def _json_edit(rng, body, make):
    value = _load(body)
    if value is None:
        return body
    path = rng.choice(list(_nodes(value)))
    return json.dumps(_replace(value, path, make(rng))).encode()


def type_swap(rng, body):
    return _json_edit(rng, body, lambda r: r.choice(
        [None, True, False, 0, -1, 3.5, "", "text", [], {}, [1, "a"], {"k": "v"}, "0001-01-01T00:00:00Z"]))


def huge_number(rng, body):
    number = rng.choice(["1e999999", "-1e999999", "9" * 5000, "18446744073709551616", "-0.0e-99999", "1" + "0" * 400])
    value = _load(body)
    if value is None:
        return body
    path = rng.choice(list(_nodes(value)))
    marker = "\u0000HUGE\u0000"
    return json.dumps(_replace(value, path, marker)).replace(json.dumps(marker), number).encode()


def huge_string(rng, body):
    size = rng.choice([70_000, 1_000_000, 5 * 1024 * 1024 if rng.random() < 0.2 else 300_000])
    return _json_edit(rng, body, lambda r: r.choice(["x", "é", "\u0000", "\\"]) * size)


def deep_nesting(rng, body):
    depth = rng.choice([129, 1000, 100_000])
    opener, closer = rng.choice([("[", "]"), ('{"a":', "}")])
    nested = opener * depth + "1" + closer * depth
    at = rng.randint(0, len(body))
    return rng.choice([nested.encode(), body[:at] + nested.encode() + body[at:]])


def invalid_utf8(rng, body):
    bad = rng.choice([b"\xff", b"\xfe\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\x80", b"\xf4\x90\x80\x80", b"\xe2\x82"])
    # Inside a string more often than not: after an opening quote.
    quotes = [i for i, byte in enumerate(body) if byte == 0x22]
    at = rng.choice(quotes) + 1 if quotes and rng.random() < 0.8 else rng.randint(0, len(body))
    return body[:at] + bad + body[at:]


def duplicate_keys(rng, body):
    for key in (b'"labels":', b'"alerts":', b'"version":', b'"alertname":', b'"status":', b'"endsAt":'):
        at = body.find(key)
        if at >= 0 and rng.random() < 0.6:
            value = rng.choice([b'"4"', b'{}', b'[]', b'null', b'{"alertname":"Dup"}', b'"firing"', b'1'])
            return body[:at] + key + value + b"," + body[at:]
    return body


def empty(rng, body):
    return rng.choice([b"", b"null", b"{}", b"[]", b" \n\t ", b"\"\"", b"0", b"[null]", b"[{}]", b'{"alerts":null}'])


BODY_MUTATIONS = [flip, insert_bytes, delete_bytes, truncate, splice, type_swap, huge_number, huge_string,
                  deep_nesting, invalid_utf8, duplicate_keys, empty]
BODY_WEIGHTS = [12, 8, 8, 8, 5, 14, 6, 2, 5, 8, 8, 3]

HEADER_MUTATIONS = ["content_type", "no_content_type", "gzip", "chunked", "bad_chunks", "short_chunks",
                    "length_longer", "length_shorter", "two_lengths", "huge_header", "many_headers", "authorization",
                    "grafana_signature", "method", "expect"]
FRAMING = {"bad_chunks", "short_chunks", "length_longer", "length_shorter", "two_lengths"}


def build(rng, index):
    """Request `index`: (method, path, headers, body, raw body bytes override, mutation names, framing broken)."""
    endpoint = rng.randrange(len(ENDPOINTS))
    method, path, _ = ENDPOINTS[endpoint]
    body = SEEDS[endpoint]
    names = []
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        mutation = rng.choices(BODY_MUTATIONS, BODY_WEIGHTS)[0]
        body = mutation(rng, body)
        names.append(mutation.__name__)
    headers = [("content-type", "application/json")]
    chunked, framing, length = None, False, str(len(body))
    if rng.random() < 0.35:
        header = rng.choice(HEADER_MUTATIONS)
        names.append(header)
        framing = header in FRAMING
        if header == "content_type":
            headers = [("content-type", rng.choice([
                "text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin1",
                "application/jsonx", "*/*", "application/json, text/plain", "\x7f", "multipart/form-data; boundary=x",
                "APPLICATION/JSON", "application/problem+json", " application/json ", "application/json;;;"]))]
        elif header == "no_content_type":
            headers = []
        elif header == "gzip":
            headers.append(("content-encoding", rng.choice(["gzip", "deflate", "br", "identity, gzip", "x"])))
        elif header in ("chunked", "bad_chunks", "short_chunks"):
            chunked = header
        elif header == "length_longer":
            length = str(len(body) + rng.randint(1, 1000))
        elif header == "length_shorter":
            length = str(max(0, len(body) - rng.randint(1, 50)))
        elif header == "two_lengths":
            headers.append(("content-length", str(len(body) + 1)))
        elif header == "huge_header":
            headers.append(("x-filler", "a" * rng.choice([8_000, 70_000, 200_000])))
        elif header == "many_headers":
            headers += [(f"x-h{i}", "v") for i in range(rng.choice([50, 200, 2000]))]
        elif header == "authorization":
            headers.append(("authorization", rng.choice(["Bearer", "Bearer " + "x" * 5000, "Basic !!!", "\x01"])))
        elif header == "grafana_signature":
            headers.append(("x-grafana-alerting-signature", rng.choice(["", "zz", "0" * 64, "sha256=" + "f" * 64])))
        elif header == "method":
            method = rng.choice(["GET", "DELETE", "PATCH", "OPTIONS", "HEAD", "PUT", "POST", "BREW"])
        elif header == "expect":
            headers.append(("expect", rng.choice(["100-continue", "teapot"])))
    return method, path, headers, body, chunked, length, names, framing


def encode(method, path, headers, body, chunked, length, address, rng):
    lines = [f"{method} {path} HTTP/1.1", f"host: {address}"]
    lines += [f"{name}: {value}" for name, value in headers]
    if chunked:
        lines.append("transfer-encoding: chunked")
        pieces, at = [], 0
        while at < len(body):
            size = rng.randint(1, 4096)
            pieces.append(b"%x\r\n" % len(body[at:at + size]) + body[at:at + size] + b"\r\n")
            at += size
        if chunked == "bad_chunks" and pieces:
            pieces[rng.randrange(len(pieces))] = rng.choice([b"zz\r\nxx\r\n", b"ffffffffffffffffff\r\n", b"-1\r\n"])
        if chunked != "short_chunks":
            pieces.append(b"0\r\n\r\n")
        else:
            pieces = pieces[:max(0, len(pieces) - 1)]
        payload = b"".join(pieces)
    else:
        lines.append(f"content-length: {length}")
        payload = body
    return "\r\n".join(lines).encode("latin-1", "replace") + b"\r\n\r\n" + payload


class Connection:
    def __init__(self, address, timeout):
        host, port = address.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.buffer = b""

    def send(self, data, close_write):
        """Whether the whole request went out: a server that answers before reading the body (413, 405) may
        close the connection while the rest is still being sent."""
        try:
            self.sock.sendall(data)
        except OSError:
            return False
        if close_write:
            try:
                self.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        return True

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        self.buffer += chunk

    def read_answer(self, head_request):
        """(status, keep-alive) of the next answer; raises OSError when there is none."""
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        fields = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
        if status == 100:
            return self.read_answer(head_request)
        if not head_request:
            if fields.get("transfer-encoding", "").lower() == "chunked":
                while True:
                    while b"\r\n" not in self.buffer:
                        self._fill()
                    size_line, self.buffer = self.buffer.split(b"\r\n", 1)
                    size = int(size_line.split(b";")[0], 16)
                    while len(self.buffer) < size + 2:
                        self._fill()
                    self.buffer = self.buffer[size + 2:]
                    if size == 0:
                        break
            else:
                size = int(fields.get("content-length", "0"))
                while len(self.buffer) < size:
                    self._fill()
                self.buffer = self.buffer[size:]
        return status, fields.get("connection", "").lower() != "close"

    def close(self):
        self.sock.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=15, help="per request, seconds")
    parser.add_argument("--max-rss-mib", type=float, default=512)
    parser.add_argument("--skip", default="", help="body mutations left out, by name (e.g. huge_string)")
    parser.add_argument("--deadline", type=float, default=600, help="the whole run stops after this many seconds")
    parser.add_argument("--herald", default=hb.DEFAULT_HERALD)
    args = parser.parse_args()
    hb.check_binary(args.herald)
    hb.install_signal_handlers()
    for name in filter(None, args.skip.split(",")):
        names = [mutation.__name__ for mutation in BODY_MUTATIONS]
        if name not in names:
            sys.exit(f"unknown mutation {name!r}: one of {', '.join(names)}")
        BODY_WEIGHTS[names.index(name)] = 0
    work = tempfile.mkdtemp(prefix="herald-mutate.")
    failures = []
    try:
        herald = hb.Herald(args.herald, work, "", name="herald").start()
        address = herald.address
        statuses, unanswered, by_mutation_5xx = Counter(), Counter(), []
        lock = threading.Lock()
        next_index = [0]
        reconnects = [0]
        unanswered_well_framed = []
        accepted_bytes, accepted_large = [0], [0]
        started = time.monotonic()
        end = started + args.deadline
        peak = [herald.rss_kib() or 0]
        done = threading.Event()

        def sample():
            while not done.wait(0.2):
                rss = herald.rss_kib()
                if rss:
                    peak[0] = max(peak[0], rss)

        def worker():
            connection = None
            while time.monotonic() < end:
                with lock:
                    index = next_index[0]
                    if index >= args.requests:
                        break
                    next_index[0] += 1
                rng = random.Random(f"{args.seed}:{index}")
                method, path, headers, body, chunked, length, names, framing = build(rng, index)
                data = encode(method, path, headers, body, chunked, length, address, rng)
                own = framing or connection is None
                status, kind, reconnected, whole = None, None, False, True
                for _ in range(2):
                    try:
                        if framing:
                            target = Connection(address, args.timeout)
                        else:
                            if connection is None:
                                connection = Connection(address, args.timeout)
                            target = connection
                        whole = target.send(data, close_write=framing)
                        status, keep = target.read_answer(method == "HEAD")
                        if framing:
                            target.close()
                        elif not keep:
                            connection.close()
                            connection = None
                        break
                    except (OSError, ValueError, IndexError) as error:
                        kind = type(error).__name__
                        fresh = framing or own or reconnected or not whole
                        target.close()
                        connection = None
                        if fresh:
                            break
                        # A kept-alive connection the server had closed after its last answer: once more on a new
                        # one, as HTTP clients do.
                        reconnected, own = True, True
                with lock:
                    if reconnected:
                        reconnects[0] += 1
                with lock:
                    if status is None:
                        broken = next((name for name in names if name in FRAMING), None)
                        if not whole:
                            unanswered["closed by the server while the body was being sent"] += 1
                        elif len(data) > 65536:
                            unanswered["body over 64 KiB sent, then the connection reset"] += 1
                        elif broken:
                            unanswered[f"{broken}, half-closed"] += 1
                        else:
                            unanswered["well framed"] += 1
                            unanswered_well_framed.append((index, kind, names))
                    else:
                        statuses[status] += 1
                        if 200 <= status < 300:
                            accepted_bytes[0] += len(body)
                            if len(body) > 65536:
                                accepted_large[0] += 1
                        if 500 <= status < 600 and status != 503:
                            by_mutation_5xx.append((index, status, names))
            if connection is not None:
                connection.close()

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        threads = [threading.Thread(target=worker, daemon=True) for _ in range(args.workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=max(1, end - time.monotonic() + args.timeout + 5))
        done.set()
        took = time.monotonic() - started
        sent = sum(statuses.values()) + sum(unanswered.values())

        healthy = hb.get(herald.url("/-/healthy"))[0]
        valid = hb.post_json(herald.url("/api/v2/alerts"), V2)[0]
        rss_end = herald.rss_kib() or 0
        alive = herald.process.poll() is None
        herald.stop()
        panics = 0
        for name in os.listdir(work):
            if name.endswith(".log"):
                with open(os.path.join(work, name), errors="replace") as log:
                    panics += sum("panicked" in line for line in log)

        result = {
            "requests": sent, "seed": args.seed, "took_s": round(took, 1),
            "answers": {str(code): count for code, count in sorted(statuses.items())},
            "unanswered": dict(unanswered), "kept_alive_connection_closed_before_a_request": reconnects[0],
            "server_errors_not_503": len(by_mutation_5xx),
            "accepted_bodies_mib": round(accepted_bytes[0] / 1048576, 1), "accepted_over_64kib": accepted_large[0],
            "healthy_after": healthy, "valid_post_after": valid, "panics_logged": panics,
            "rss_peak_mib": round(peak[0] / 1024, 1), "rss_end_mib": round(rss_end / 1024, 1),
        }
        print(json.dumps(result), flush=True)
        if sent < args.requests:
            failures.append(f"only {sent} of {args.requests} requests sent within {args.deadline} s")
        for index, status, names in by_mutation_5xx[:10]:
            failures.append(f"request {index} ({', '.join(names)}) answered {status}")
        if len(by_mutation_5xx) > 10:
            failures.append(f"... and {len(by_mutation_5xx) - 10} more answered 5xx other than 503")
        for index, kind, names in unanswered_well_framed[:10]:
            failures.append(f"request {index} ({', '.join(names)}) got no answer ({kind})")
        if not alive:
            failures.append("herald died during the run")
        if healthy != 200:
            failures.append(f"/-/healthy answered {healthy} afterwards")
        if valid != 200:
            failures.append(f"a valid alert was answered {valid} afterwards")
        if panics:
            failures.append(f"{panics} panics in herald's log")
        if peak[0] / 1024 > args.max_rss_mib:
            failures.append(f"RSS peaked at {peak[0] / 1024:.0f} MiB > {args.max_rss_mib} MiB")
    finally:
        hb.stop_all()
        shutil.rmtree(work, ignore_errors=True)
    for failure in failures:
        print(f"FAILED {failure}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
