#!/usr/bin/env python3
"""A non-Go client of the session HTTP API, standard library only.

Run by TestHTTPAPI_PythonClient_RegistersAndHeartbeats_GoWatcherSeesItComeAndGo:
registers an instance with a TTL, reads it back from the event stream and
the list, heartbeats it for a while, then stops (without deregistering), so
its lease lapses. Prints one JSON line per step on stdout; exits non-zero on
anything unexpected.

usage: httpapi_client.py BASE_URL CA_FILE TOKEN SERVICE INSTANCE_ID TTL HEARTBEATS INTERVAL_SECONDS
"""

import json
import ssl
import sys
import time
import urllib.error
import urllib.request


def main():
    base, ca, token, service, inst, ttl, beats, interval = sys.argv[1:9]
    beats, interval = int(beats), float(interval)
    ctx = ssl.create_default_context(cafile=ca)
    # Test certificates name 127.0.0.1 (an IP SAN); the identity is in the
    # URI SAN, which Python does not check: the chain is what we verify.
    ctx.check_hostname = True

    def call(method, path, body=None, headers=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(base + path, data=data, method=method)
        req.add_header("Authorization", "Bearer " + token)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            return urllib.request.urlopen(req, context=ctx, timeout=20)
        except urllib.error.HTTPError as e:
            fail("%s %s: %d %s" % (method, path, e.code, e.read().decode()))

    def step(**kv):
        print(json.dumps(kv), flush=True)

    def fail(msg):
        step(error=msg)
        sys.exit(1)

    path = "/v1/services/%s/instances/%s" % (service, inst)
    instance = {"addr": "192.0.2.7:8443", "weight": 7, "zone": "py", "metadata": {"lang": "python"}, "ttl": ttl}
    with call("PUT", path, instance) as r:
        reg = json.load(r)
        if r.status != 201 or reg["instance"]["id"] != inst:
            fail("register answered %d %r" % (r.status, reg))
        step(registered=inst, expires_at=reg["expires_at"])

    # The event stream's first event is the current list: wait for one that
    # holds the instance (the write reaches its slot leader a moment after
    # the registration's answer).
    with call("GET", "/v1/services/%s/watch" % service) as stream:
        if stream.headers.get("Content-Type") != "text/event-stream":
            fail("watch content type %r" % stream.headers.get("Content-Type"))
        event_id = None
        for raw in stream:
            line = raw.decode().rstrip("\n")
            if line.startswith("id: "):
                event_id = int(line[4:])
            elif line.startswith("data: "):
                listed = json.loads(line[6:])
                if any(i["id"] == inst for i in listed["instances"]):
                    step(watched=inst, version=event_id)
                    break

    for n in range(beats):
        with call("PUT", path + "/heartbeat") as r:
            if r.status != 200:
                fail("heartbeat answered %d" % r.status)
        time.sleep(interval)
    step(heartbeats=beats)

    with call("GET", "/v1/services/%s/instances" % service) as r:
        listed = json.load(r)
        index = r.headers.get("X-Strata-Index")
        if not any(i["id"] == inst and i["weight"] == 7 for i in listed["instances"]):
            fail("the list lacks the instance after its heartbeats: %r" % listed)
        step(listed=len(listed["instances"]), index=index)
    step(stopped="heartbeats")


if __name__ == "__main__":
    main()
