#!/usr/bin/env python3
"""The quickstart's example agent in Python (standard library only).

The same "social media poster" as agent.rs, written the way an agent in any
language talks to steward: plain HTTP to $STEWARD_URL/api/social/..., with
its steward token ($STEWARD_TOKEN) as a bearer token. It never sees the real
social-network token: steward injects it on the way out.

Scenario: post until the `post` tool's rate limit refuses, get stuck
re-reading the same status until the loop breaker engages the kill switch,
then try once more and get "killed". Afterwards it idles like a long-running
agent would; under `steward run` with [agent] command (see
examples/supervised/steward.toml) steward stops it because the kill switch is
engaged, and starts it again after `steward resume`.

Optional: with HEALTH_PORT set it answers GET /health on 127.0.0.1:HEALTH_PORT
(for [agent] health_url). Exit code 78 (EX_CONFIG) when STEWARD_URL or
STEWARD_TOKEN is missing: steward does not restart an agent that says its
configuration is wrong.
"""

import http.server
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request

EX_CONFIG = 78
MAX_POSTS = 10
LOOP_READS = 5


def log(text):
    print(text, flush=True)


class Agent:
    def __init__(self, base, token):
        self.base = base.rstrip("/")
        self.token = token

    def call(self, method, path, body=None):
        """Returns (HTTP status, parsed JSON body or {})."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + "/api/social" + path, data=data, method=method)
        request.add_header("Authorization", "Bearer " + self.token)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, parse(response.read())
        except urllib.error.HTTPError as err:
            return err.code, parse(err.read())
        except OSError as err:
            return 0, {"error": {"reason": "no answer: %s" % err}}

    def post(self, text):
        return self.call("POST", "/api/v1/statuses", {"status": text})

    def read(self, status_id):
        return self.call("GET", "/api/v1/statuses/" + status_id)


def parse(raw):
    try:
        return json.loads(raw or b"{}")
    except ValueError:
        return {}


def detail(body):
    error = body.get("error")
    if isinstance(error, dict):
        return error.get("reason", "")
    return str(body.get("id", ""))


def show(action, status, body):
    log("%-28s -> %s %s" % (action, status, detail(body)))


def serve_health(port):
    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/health" else 404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", port), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()


def main():
    base = os.environ.get("STEWARD_URL")
    token = os.environ.get("STEWARD_TOKEN")
    if not base or not token:
        log("STEWARD_URL and STEWARD_TOKEN must be set (steward sets them for the agents it runs)")
        return EX_CONFIG
    if os.environ.get("HEALTH_PORT"):
        serve_health(int(os.environ["HEALTH_PORT"]))
    agent = Agent(base, token)
    log("example agent talking to %s" % base)

    first_id = None
    for i in range(1, MAX_POSTS + 1):
        status, body = agent.post("hello world #%d" % i)
        show("post %r" % ("hello world #%d" % i), status, body)
        if status == 200 and first_id is None:
            first_id = body.get("id")
        if status != 200:
            break
    if first_id is None:
        log("nothing was posted; is the upstream (mock-upstream on 127.0.0.1:7700) running?")
    else:
        for _ in range(LOOP_READS):
            status, body = agent.read(first_id)
            show("read status %s" % first_id, status, body)
    status, body = agent.post("are you still there?")
    show("post 'are you still there?'", status, body)

    if os.environ.get("AGENT_EXIT_WHEN_DONE"):
        return 0
    log("scenario done; idling until steward stops me")
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main())
