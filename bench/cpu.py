"""CPU time per request in one process, for comparing commits.

    python -m bench.cpu                   # this checkout
    python -m bench.cpu --root DIR        # another checkout (a git worktree)

Builds the app of the checkout over a temporary SQLite file and sends
requests through Flask's test client: one-text predictions, 100-text
predictions and GET /health, each timed as the best of five rounds, and the
model's own predict() for one text (median over the corpus sample). No
server and no load generator, so the numbers hardly depend on what else the
machine runs; they are what the README's "What each change did" tables use.
"""
import argparse
import json
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def best_of(function, count, rounds=5):
    """The fastest round's mean ms per call."""
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for i in range(count):
            function(i)
        best = min(best, (time.perf_counter() - start) / count * 1000)
    return best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", default=ROOT, help="the checkout to measure")
    args = parser.parse_args(argv)
    root = os.path.abspath(args.root)
    # This checkout's bench helpers; the measured checkout's app and sentiment.
    from bench.load import batch_bodies, in_process_app, median_predict_ms, sample_texts
    sys.path.insert(0, root)

    tmp = tempfile.mkdtemp(prefix="bench-cpu-")
    app, client, headers = in_process_app(f"sqlite:///{tmp}/cpu.sqlite", tmp,
                                          MODEL_PATH=os.path.join(root, "model.pkl"))
    texts = sample_texts()
    batches = batch_bodies(texts)

    def one(i):
        assert client.post("/predict", json={"text": texts[i % len(texts)]},
                           headers=headers).status_code == 200

    def batch(i):
        assert client.post("/predict", json=batches[i % len(batches)],
                           headers=headers).status_code == 200

    for i in range(300):  # warm up: imports, caches, first queries
        one(i)
    numbers = {
        "one_text_request_ms": best_of(one, 1500),
        "batch100_request_ms": best_of(batch, 60),
        "health_request_ms": best_of(lambda i: client.get("/health"), 1500),
    }
    numbers["model_one_text_median_ms"] = median_predict_ms(
        app.extensions["sentiment_model"].get(), texts, rounds=5)
    print(json.dumps({key: round(value, 4) for key, value in numbers.items()}))


if __name__ == "__main__":
    main()
