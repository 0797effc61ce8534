"""Flood a running `mmrf serve` with rank requests from many users whose session ids are
long, and report the answers' status codes and the server's memory.

    python3 bench/session_flood.py --port 8080 --pid $(pgrep -f "mmrf serve") \
        --users 5000 --session-bytes 102400

Each user sends one `POST /v1/rank` (400 candidates, k = 10) over one keep-alive
connection. With `--pid`, the server's resident memory (VmRSS) and its peak (VmHWM) are
read from /proc after the flood. Only the standard library is used.
"""

import argparse
import http.client
import json


def memory(pid):
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f if ":" in line)
    return {k: fields[k].strip() for k in ("VmRSS", "VmHWM")}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--users", type=int, default=5000)
    p.add_argument("--session-bytes", type=int, default=100 * 1024)
    p.add_argument("--pid", type=int, help="the server's process id, to read its memory")
    a = p.parse_args()
    conn = http.client.HTTPConnection(a.host, a.port)
    candidates = list(range(1, 401))
    codes = {}
    for user in range(a.users):
        body = json.dumps(
            {"user_id": user, "session_id": "s" * a.session_bytes, "candidates": candidates, "k": 10}
        )
        conn.request("POST", "/v1/rank", body, {"Content-Type": "application/json"})
        r = conn.getresponse()
        r.read()
        codes[r.status] = codes.get(r.status, 0) + 1
    conn.request("GET", "/healthz")
    health = json.loads(conn.getresponse().read())
    print(json.dumps({"status_codes": codes, "sessions_held": health["sessions"],
                      "server_memory": memory(a.pid) if a.pid else None}))


if __name__ == "__main__":
    main()
