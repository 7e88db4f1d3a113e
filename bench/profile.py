"""Where the time of one predict request goes, with pyinstrument.

    python -m bench.profile                  # 500 one-text requests, SQLite
    python -m bench.profile --batch          # 100-text requests instead
    python -m bench.profile --database postgresql://postgres@127.0.0.1:5432/test
    python -m bench.profile --html profile.html

Builds the app over a temporary SQLite file (or a throw-away PostgreSQL
schema), sends POST /predict through Flask's test client under pyinstrument
and prints the call tree and, per part of the request, its share of the time
spent inside Flask's wsgi_app (the test client's own work is left out):
authentication, reading and checking the body, the model, the database,
building the JSON answer, and the rest (Flask and Werkzeug themselves).
pyinstrument comes from requirements-load.txt.
"""
import argparse
import os
import sys
import tempfile
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (part, function name, a piece of the file path): the first frame on the way
# down from wsgi_app that matches is counted whole for that part.
PARTS = [
    ("authentication", "require", "sentiment/auth.py"),
    ("authentication", "authenticate", "sentiment/auth.py"),
    ("request body and checks", "json_body", "sentiment/api.py"),
    ("request body and checks", "check_text", "sentiment/service.py"),
    ("request body and checks", "check_texts", "sentiment/service.py"),
    ("model", "current_model", "sentiment/service.py"),
    ("model", "predict", "sentiment/model.py"),
    # What predict_and_store calls since the twelfth round (8049be2).
    ("model", "predict_rows", "sentiment/model.py"),
    # Predictions are stored by _Inserts.store (the driver's own INSERT), not
    # the session; the whole call is the database's time.
    ("database", "store", "sentiment/service.py"),
    ("database", "execute", "sqlalchemy/orm/scoping.py"),
    ("database", "commit", "sqlalchemy/orm/scoping.py"),
    ("database", "execute", "sqlalchemy/orm/session.py"),
    ("database", "commit", "sqlalchemy/orm/session.py"),
    ("database", "do_teardown_appcontext", "flask/app.py"),
    ("JSON answer", "jsonify", "flask/json/__init__.py"),
    ("JSON answer", "to_dict", "sentiment/"),
]
ORDER = ["authentication", "request body and checks", "model", "database", "JSON answer",
         "Flask and Werkzeug"]


def classify(frame):
    for part, function, path in PARTS:
        if frame.function == function and path in (frame.file_path or "").replace(os.sep, "/"):
            return part
    return None


def attribute(frame, totals):
    part = classify(frame)
    if part is not None:
        totals[part] = totals.get(part, 0.0) + frame.time
        return frame.time
    counted = sum(attribute(child, totals) for child in frame.children)
    return counted


def find(frame, function, path):
    if frame.function == function and path in (frame.file_path or ""):
        yield frame
        return
    for child in frame.children:
        yield from find(child, function, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--batch", action="store_true", help="100 texts per request")
    parser.add_argument("--database", default=None, help="a PostgreSQL URL (default: SQLite)")
    parser.add_argument("--html", default=None, help="also write pyinstrument's HTML here")
    args = parser.parse_args(argv)
    try:
        from pyinstrument import Profiler
    except ImportError:
        raise SystemExit("pyinstrument is missing: pip install -r requirements-load.txt")

    sys.path.insert(0, ROOT)
    import sqlalchemy

    from bench.load import batch_bodies, in_process_app, sample_texts
    from sentiment.config import database_url

    tmp = tempfile.mkdtemp(prefix="bench-profile-")
    url = f"sqlite:///{tmp}/profile.sqlite"
    engine = schema = None
    if args.database:
        engine = sqlalchemy.create_engine(database_url(args.database, tmp))
        schema = "profile_" + uuid.uuid4().hex[:12]
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text(f"CREATE SCHEMA {schema}"))
        url = f"{args.database}{'&' if '?' in args.database else '?'}options=-csearch_path%3D{schema}"
    try:
        _, client, headers = in_process_app(url, tmp)
        texts = sample_texts()
        if args.batch:
            bodies = batch_bodies(texts)
        else:
            bodies = [{"text": text} for text in texts]
        for body in bodies[:20]:  # warm up: first queries, caches
            client.post("/predict", json=body, headers=headers)
        profiler = Profiler(interval=0.0002)
        profiler.start()
        for i in range(args.requests):
            response = client.post("/predict", json=bodies[i % len(bodies)], headers=headers)
            assert response.status_code == 200, response.get_json()
        profiler.stop()
    finally:
        if engine is not None:
            with engine.begin() as conn:
                conn.execute(sqlalchemy.text(f"DROP SCHEMA {schema} CASCADE"))
            engine.dispose()

    print(profiler.output_text(unicode=True, color=False, show_all=False))
    if args.html:
        with open(args.html, "w") as fh:
            fh.write(profiler.output_html())
    root = profiler.last_session.root_frame()
    apps = list(find(root, "wsgi_app", "flask/app.py"))
    total = sum(frame.time for frame in apps)
    totals = {}
    for frame in apps:
        counted = attribute(frame, totals)
        totals["Flask and Werkzeug"] = totals.get("Flask and Werkzeug", 0.0) + frame.time - counted
    kind = "100-text" if args.batch else "one-text"
    print(f"\nInside Flask's wsgi_app, per {kind} request "
          f"({args.requests} requests, {'PostgreSQL' if args.database else 'SQLite'}):")
    for part in ORDER:
        seconds = totals.get(part, 0.0)
        print(f"  {part:26s} {seconds / args.requests * 1000:7.3f} ms  {seconds / total:6.1%}")
    print(f"  {'total':26s} {total / args.requests * 1000:7.3f} ms")


if __name__ == "__main__":
    main()
