#!/usr/bin/python3
"""unchanged_echo - a plain pyzmq program that knows nothing of shmipc:
REQ/REP round trips between two processes over the endpoint it is given.
Run it under the launcher and a shm:// endpoint uses shared memory:

    build/shmipc-run /usr/bin/python3 examples/unchanged_echo.py shm:///tmp/py 20000

It checks every reply, and says whether this process mapped shmipc
segments (it never imports anything of shmipc: it reads /proc/self/maps).
"""
import os
import subprocess
import sys
import time

import zmq


def serve(endpoint):
    context = zmq.Context()
    rep = context.socket(zmq.REP)
    rep.setsockopt(zmq.RCVTIMEO, 10000)
    rep.bind(endpoint)
    print("ready", flush=True)
    while True:
        request = rep.recv()
        rep.send(request)
        if request == b"END":
            break
    rep.close()
    context.term()


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "--serve":
        serve(sys.argv[2])
        return 0
    endpoint = sys.argv[1] if len(sys.argv) > 1 else "ipc:///tmp/unchanged_echo.ipc"
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
    server = subprocess.Popen([sys.executable, __file__, "--serve", endpoint],
                              stdout=subprocess.PIPE, text=True)
    try:
        if server.stdout.readline().strip() != "ready":
            print("unchanged_echo: the server did not start", file=sys.stderr)
            return 1
        context = zmq.Context()
        req = context.socket(zmq.REQ)
        req.setsockopt(zmq.RCVTIMEO, 10000)
        req.connect(endpoint)
        start = time.monotonic()
        for seq in range(count):
            payload = b"%d" % seq
            req.send(payload)
            if req.recv() != payload:
                print("unchanged_echo: wrong reply to %d" % seq, file=sys.stderr)
                return 1
        elapsed = time.monotonic() - start
        with open("/proc/self/maps") as maps:
            segments = sum("/memfd:shmipc:" in line for line in maps)
        req.send(b"END")
        req.recv()
        req.close()
        context.term()
        print("unchanged_echo: %d round trips over %s in %.2f s: %d/s; shared memory: %s"
              % (count, endpoint, elapsed, count / elapsed,
                 "yes (%d segment mappings)" % segments if segments else "no"))
        return 0
    finally:
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


if __name__ == "__main__":
    sys.exit(main())
