"""Throughput and latency under load, against the ceiling of Flask itself.

    python -m bench.load                 # full run, ~13 minutes; writes bench/results/load.md
    python -m bench.load --duration 3    # shorter cells, same table
    python -m bench.load --no-postgres   # SQLite only

Needs wrk (Debian/Ubuntu: `apt-get install -y wrk`; macOS: `brew install wrk`)
and, for the PostgreSQL rows, a server at --postgres (default: the test
database on 127.0.0.1:5432, trust auth), where a throw-away schema is created
and dropped again.

One run:
1. times the model alone in this process: the median of one predict for one
   text, and texts/s for batches of 100, through the fast path and through
   scikit-learn's predict_proba, and the whole predict() (which normalises
   each text once for both feature blocks);
2. starts, one after the other, gunicorn with the repository's
   gunicorn.conf.py on a free port of 127.0.0.1 for: a hello-world Flask app,
   the same with the service's Basic auth only (bench/apps.py), the service on
   SQLite (a new file in a temporary folder), the service on PostgreSQL, and
   hello-world again (its GET / only: the ratios divide by the mean of its two
   passes, and the report gives the drift between them); all along, a second
   hello-world server waits idle beside the service;
3. drives each with wrk at each concurrency (1, 8, 16, 32 connections) for
   --duration seconds per cell: GET / for the ceiling apps, and the very
   requests of the one-text predictions (so each figure has a ceiling that
   costs wrk and the network the same); POST /predict with one text,
   POST /predict with 100 texts, POST /feedback for the service, each cell of
   the service just after a cell of GET / on the waiting hello-world server at
   the same concurrency (--no-paired: not), for a "paired" ratio that the
   machine's drift over the run cannot skew;
   (--sqlite-synchronous, --postgres-synchronous-commit, --postgres-workers:
   one-text predictions once more with those settings);
4. reads the resident memory of every worker;
5. prints the table and writes it to bench/results/load.md with the machine's
   CPU count, load average and the settings used.

Load goes only to 127.0.0.1, every wrk run is bounded by --duration, and every
server is stopped (and the PostgreSQL schema dropped) even when a step fails.
"""
import argparse
import base64
import csv
import glob
import json
import logging
import os
import platform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timezone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "bench", "results", "load.md")
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
USERNAME = "bench"
HELLO_AGAIN = "hello-world, again"

WRK_MISSING = """wrk is not installed; bench.load drives the server with it.
  Debian/Ubuntu: apt-get install -y wrk
  macOS:         brew install wrk"""


def log(message):
    print(message, file=sys.stderr, flush=True)


# --- texts ------------------------------------------------------------------

