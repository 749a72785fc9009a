#!/usr/bin/env python3
"""Compare-and-swap latency of etcd as jvpn uses it: one transaction per request through etcd's
v3 JSON gateway (compare mod_revision, put on success, read back on failure), over one kept-alive
HTTP connection, N times in a row.

  etcd_cas_latency.py http://IP:PORT [--n 500]

Prints one JSON line: count, p50/p90/p99/max in milliseconds.
"""
import argparse
import base64
import http.client
import json
import sys
import time
import urllib.parse


def b64(s):
    return base64.b64encode(s.encode()).decode()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("--n", type=int, default=500)
    a = p.parse_args()
    u = urllib.parse.urlparse(a.url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=5)
    key = b64("/jvpn-bench/cas")

    def post(path, body):
        c.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        r = c.getresponse()
        return json.loads(r.read())

    rev = int(post("/v3/kv/put", {"key": key, "value": b64("0")})["header"]["revision"])
    samples = []
    for i in range(a.n):
        t = time.perf_counter()
        r = post("/v3/kv/txn", {"compare": [{"target": "MOD", "key": key, "result": "EQUAL", "mod_revision": str(rev)}],
                                "success": [{"request_put": {"key": key, "value": b64(str(i))}}],
                                "failure": [{"request_range": {"key": key}}]})
        samples.append((time.perf_counter() - t) * 1000)
        if not r.get("succeeded"):
            print("CAS failed unexpectedly", r, file=sys.stderr)
            return 1
        rev = int(r["header"]["revision"])
    post("/v3/kv/deleterange", {"key": key})
    s = sorted(samples)
    q = lambda f: round(s[min(len(s) - 1, int(len(s) * f))], 3)
    print(json.dumps({"count": len(s), "p50_ms": q(0.5), "p90_ms": q(0.9), "p99_ms": q(0.99), "max_ms": round(s[-1], 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
