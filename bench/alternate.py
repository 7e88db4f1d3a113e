"""Two or more checkouts under the same load, taking turns: is a change faster?

On a shared machine the speed drifts by tens of per cent within minutes, so
two full `bench.load` runs of different commits, one after the other, say
more about the machine than about the change. This serves each checkout in
turn (gunicorn with that checkout's gunicorn.conf.py on a free port of
127.0.0.1, a new database each time), drives it with wrk for a few seconds,
and goes round again, so a drift falls on every checkout alike:

    git worktree add /tmp/before HEAD~1
    python -m bench.alternate /tmp/before .             # one text, SQLite
    python -m bench.alternate /tmp/before . --postgres  # one text, PostgreSQL
    python -m bench.alternate /tmp/before . --batch     # 100 texts per request
    python -m bench.alternate /tmp/before . --feedback  # feedback on stored predictions
    python -m bench.alternate /tmp/before . --hello     # hello-world's GET / (the ceiling)

It prints every run and, per checkout, the median and every value, and how
many rounds the last checkout beat the first. Beside requests per second it
gives the CPU time the gunicorn workers spent per request (from /proc):
on a machine whose speed drifts, that moves less than the throughput.
"""
import argparse
import base64
import os
import runpy
import secrets
import shutil
import statistics
import sys
import tempfile
from unittest import mock

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench.load import (  # noqa: E402
    DEFAULT_POSTGRES, USERNAME, WRK_MISSING, PostgresSchema, Server, batch_bodies, http,
    lua_script, make_tables, run_wrk, sample_texts)


def workers_started(root, env):
    """How many workers the checkout's gunicorn.conf.py starts under `env`
    (since 26d4e6a it depends on the database), so a run waits for all of
    them before the load starts."""
    with mock.patch.dict(os.environ, env):
        return int(runpy.run_path(os.path.join(root, "gunicorn.conf.py"))["workers"])


def cpu_seconds(pids):
    """User and system CPU time of these processes so far, in seconds."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def serve_and_load(root, env, script, connections, duration, tmp, seed=None, app="app:app"):
    """One run of one checkout: its tables made, its server up and warm,
    then wrk. `seed`: (auth, texts) stored first, for feedback to be given
    on. The result of run_wrk, with "cpu_us": the workers' CPU time per
    request, in microseconds."""
    make_tables(root, env)
    server = Server(app, env, root, tmp, "alternate")
    try:
        server.wait_ready("/health" if app == "app:app" else "/", None,
                          workers_started(root, env))
        if seed is not None:
            status, body = http(server.base, "/predict", seed[0], {"texts": seed[1]})
            if status != 200:
                raise SystemExit(f"{root}: storing the predictions to give feedback on: "
                                 f"{status} {body[:200]!r}")
        run_wrk(server.base, script, 4, 2)
        workers = server.worker_pids()
        before = cpu_seconds(workers)
        result = run_wrk(server.base, script, connections, duration)
        result["cpu_us"] = (cpu_seconds(workers) - before) / max(result["requests"], 1) * 1e6
        return result
    finally:
        server.stop()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("roots", nargs="+", help="checkouts to compare, first the baseline")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--duration", type=int, default=6, help="seconds per run (6)")
    parser.add_argument("--rounds", type=int, default=5)
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--batch", action="store_true", help="100 texts per request")
    kind.add_argument("--feedback", action="store_true",
                      help="feedback on 100 stored predictions (random ids and labels)")
    kind.add_argument("--hello", action="store_true",
                      help="hello-world's GET / under each checkout's gunicorn.conf.py")
    parser.add_argument("--postgres", nargs="?", const=os.environ.get(
        "BENCH_POSTGRES_URL", DEFAULT_POSTGRES), default=None, metavar="URL",
        help="on PostgreSQL (a throw-away schema per run) instead of SQLite")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit(WRK_MISSING)
    roots = [os.path.abspath(root) for root in args.roots]
    for root in roots:
        if not os.path.exists(os.path.join(root, "app.py")):
            raise SystemExit(f"{root} is not a checkout of this service (no app.py)")

    texts = sample_texts()
    password = secrets.token_urlsafe(16)
    auth = "Basic " + base64.b64encode(f"{USERNAME}:{password}".encode()).decode()
    tmp = tempfile.mkdtemp(prefix="bench-alternate-")
    script = os.path.join(tmp, "load.lua")
    seed = None
    with open(script, "w") as fh:
        if args.hello:
            fh.write(lua_script("GET", "/", None))
        elif args.feedback:
            seed = (auth, texts[:100])
            fh.write(lua_script("POST", "/feedback", auth, feedback_ids=len(seed[1])))
        else:
            bodies = batch_bodies(texts) if args.batch else [{"text": t} for t in texts[:200]]
            fh.write(lua_script("POST", "/predict", auth, bodies=bodies))
    results = {root: [] for root in roots}
    try:
        for round_number in range(1, args.rounds + 1):
            for index, root in enumerate(roots):
                env = {"BASIC_AUTH_USERNAME": USERNAME, "BASIC_AUTH_PASSWORD": password,
                       "SECRET_KEY": "bench", "MODEL_PATH": os.path.join(root, "model.pkl")}
                schema = None
                if args.postgres:
                    schema = PostgresSchema(args.postgres)
                    env["DATABASE_URL"] = schema.url
                else:
                    env["DATABASE_URL"] = "sqlite:///" + os.path.join(
                        tmp, f"round{round_number}-{index}.sqlite")
                try:
                    app = "bench.apps:hello" if args.hello else "app:app"
                    result = serve_and_load(root, env, script, args.connections, args.duration,
                                            tmp, seed, app)
                finally:
                    if schema is not None:
                        schema.drop()
                results[root].append(result)
                print(f"round {round_number}, {root}: {result['rps']:,.0f} req/s, "
                      f"p99 {result['p99']:.1f} ms, errors {result['errors']}, "
                      f"worker CPU {result['cpu_us']:,.0f} us/request", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    for root, runs in results.items():
        values = [run["rps"] for run in runs]
        tails = [run["p99"] for run in runs]
        cpu = [run["cpu_us"] for run in runs]
        print(f"{root}: median {statistics.median(values):,.0f} req/s "
              f"[{', '.join(f'{v:,.0f}' for v in values)}], "
              f"median p99 {statistics.median(tails):.1f} ms "
              f"[{', '.join(f'{t:.1f}' for t in tails)}], "
              f"median worker CPU {statistics.median(cpu):,.0f} us/request "
              f"[{', '.join(f'{c:,.0f}' for c in cpu)}]")
    if len(roots) > 1:
        first = [run["rps"] for run in results[roots[0]]]
        last = [run["rps"] for run in results[roots[-1]]]
        won = sum(b > a for a, b in zip(first, last))
        print(f"{roots[-1]} beat {roots[0]} in {won} of {len(first)} rounds")


if __name__ == "__main__":
    main()