def sample_texts(limit=400):
    """Real texts from the corpora, Spanish and English mixed, in a fixed order."""
    texts = []
    for path in sorted(glob.glob(os.path.join(ROOT, "data", "e[sn]", "*.csv"))):
        with open(path, encoding="utf-8") as fh:
            texts += [row["text"] for _, row in zip(range(limit // 6), csv.DictReader(fh))]
    return texts[:limit]


def batch_bodies(texts):
    """Eight 100-text request bodies, overlapping, from the sample."""
    return [{"texts": (texts * 2)[i:i + 100]} for i in range(0, 400, 50)]


def in_process_app(database_url, instance_path, **config):
    """(app, test client, Authorization header) of the service in this
    process, signed in as a bench administrator; `app` is imported here, so
    a caller that put another checkout first on sys.path gets that one."""
    from app import create_app

    app = create_app({"SQLALCHEMY_DATABASE_URI": database_url, "BASIC_AUTH_USERNAME": "bench",
                      "BASIC_AUTH_PASSWORD": "bench", "SECRET_KEY": "bench", **config},
                     instance_path=instance_path)
    logging.getLogger("sentiment").setLevel(logging.WARNING)
    headers = {"Authorization": "Basic " + base64.b64encode(b"bench:bench").decode()}
    return app, app.test_client(), headers


# The ceiling apps' second scenario: the requests of "predict, 1 text".
SAME_REQUESTS = "POST /predict, 1 text's requests"


# --- the model alone ----------------------------------------------------------

def median_predict_ms(model, texts, rounds):
    """Median ms of model.predict for one text, each text `rounds` times."""
    times = []
    for _ in range(rounds):
        for text in texts:
            start = time.perf_counter()
            model.predict([text])
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def model_numbers(model_path, texts):
    """Median ms for one text, texts/s in batches of 100; fast and sklearn."""
    from sentiment.model import SentimentModel

    model = SentimentModel.load(model_path)
    paths = {}
    if getattr(model, "fast", None) is not None:  # older checkouts have no fast path
        # Since the ninth round its arithmetic is in C where sentiment/_decision.c
        # was built in the checkout, in numpy otherwise; since the tenth the
        # word features too, since the eleventh the character n-grams'
        # lookups (sentiment/_words.c): the report says which.
        compiled = getattr(model.fast, "compiled", None) is not None
        in_c = [getattr(v, "compiled", getattr(v, "compiled_words", None)) is not None
                for v in model.fast.vectorizers]
        features = ("features" if all(in_c) else "word features" if in_c[0] else
                    "character n-grams" if any(in_c) else "")
        label = " and ".join(filter(None, [features, "arithmetic" if compiled else ""]))
        label = label + " in C" if label else ""
        paths["fast path" + (", " + label if label else "")] = model.predict_proba
    paths["scikit-learn"] = lambda batch: model.pipeline.predict_proba(list(batch))
    numbers = {}
    for name, predict_proba in paths.items():
        for text in texts[:50]:
            predict_proba([text])
        times = []
        for _ in range(5):
            for text in texts:
                start = time.perf_counter()
                predict_proba([text])
                times.append(time.perf_counter() - start)
        batches = [texts[i:i + 100] for i in range(0, len(texts) - 99, 100)]
        start = time.perf_counter()
        rounds = 0
        while time.perf_counter() - start < 3:
            for batch in batches:
                predict_proba(batch)
            rounds += 1
        elapsed = time.perf_counter() - start
        numbers[name] = {
            "one_text_median_ms": statistics.median(times) * 1000,
            "one_text_p99_ms": sorted(times)[int(len(times) * 0.99)] * 1000,
            "batch100_texts_per_s": rounds * len(batches) * 100 / elapsed,
        }
    # The whole predict (probabilities, labels, score) for one text.
    numbers["predict()"] = {"one_text_median_ms": median_predict_ms(model, texts, rounds=3)}
    return numbers


# --- servers ----------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(base, path, auth=None, body=None, timeout=10):
    headers = {"Connection": "close"}
    if auth:
        headers["Authorization"] = auth
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(base + path, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def make_tables(root, env):
    """The service's tables in a new database, made by one process before
    gunicorn starts: checkouts before 185d5fb let workers race to create
    them."""
    subprocess.run([sys.executable, "-c", "from app import create_app; create_app()"],
                   cwd=root, env=dict(os.environ, **env, PYTHONPATH=root),
                   check=True, capture_output=True, timeout=120)


class Server:
    """gunicorn with the repository's config on a free loopback port."""

    def __init__(self, app, env, root, log_dir, name):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = os.path.join(log_dir, f"{name}.log")
        self._log = open(self.log_path, "w")
        full_env = dict(os.environ, GUNICORN_BIND=f"127.0.0.1:{self.port}", **env)
        # The checkout under test first, then this one (for bench.apps).
        full_env["PYTHONPATH"] = os.pathsep.join([root, ROOT])
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", os.path.join(root, "gunicorn.conf.py"), app],
            cwd=root, env=full_env, stdout=self._log, stderr=subprocess.STDOUT)

    def wait_ready(self, path, auth, workers, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                if http(self.base, path, auth)[0] == 200 and len(self.worker_pids()) >= workers:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not start; see {self.log_path}:\n"
                           + open(self.log_path).read()[-3000:])

    def worker_pids(self):
        pids = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as fh:
                        fields = fh.read().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(fields[1]) == self.process.pid:
                    pids.append(int(entry))
        return sorted(pids)

    def worker_memory_mib(self):
        """(RSS, PSS) in MiB for each worker."""
        memory = []
        for pid in self.worker_pids():
            values = {}
            try:
                with open(f"/proc/{pid}/smaps_rollup") as fh:
                    for line in fh:
                        key, _, rest = line.partition(":")
                        if key in ("Rss", "Pss"):
                            values[key] = int(rest.split()[0]) / 1024
            except OSError:
                continue
            memory.append((values.get("Rss", 0.0), values.get("Pss", 0.0)))
        return memory

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=35)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


# --- wrk --------------------------------------------------------------------

LUA_DONE = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT {\"requests\": %d, \"duration_us\": %d, \"connect\": %d, \"read\": %d, " ..
    "\"write\": %d, \"status\": %d, \"timeout\": %d, \"p50\": %d, \"p95\": %d, " ..
    "\"p99\": %d, \"max\": %d}\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max))
end
"""


def lua_string(value):
    text = json.dumps(value, ensure_ascii=True) if not isinstance(value, str) else value
    assert "]==]" not in text
    return "[==[" + text + "]==]"


def lua_script(method, path, auth, bodies=None, feedback_ids=None):
    """A wrk script: the method, headers, rotating bodies, and a JSON summary."""
    lines = [f'wrk.method = "{method}"', f'wrk.path = "{path}"']
    if auth:
        lines.append(f'wrk.headers["Authorization"] = "{auth}"')
    if bodies:
        lines.append('wrk.headers["Content-Type"] = "application/json"')
        lines.append("local bodies = {" + ",\n".join(lua_string(b) for b in bodies) + "}")
        lines.append("local i = 0")
        lines.append("request = function()\n  i = i % #bodies + 1\n"
                     "  return wrk.format(nil, nil, nil, bodies[i])\nend")
    elif feedback_ids:
        lines.append('wrk.headers["Content-Type"] = "application/json"')
        lines.append('local labels = {"negative", "neutral", "positive"}')
        lines.append("request = function()\n"
                     f"  local id = math.random(1, {feedback_ids})\n"
                     "  local label = labels[math.random(1, 3)]\n"
                     "  return wrk.format(nil, nil, nil, string.format("
                     "'{\"prediction_id\": %d, \"label\": \"%s\"}', id, label))\nend")
    lines.append(LUA_DONE)
    return "\n".join(lines)


def run_wrk(base, script_path, connections, duration):
    threads = max(1, min(connections, 2))
    command = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{duration}s",
               "--timeout", "10s", "-s", script_path, base]
    result = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60)
    for line in result.stdout.splitlines():
        if line.startswith("RESULT "):
            data = json.loads(line[len("RESULT "):])
            seconds = data["duration_us"] / 1e6
            errors = sum(data[k] for k in ("connect", "read", "write", "status", "timeout"))
            return {
                "rps": data["requests"] / seconds,
                "p50": data["p50"] / 1000, "p95": data["p95"] / 1000,
                "p99": data["p99"] / 1000, "max": data["max"] / 1000,
                "requests": data["requests"], "errors": errors,
            }
    raise RuntimeError(f"wrk gave no result: {result.stdout}\n{result.stderr}")


# --- PostgreSQL -------------------------------------------------------------

class PostgresSchema:
    """A throw-away schema, dropped again by drop()."""

    def __init__(self, url):
        import sqlalchemy

        from sentiment.config import database_url

        self.sqlalchemy = sqlalchemy
        self.engine = sqlalchemy.create_engine(database_url(url, ROOT))
        self.schema = "bench_" + uuid.uuid4().hex[:12]
        with self.engine.begin() as conn:
            conn.execute(sqlalchemy.text(f"CREATE SCHEMA {self.schema}"))
        separator = "&" if "?" in url else "?"
        self.url = f"{url}{separator}options=-csearch_path%3D{self.schema}"

    def drop(self):
        with self.engine.begin() as conn:
            conn.execute(self.sqlalchemy.text(f"DROP SCHEMA {self.schema} CASCADE"))
        self.engine.dispose()


def postgres_reachable(url):
    import sqlalchemy

    from sentiment.config import database_url

    engine = sqlalchemy.create_engine(database_url(url, ROOT))
    try:
        with engine.connect():
            return True
    except Exception as exc:
        log(f"PostgreSQL at {url} is not reachable ({exc.__class__.__name__}); skipping it")
        return False
    finally:
        engine.dispose()


# --- the run ----------------------------------------------------------------

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per cell (10)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 16, 32])
    parser.add_argument("--workers", type=int, default=None,
                        help="gunicorn workers for every server (default: WEB_CONCURRENCY, or the "
                             "CPU count, as the issue's targets ask; gunicorn.conf.py alone gives "
                             "PostgreSQL twice that, see --postgres-workers)")
    parser.add_argument("--postgres", default=os.environ.get("BENCH_POSTGRES_URL", DEFAULT_POSTGRES))
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--sqlite-synchronous", nargs="+", default=None, metavar="LEVEL",
                        help="also run single predictions on SQLite with these PRAGMA synchronous "
                             "levels (e.g. FULL), beside the configured default")
    parser.add_argument("--postgres-synchronous-commit", nargs="+", default=None,
                        metavar="LEVEL",
                        help="also run single predictions on PostgreSQL with these "
                             "POSTGRES_SYNCHRONOUS_COMMIT levels (e.g. off; a --root checkout "
                             "older than 26d4e6a ignores the setting)")
    parser.add_argument("--postgres-workers", type=int, nargs="+", default=None, metavar="N",
                        help="also run single predictions on PostgreSQL with these numbers of "
                             "workers (e.g. 4, gunicorn.conf.py's default there on 2 cores)")
    parser.add_argument("--root", default=ROOT,
                        help="the checkout to serve (to compare against another commit)")
    parser.add_argument("--output", default=RESULTS, help="Markdown file ('-' for none)")
    parser.add_argument("--no-paired", action="store_true",
                        help="no GET / on hello-world just before each cell of the service")
    args = parser.parse_args(argv)

    if shutil.which("wrk") is None:
        raise SystemExit(WRK_MISSING)
    root = os.path.abspath(args.root)
    model_path = os.path.join(root, "model.pkl")
    load_before = os.getloadavg()
    started = datetime.now(timezone.utc)
    texts = sample_texts()

    log("timing the model alone ...")
    sys.path.insert(0, root)
    model = model_numbers(model_path, texts)
    for name, numbers in model.items():
        log(f"  {name}: " + ", ".join(f"{k} {v:,.4g}" for k, v in numbers.items()))

    password = secrets.token_urlsafe(16)
    auth = "Basic " + base64.b64encode(f"{USERNAME}:{password}".encode()).decode()
    base_env = {"BASIC_AUTH_USERNAME": USERNAME, "BASIC_AUTH_PASSWORD": password,
                "SECRET_KEY": "bench", "MODEL_PATH": model_path}
    workers = args.workers or int(os.environ.get("WEB_CONCURRENCY") or os.cpu_count())
    # The same number for every server, PostgreSQL's included (where
    # gunicorn.conf.py alone would start twice as many): the ratios compare
    # like with like; --postgres-workers adds cells with other numbers.
    base_env["WEB_CONCURRENCY"] = str(workers)

    one_bodies = [{"text": t} for t in texts[:200]]

    tmp = tempfile.mkdtemp(prefix="bench-load-")
    scripts = {}

    def script(name, *a, **kw):
        path = os.path.join(tmp, f"{name}.lua")
        with open(path, "w") as fh:
            fh.write(lua_script(*a, **kw))
        scripts[name] = path
        return path

    script("hello", "GET", "/", None)
    script("auth", "GET", "/", auth)
    script("predict1", "POST", "/predict", auth, bodies=one_bodies)
    script("batch100", "POST", "/predict", auth, bodies=batch_bodies(texts))

    # (label, app, extra environment, database, one-text predictions only)
    targets = [("hello-world", "bench.apps:hello", {}, None, False),
               ("Basic auth only", "bench.apps:auth_only", {}, None, False)]
    targets.append(("SQLite", "app:app",
                    {"DATABASE_URL": "sqlite:///" + os.path.join(tmp, "bench.sqlite")}, "sqlite",
                    False))
    for level in args.sqlite_synchronous or []:
        # The same service with another durability level, single predictions only.
        targets.append((f"SQLite, synchronous={level.upper()}", "app:app",
                        {"DATABASE_URL": "sqlite:///" + os.path.join(tmp, f"bench-{level}.sqlite"),
                         "SQLITE_SYNCHRONOUS": level}, "sqlite", True))
    schema = None
    if not args.no_postgres and postgres_reachable(args.postgres):
        targets.append(("PostgreSQL", "app:app", {}, "postgresql", False))
        # The same service with other settings, single predictions only.
        for level in args.postgres_synchronous_commit or []:
            targets.append((f"PostgreSQL, synchronous_commit={level.lower()}", "app:app",
                            {"POSTGRES_SYNCHRONOUS_COMMIT": level}, "postgresql", True))
        for count in args.postgres_workers or []:
            targets.append((f"PostgreSQL, {count} workers", "app:app",
                            {"WEB_CONCURRENCY": str(count)}, "postgresql", True))
    # The ceiling once more at the end: the ratios divide by the mean of
    # both passes, and the report says how far the machine drifted.
    targets.append((HELLO_AGAIN, "bench.apps:hello", {}, None, False))

    rows, memory = [], {}
    # A shared machine's speed drifts by tens of per cent within minutes: a
    # ceiling measured seconds before each cell of the service gives a ratio
    # that drift cannot skew. Idle, its workers take no CPU from the others.
    paired = None
    try:
        if not args.no_paired:
            paired = Server("bench.apps:hello", base_env, ROOT, tmp, "paired_hello-world")
            paired.wait_ready("/", None, workers)
            run_wrk(paired.base, scripts["hello"], 4, 2)
        for label, app, env, database, single_only in targets:
            if database == "postgresql":
                schema = PostgresSchema(args.postgres)
                env = dict(env, DATABASE_URL=schema.url)
            env = dict(base_env, **env)
            if app == "app:app":
                make_tables(root, env)
            server = Server(app, env, root if app == "app:app" else ROOT,
                            tmp, label.replace(" ", "_").replace(",", "").replace("=", "_"))
            try:
                service = app == "app:app"
                server.wait_ready("/health" if service else "/", None if service else auth,
                                  int(env["WEB_CONCURRENCY"]))
                if single_only:
                    scenarios = [("predict, 1 text", scripts["predict1"], 1)]
                elif service:
                    scenarios = [("predict, 1 text", scripts["predict1"], 1),
                                 ("predict, 100 texts", scripts["batch100"], 100),
                                 ("feedback", None, 0)]
                elif label == HELLO_AGAIN:
                    scenarios = [("GET /", scripts["hello"], 0)]
                else:
                    # GET / as the classic ceiling, then byte for byte the
                    # requests of "predict, 1 text" (the same bodies, headers
                    # and wrk script, so the load generator costs the same).
                    scenarios = [("GET /", scripts["auth" if "auth" in label.lower() else "hello"], 0),
                                 (SAME_REQUESTS, scripts["predict1"], 0)]
                # Warm up every worker (imports, first queries, caches).
                run_wrk(server.base, scenarios[0][1], 4, 2)
                for scenario, path, texts_per_request in scenarios:
                    if path is None:
                        status, body = http(server.base, "/predictions?per_page=1", auth)
                        newest = json.loads(body)["items"][0]["id"] if status == 200 else 1
                        path = script(f"feedback-{database}-{uuid.uuid4().hex[:6]}", "POST",
                                      "/feedback", auth, feedback_ids=newest)
                    for connections in args.concurrency:
                        log(f"{label}: {scenario}, {connections} connections, {args.duration} s ...")
                        ceiling = None
                        if service and paired is not None:
                            ceiling = run_wrk(paired.base, scripts["hello"], connections,
                                              args.duration)["rps"]
                            log(f"  hello-world just before: {ceiling:,.0f} req/s")
                        result = run_wrk(server.base, path, connections, args.duration)
                        result.update(target=label, scenario=scenario, connections=connections,
                                      texts=result["rps"] * texts_per_request, paired=ceiling)
                        rows.append(result)
                        log(f"  {result['rps']:,.0f} req/s  p50 {result['p50']:.2f} ms  "
                            f"p99 {result['p99']:.2f} ms  errors {result['errors']}")
                memory[label] = server.worker_memory_mib()
            except Exception:
                # The waiting hello-world server's too: its cells run in this loop.
                for logged in filter(None, (server, paired)):
                    with open(logged.log_path) as fh:
                        log(f"--- {logged.log_path} ---\n" + fh.read()[-6000:])
                raise
            finally:
                server.stop()
                if schema is not None:
                    schema.drop()
                    schema = None
    finally:
        if paired is not None:
            paired.stop()
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log(f"kept {tmp}")

    report = format_report(rows, memory, model, workers, args, load_before, started, root)
    print(report)
    if args.output != "-":
        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(report)
        log(f"wrote {args.output}")


def format_report(rows, memory, model, workers, args, load_before, started, root):
    first = {r["connections"]: r["rps"] for r in rows
             if r["target"] == "hello-world" and r["scenario"] == "GET /"}
    again = {r["connections"]: r["rps"] for r in rows if r["target"] == HELLO_AGAIN}
    hello = {c: (rps + again[c]) / 2 if again.get(c) else rps for c, rps in first.items()}
    hello_same = {r["connections"]: r["rps"] for r in rows
                  if r["target"] == "hello-world" and r["scenario"] == SAME_REQUESTS}
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root,
                            capture_output=True, text=True).stdout.strip() or "unknown"
    if subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                      capture_output=True, text=True).stdout.strip():
        commit += " with uncommitted changes"
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load_after = os.getloadavg()
    out = [
        "# Load benchmark",
        "",
        f"`python -m bench.load` on {started:%Y-%m-%d %H:%M} UTC, commit {commit}: "
        f"**{os.cpu_count()} CPUs** ({cpu}), Python {platform.python_version()}, "
        f"gunicorn.conf.py with {workers} sync workers (where a row names no other number), "
        f"wrk on the same machine "
        f"(so it takes CPU from the server too), {args.duration} s per cell, 127.0.0.1 only. "
        f"Load average before {load_before[0]:.2f}, after {load_after[0]:.2f}.",
        "",
        "ratio = requests/s over hello-world's GET / at the same concurrency (the mean of its "
        "two passes, at the start and at the end of the run); "
        "ratio, same requests = requests/s over hello-world's when it is sent the very "
        "requests of \"predict, 1 text\" (POST /predict, the same JSON bodies and credentials, "
        "the same wrk script); ratio, paired = requests/s over hello-world's GET / in a cell "
        "run just before this one at the same concurrency, on a hello-world server waiting "
        "beside the service; latency in ms; errors = non-2xx answers, timeouts and socket errors.",
        "",
        "| target | request | conns | req/s | texts/s | ratio | ratio, paired | "
        "ratio, same requests | p50 | p95 | p99 | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    if again:
        drift = ", ".join(f"{again[c] / first[c] - 1:+.0%} at {c}" for c in sorted(again)
                          if first.get(c))
        out[-2:-2] = [f"The machine's drift over the run: hello-world's GET / at the end against "
                      f"the start, {drift}.", ""]
    for r in rows:
        ratio = r["rps"] / hello[r["connections"]] if hello.get(r["connections"]) else float("nan")
        same = ""
        if r["scenario"] in (SAME_REQUESTS, "predict, 1 text") and hello_same.get(r["connections"]):
            same = f"{r['rps'] / hello_same[r['connections']]:.2f}"
        texts = f"{r['texts']:,.0f}" if r["texts"] else ""
        paired = f"{r['rps'] / r['paired']:.2f}" if r.get("paired") else ""
        out.append(f"| {r['target']} | {r['scenario']} | {r['connections']} | {r['rps']:,.0f} | "
                   f"{texts} | {ratio:.2f} | {paired} | {same} | {r['p50']:.2f} | "
                   f"{r['p95']:.2f} | {r['p99']:.2f} | {r['errors']} |")
    out += ["", "Memory of each worker after its runs (MiB; PSS shares pages between workers fairly):", "",
            "| target | RSS per worker | PSS per worker |", "|---|---|---|"]
    for label, values in memory.items():
        out.append(f"| {label} | {', '.join(f'{rss:.0f}' for rss, _ in values)} | "
                   f"{', '.join(f'{pss:.0f}' for _, pss in values)} |")
    out += ["", "The model alone, in one process (400 corpus texts, Spanish and English):", "",
            "| path | one text, median ms | one text, p99 ms | batches of 100, texts/s |",
            "|---|---:|---:|---:|"]
    for name, numbers in model.items():
        p99 = numbers.get("one_text_p99_ms")
        batch = numbers.get("batch100_texts_per_s")
        out.append(f"| {name} | {numbers['one_text_median_ms']:.3f} | "
                   f"{'' if p99 is None else f'{p99:.3f}'} | "
                   f"{'' if batch is None else f'{batch:,.0f}'} |")
    out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    main()
