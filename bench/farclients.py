"""Clients a network round trip away, simulated on loopback: what a sync
worker's wait for each client's close costs.

wrk on 127.0.0.1 closes a connection microseconds after the answer. A
client across a network closes it a round trip after the server's FIN
left; one that keeps its connection open after the answer closes it only
later still. This drives one-text predictions from connections that each
wait `--hold` milliseconds after reading their answer before they close,
then send the next request on a new connection, and prints requests/s,
the latency of the answers (request sent -> answer read) and the
workers' CPU per request, for each checkout in turn:

    git worktree add /tmp/before HEAD~1
    python -m bench.farclients /tmp/before . --hold 20     # 20 ms round trips
    python -m bench.farclients /tmp/before . --hold 1000   # connections kept open a second

The server runs under the checkout's gunicorn.conf.py with its default
workers, on a new SQLite file each run, bound to 127.0.0.1.
"""
import argparse
import asyncio
import base64
import json
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench.alternate import cpu_seconds, workers_started  # noqa: E402
from bench.load import USERNAME, Server, make_tables, sample_texts  # noqa: E402


def request_bytes(auth, text):
    body = json.dumps({"text": text}).encode()
    return (f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode() + body


async def one_connection(port, requests, hold, stop_at, latencies, failures):
    """Request after request, each on a new connection held open `hold`
    seconds after its answer."""
    i = 0
    while time.monotonic() < stop_at:
        request = requests[i % len(requests)]
        i += 1
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            started = time.monotonic()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            await reader.readexactly(length)
            answered = time.monotonic()
            if not head.startswith(b"HTTP/1.1 200"):
                failures.append(head.split(b"\r\n", 1)[0].decode())
            elif answered < stop_at:
                latencies.append(answered - started)
            await asyncio.sleep(hold)
            writer.close()
            await writer.wait_closed()
        except (OSError, asyncio.IncompleteReadError) as exc:
            failures.append(repr(exc))


async def drive(port, requests, connections, hold, duration):
    """(latencies in seconds, failures) of `connections` clients for
    `duration` seconds."""
    latencies, failures = [], []
    stop_at = time.monotonic() + duration
    await asyncio.gather(*(one_connection(port, requests[n::connections] or requests, hold,
                                          stop_at, latencies, failures)
                           for n in range(connections)))
    return latencies, failures


def percentile(values, share):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def one_run(root, env, requests, args, tmp):
    make_tables(root, env)
    server = Server("app:app", env, root, tmp, "farclients")
    try:
        server.wait_ready("/health", None, workers_started(root, env))
        workers = server.worker_pids()
        asyncio.run(drive(server.port, requests, 4, 0, 1))  # warm up
        before = cpu_seconds(workers)
        latencies, failures = asyncio.run(
            drive(server.port, requests, args.connections, args.hold / 1000, args.duration))
        cpu = cpu_seconds(workers) - before
    finally:
        server.stop()
    answered = len(latencies)
    return {"rps": answered / args.duration, "p50": percentile(latencies, 0.5) * 1000,
            "p99": percentile(latencies, 0.99) * 1000, "failures": failures,
            "cpu_us": cpu / max(answered, 1) * 1e6}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("roots", nargs="+", help="checkouts to compare, first the baseline")
    parser.add_argument("--hold", type=float, default=20.0,
                        help="milliseconds each connection stays open after its answer (20)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=int, default=8, help="seconds per run (8)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    roots = [os.path.abspath(root) for root in args.roots]
    password = secrets.token_urlsafe(16)
    auth = "Basic " + base64.b64encode(f"{USERNAME}:{password}".encode()).decode()
    requests = [request_bytes(auth, text) for text in sample_texts()[:200]]
    tmp = tempfile.mkdtemp(prefix="bench-farclients-")
    results = {root: [] for root in roots}
    try:
        for round_number in range(1, args.rounds + 1):
            for index, root in enumerate(roots):
                env = {"BASIC_AUTH_USERNAME": USERNAME, "BASIC_AUTH_PASSWORD": password,
                       "SECRET_KEY": "bench", "MODEL_PATH": os.path.join(root, "model.pkl"),
                       "DATABASE_URL": "sqlite:///" + os.path.join(
                           tmp, f"round{round_number}-{index}.sqlite")}
                result = one_run(root, env, requests, args, tmp)
                results[root].append(result)
                failures = result["failures"]
                print(f"round {round_number}, {root}: {result['rps']:,.0f} req/s, "
                      f"p50 {result['p50']:.1f} ms, p99 {result['p99']:.1f} ms, "
                      f"failures {len(failures)}" + (f" ({failures[0]})" if failures else "")
                      + f", worker CPU {result['cpu_us']:,.0f} us/request", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for root, runs in results.items():
        rates = ", ".join(f"{r['rps']:,.0f}" for r in runs)
        print(f"{root}: median {statistics.median(r['rps'] for r in runs):,.0f} req/s "
              f"[{rates}], "
              f"median p50 {statistics.median(r['p50'] for r in runs):.1f} ms, "
              f"median p99 {statistics.median(r['p99'] for r in runs):.1f} ms, "
              f"failures {sum(len(r['failures']) for r in runs)}, "
              f"median worker CPU {statistics.median(r['cpu_us'] for r in runs):,.0f} us/request")


if __name__ == "__main__":
    main()
