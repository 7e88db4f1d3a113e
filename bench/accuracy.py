"""Accuracy and speed of our model beside the tools a user would reach for instead.

Run from the repository root, in a venv that has requirements.txt and
requirements-bench.txt (see that file for the exact commands):

    python -m bench.accuracy            # full run, writes bench/results/accuracy.md
    python -m bench.accuracy --quick    # 200 rows per set, prints only

Data
----
* held-out: the rows `sentiment.training.split` held out when model.pkl was
  trained (seed from the model card beside the model, default 13). The split
  is checked against the card's training fingerprint; if corpus files were
  added since the model was trained, the rows are rebuilt from only the
  sources the card lists, so that no row the model trained on is scored. If
  neither matches, the run goes on and the results say "UNVERIFIED".
* out-of-domain: data/eval/ood_es.csv and data/eval/ood_en.csv, never trained on.
Every system is scored on exactly the same rows of each set.

Systems and how their output is mapped onto negative / neutral / positive
----------------------------------------------------------------------------
* ours (model.pkl): the label with the highest probability.
* VADER (vaderSentiment; English lexicon, also run on Spanish as people do):
  compound >= 0.05 positive, compound <= -0.05 negative, otherwise neutral
  (the thresholds VADER's authors recommend).
* TextBlob (default PatternAnalyzer, English lexicon, also run on Spanish):
  polarity > 0.1 positive, polarity < -0.1 negative, otherwise neutral
  (TextBlob defines no thresholds; a dead zone of 0.1 around 0 is the usual
  choice, and 0.0 exactly means no sentiment word was found).
* sentiment-analysis-spanish (Spanish only; naive Bayes, returns P(positive)
  in [0, 1]): > 0.6 positive, < 0.4 negative, otherwise neutral.
* senti-py (PyPI `spanish-sentiment-analysis`, import name `classifier`;
  Spanish only; returns a score in [0, 1], upstream reads >= 0.5 as
  positive): > 0.6 positive, < 0.4 negative, otherwise neutral.

senti-py as published does not import with current scikit-learn, numpy and
nltk. The shims below (only in this benchmark, never in the service) make it
run unchanged otherwise:
  - `sklearn.externals.joblib` (removed in scikit-learn 0.23) is aliased to
    joblib while it imports and loads its pickle, as are the private
    scikit-learn modules the pickle names (`feature_selection.univariate_selection`);
  - `IPython.display` (only used by its "funny" picture mode) is stubbed;
  - `np.infty` (removed in numpy 2) is served by a numpy proxy inside the
    senti-py module only;
  - nltk's `word_tokenize` needs the punkt data, which cannot be downloaded
    here: senti-py gets nltk's Treebank word tokenizer applied per sentence,
    sentences split on . ! ? followed by a space (close to, not the same as,
    punkt);
  - its pickled TfidfTransformer keeps idf as `_idf_diag`; `idf_` is set from it.
  A self-check then makes sure its preprocessing does not fall into its
  silent `except: tokens = ['NC']` branch.

Metrics per dataset x language x system
---------------------------------------
* pos-vs-neg accuracy: on rows whose true label is not neutral; a neutral
  answer there counts as wrong.
* macro-F1 over the three labels.
* answered neutral: share of all rows answered neutral.
* texts/s: whole set in one call where the tool takes a batch (only ours);
  otherwise a Python loop over its one-text API. Loading time is excluded.
For our model also: expected calibration error (10 equal-width bins on the
highest probability) on held-out rows per language, median in-process
latency of one text (`predict([text])` over 200 texts), time for a batch of
1,000 texts, and the size of the model file.
"""
import argparse
import contextlib
import csv
import importlib
import importlib.metadata
import json
import os
import platform
import random
import re
import statistics
import sys
import time
import types
import warnings
from datetime import datetime, timezone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from sklearn.metrics import f1_score  # noqa: E402

from sentiment import LABELS  # noqa: E402

DEFAULT_OUTPUT = os.path.join(ROOT, "bench", "results", "accuracy.md")
QUICK_ROWS = 200
LATENCY_TEXTS = 200
BATCH_TEXTS = 1000
LANGS = ("es", "en")
DATASETS = ("held-out", "out-of-domain")


class Unavailable(Exception):
    """A peer cannot be run here; the message says why."""


def three_way(value, low, high, inclusive=False):
    """negative / neutral / positive from a score and two thresholds."""
    if inclusive:
        return "positive" if value >= high else "negative" if value <= low else "neutral"
    return "positive" if value > high else "negative" if value < low else "neutral"


def dist_version(name):
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


@contextlib.contextmanager
def quiet_unpickling(record):
    """Silence scikit-learn's version warnings while loading an old pickle,
    noting which versions the pickles came from."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        m = re.search(r"unpickle estimator (\w+) from version (\S+) when using version (\S+)",
                      str(w.message))
        if m:
            record.add(f"pickled with scikit-learn {m.group(2)}, loaded under {m.group(3)}")


# --- peers -----------------------------------------------------------------

class Peer:
    name = ""
    dist = ""
    langs = ()
    mapping = ""
    batched = False

    def __init__(self):
        self.error = None
        self.load_seconds = None
        self.notes = set()

    @property
    def version(self):
        return dist_version(self.dist)

    def load(self):
        t0 = time.perf_counter()
        try:
            self._load()
        except Unavailable as exc:
            self.error = str(exc)
        except Exception as exc:  # a peer must never take the benchmark down
            self.error = f"{exc.__class__.__name__}: {exc}"
        self.load_seconds = time.perf_counter() - t0

    def labels(self, texts):
        return [self.label(t) for t in texts]


class Vader(Peer):
    name = "VADER"
    dist = "vaderSentiment"
    langs = ("es", "en")
    mapping = "compound >= 0.05 positive, <= -0.05 negative, else neutral"

    def _load(self):
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
        self.analyzer = SentimentIntensityAnalyzer()

    def label(self, text):
        return three_way(self.analyzer.polarity_scores(text)["compound"], -0.05, 0.05, inclusive=True)


class TextBlobPeer(Peer):
    name = "TextBlob"
    dist = "textblob"
    langs = ("es", "en")
    mapping = "PatternAnalyzer polarity > 0.1 positive, < -0.1 negative, else neutral"

    def _load(self):
        from textblob import TextBlob
        self.blob = TextBlob
        self.blob("warm up").sentiment  # fails here, not mid-run, if it needs data

    def label(self, text):
        return three_way(self.blob(text).sentiment.polarity, -0.1, 0.1)


class SentimentAnalysisSpanish(Peer):
    name = "sentiment-analysis-spanish"
    dist = "sentiment-analysis-spanish"
    langs = ("es",)
    mapping = "P(positive) > 0.6 positive, < 0.4 negative, else neutral"

    def _load(self):
        from sentiment_analysis_spanish import sentiment_analysis
        with quiet_unpickling(self.notes):
            self.model = sentiment_analysis.SentimentAnalysisSpanish()

    def label(self, text):
        return three_way(float(self.model.sentiment(text)), 0.4, 0.6)


class _NumpyCompat(types.ModuleType):
    """numpy as senti-py expects it: with `infty`, removed in numpy 2."""

    def __init__(self):
        import numpy
        super().__init__("numpy")
        self._np = numpy
        self.infty = numpy.inf

    def __getattr__(self, name):
        return getattr(self._np, name)


def _offline_word_tokenize(text, language="english", preserve_line=False):
    """nltk.word_tokenize without the punkt data: Treebank words per sentence."""
    from nltk.tokenize import NLTKWordTokenizer
    tokenizer = _offline_word_tokenize.__dict__.setdefault("tokenizer", NLTKWordTokenizer())
    return [tok for sentence in re.split(r"(?<=[.!?])\s+", text) if sentence
            for tok in tokenizer.tokenize(sentence)]


@contextlib.contextmanager
def _sentipy_import_shims():
    """What senti-py needs to import and unpickle its model, only for as long
    as that takes; sys.modules and nltk are put back afterwards."""
    import joblib
    import joblib.numpy_pickle
    import nltk
    import sklearn.externals

    ipython = types.ModuleType("IPython")
    display = types.ModuleType("IPython.display")
    display.Image = lambda *a, **k: None
    display.display = lambda *a, **k: None
    ipython.display = display
    aliases = {
        "sklearn.externals.joblib": joblib,
        "sklearn.externals.joblib.numpy_pickle": joblib.numpy_pickle,
        "sklearn.feature_selection.univariate_selection":
            importlib.import_module("sklearn.feature_selection._univariate_selection"),
        "IPython": ipython,
        "IPython.display": display,
    }
    saved = {name: sys.modules.get(name) for name in aliases}
    had_attr = hasattr(sklearn.externals, "joblib")
    word_tokenize = nltk.word_tokenize
    for name, module in aliases.items():
        if saved[name] is None:
            sys.modules[name] = module
    if not had_attr:
        sklearn.externals.joblib = joblib
    # Its import-time self-test calls word_tokenize and falls back to
    # nltk.download(), which must not happen: give it the offline tokenizer.
    nltk.word_tokenize = _offline_word_tokenize
    try:
        yield
    finally:
        nltk.word_tokenize = word_tokenize
        if not had_attr:
            del sklearn.externals.joblib
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)


class SentiPy(Peer):
    name = "senti-py"
    dist = "spanish-sentiment-analysis"
    langs = ("es",)
    mapping = "score > 0.6 positive, < 0.4 negative, else neutral"

    def _load(self):
        import importlib.util
        spec = importlib.util.find_spec("classifier")
        if spec is None or not spec.submodule_search_locations:
            raise Unavailable("not installed (pip install --no-deps spanish-sentiment-analysis==1.0.0)")
        where = spec.submodule_search_locations[0]
        if not os.path.isfile(os.path.join(where, "model", "sentiment_pipeline.pkl")):
            raise Unavailable(f"the `classifier` package at {where} is not senti-py")
        if "classifier" in sys.modules:
            del sys.modules["classifier"]
        with _sentipy_import_shims(), quiet_unpickling(self.notes):
            import classifier
            pipeline_module = importlib.import_module("classifier.sentimentPipeline")
            model = classifier.SentimentClassifier()
        pipeline_module.np = _NumpyCompat()
        pipeline_module.word_tokenize = _offline_word_tokenize
        tfidf = model.classifier.named_steps["v"]._tfidf
        if not hasattr(tfidf, "idf_") and hasattr(tfidf, "_idf_diag"):
            tfidf.idf_ = tfidf._idf_diag.diagonal().astype("float64")
        classes = list(model.classifier.classes_)
        if classes != [0, 1]:
            raise Unavailable(f"unexpected classes {classes} in its pipeline")
        # Its preprocessing hides every error behind `tokens = ['NC']`.
        probe = pipeline_module.process("no me gusta nada, no lo recomiendo. Es malo")
        if probe == "NC" or "not_" not in probe:
            raise Unavailable(f"compatibility shims did not take (preprocessing gave {probe!r})")
        self.model = model
        self.notes.add("run through the compatibility shims described in bench/accuracy.py "
                       "(sklearn.externals.joblib alias, IPython stub, np.infty, offline "
                       "word tokenizer instead of punkt, idf_ from _idf_diag)")

    def label(self, text):
        return three_way(float(self.model.predict(text)), 0.4, 0.6)


PEERS = (SentimentAnalysisSpanish, SentiPy, Vader, TextBlobPeer)


# --- data --------------------------------------------------------------------

def read_model_card(model_path):
    path = os.path.splitext(model_path)[0] + ".json"
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh), path
    except (OSError, ValueError):
        return {}, path


def held_out_rows(card):
    """(rows, seed, how) — how says whether the rows are verified unseen."""
    from sentiment import training

    seed = int(card.get("seed", 13))
    silent = lambda message: None  # noqa: E731
    rows = training.load_rows(report=silent)
    train_rows, test_rows = training.split(rows, seed, report=silent)
    expected = card.get("data_fingerprint")
    if expected and training.fingerprint(train_rows, seed) == expected:
        return test_rows, seed, "verified: the split reproduces the model card's training fingerprint"
    sources = set(card.get("rows", {}).get("by_source", {}))
    if expected and sources:
        raw = [r for r in training.read_builtin_corpora() if r.source in sources]
        kept, _ = training.deduplicate(raw)
        train2, test2 = training.split(kept, seed, report=silent)
        if training.fingerprint(train2, seed) == expected:
            ignored = sorted({r.source for r in rows} - sources)
            return test2, seed, ("verified: rebuilt from the sources the model card lists, which "
                                 "reproduces its training fingerprint"
                                 + (f"; corpus files added since ({', '.join(ignored)}) are left out"
                                    if ignored else ""))
    return test_rows, seed, ("UNVERIFIED: the split does not reproduce the model card's training "
                             "fingerprint, so some held-out rows may have trained the model")


def ood_rows(lang):
    path = os.path.join(ROOT, "data", "eval", f"ood_{lang}.csv")
    with open(path, newline="", encoding="utf-8") as fh:
        return [(r["text"].strip(), r["label"].strip().lower())
                for r in csv.DictReader(fh) if (r.get("text") or "").strip()]


def limit(pairs, n):
    """At most n pairs, a fixed random sample kept in file order (some files
    are sorted by label)."""
    if n is None or len(pairs) <= n:
        return pairs
    keep = sorted(random.Random(0).sample(range(len(pairs)), n))
    return [pairs[i] for i in keep]


# --- metrics -----------------------------------------------------------------

def score(truth, guess):
    polar = [(t, g) for t, g in zip(truth, guess) if t != "neutral"]
    return {
        "polar_accuracy": sum(t == g for t, g in polar) / len(polar) if polar else None,
        "macro_f1": f1_score(truth, guess, labels=list(LABELS), average="macro", zero_division=0),
        "neutral_share": sum(g == "neutral" for g in guess) / len(guess) if guess else None,
    }


def expected_calibration_error(truth, guess, confidence, bins=10):
    n = len(truth)
    total = 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        members = [i for i, c in enumerate(confidence)
                   if (lo < c <= hi) or (b == 0 and c == lo)]
        if not members:
            continue
        acc = sum(truth[i] == guess[i] for i in members) / len(members)
        conf = sum(confidence[i] for i in members) / len(members)
        total += len(members) / n * abs(acc - conf)
    return total


def timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


# --- report ------------------------------------------------------------------

def pct(x):
    return "—" if x is None else f"{100 * x:.1f}%"


def table(headers, rows, align=None):
    align = align or ["l"] * len(headers)
    out = ["| " + " | ".join(headers) + " |",
           "| " + " | ".join("---:" if a == "r" else "---" for a in align) + " |"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.accuracy", description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=os.path.join(ROOT, "model.pkl"), help="model file (default model.pkl)")
    parser.add_argument("--quick", action="store_true",
                        help=f"at most {QUICK_ROWS} rows per set; prints only, unless --output is given")
    parser.add_argument("--output", help=f"Markdown file to write (default {os.path.relpath(DEFAULT_OUTPUT, ROOT)} "
                                         "on a full run)")
    args = parser.parse_args(argv)
    output = args.output or (None if args.quick else DEFAULT_OUTPUT)
    cap = QUICK_ROWS if args.quick else None
    started = time.perf_counter()

    from sentiment.model import SentimentModel
    model = SentimentModel.load(args.model)
    card, card_path = read_model_card(args.model)
    if card and card.get("version") != model.version:
        card = {}  # the card belongs to another model: its seed and fingerprint mean nothing here

    print("reading data ...", file=sys.stderr, flush=True)
    held, seed, held_how = held_out_rows(card)
    sets = {}
    for lang in LANGS:
        sets[("held-out", lang)] = limit([(r.text, r.label) for r in held if r.lang == lang], cap)
        sets[("out-of-domain", lang)] = limit(ood_rows(lang), cap)

    print("loading peers ...", file=sys.stderr, flush=True)
    peers = [cls() for cls in PEERS]
    for p in peers:
        p.load()
        status = "unavailable: " + p.error if p.error else f"loaded in {p.load_seconds:.1f}s"
        print(f"  {p.name}: {status}", file=sys.stderr, flush=True)

    model.predict(["warm up", "calentamiento"])
    results = []  # (dataset, lang, system, n, metrics or error, texts/s)
    ece = {}
    for (dataset, lang), pairs in sets.items():
        texts = [t for t, _ in pairs]
        truth = [l for _, l in pairs]
        print(f"scoring {dataset}/{lang} ({len(pairs)} rows) ...", file=sys.stderr, flush=True)
        predicted, seconds = timed(model.predict, texts)
        guess = [label for label, _, _ in predicted]
        results.append((dataset, lang, "ours (model.pkl)", len(pairs), score(truth, guess),
                        len(texts) / seconds))
        if dataset == "held-out" and pairs:
            ece[lang] = expected_calibration_error(truth, guess, [max(p.values()) for _, _, p in predicted])
        for p in peers:
            if lang not in p.langs:
                continue
            if p.error:
                results.append((dataset, lang, p.name, len(pairs), "unavailable: " + p.error, None))
                continue
            try:
                guess, seconds = timed(p.labels, texts)
            except Exception as exc:
                results.append((dataset, lang, p.name, len(pairs),
                                f"unavailable: failed while predicting ({exc.__class__.__name__}: {exc})", None))
                continue
            results.append((dataset, lang, p.name, len(pairs), score(truth, guess), len(texts) / seconds))

    # Our model's speed in process.
    pool = [t for lang in LANGS for t, _ in sets[("held-out", lang)]]
    rng = random.Random(1)
    latency_texts = rng.sample(pool, min(LATENCY_TEXTS, len(pool)))
    latencies = []
    for t in latency_texts:
        _, s = timed(model.predict, [t])
        latencies.append(s)
    batch = [pool[i % len(pool)] for i in range(BATCH_TEXTS)] if pool else []
    batch_seconds = statistics.median(timed(model.predict, batch)[1] for _ in range(3)) if batch else None
    size_mb = os.path.getsize(args.model) / 1e6

    # --- render
    main_rows = []
    for dataset, lang, system, n, m, tps in results:
        if isinstance(m, str):
            reason = m if len(m) <= 90 else m[:87] + "..."
            main_rows.append((dataset, lang, system, n, reason, "", "", ""))
        else:
            main_rows.append((dataset, lang, system, n, pct(m["polar_accuracy"]), f"{m['macro_f1']:.3f}",
                              pct(m["neutral_share"]), f"{tps:,.0f}"))
    main_table = table(["Dataset", "Lang", "System", "Rows", "Pos-vs-neg accuracy", "Macro-F1",
                        "Answered neutral", "Texts/s"], main_rows, ["l", "l", "l", "r", "r", "r", "r", "r"])

    ours_rows = [(f"ECE on held-out, {lang} (10 bins, max probability)", f"{ece[lang]:.3f}")
                 for lang in LANGS if lang in ece]
    if latencies:
        ours_rows.append((f"median latency of one text, in process ({len(latencies)} texts)",
                          f"{statistics.median(latencies) * 1000:.2f} ms"))
        ours_rows.append(("95th percentile latency of one text",
                          f"{sorted(latencies)[int(0.95 * (len(latencies) - 1))] * 1000:.2f} ms"))
    if batch_seconds is not None:
        ours_rows.append((f"batch of {BATCH_TEXTS:,} texts (median of 3)",
                          f"{batch_seconds:.2f} s ({BATCH_TEXTS / batch_seconds:,.0f} texts/s)"))
    ours_rows.append(("model file size", f"{size_mb:.1f} MB ({os.path.getsize(args.model):,} bytes)"))
    ours_table = table(["Our model", "Value"], ours_rows, ["l", "r"])

    count_rows = []
    for (dataset, lang), pairs in sets.items():
        c = {l: sum(1 for _, t in pairs if t == l) for l in LABELS}
        count_rows.append((dataset, lang, len(pairs), *(c[l] for l in LABELS)))
    count_table = table(["Dataset", "Lang", "Rows", *LABELS], count_rows, ["l", "l", "r", "r", "r", "r"])

    peer_rows = [("ours (model.pkl)", f"model {model.version}, scikit-learn {dist_version('scikit-learn')}",
                  "es, en", "highest probability")]
    for p in peers:
        peer_rows.append((p.name, (f"{p.dist} {p.version}" if p.version else f"{p.dist} not installed"),
                          ", ".join(p.langs), p.mapping))
    peer_table = table(["System", "Package / version", "Languages", "Label mapping"], peer_rows)

    notes = []
    for p in peers:
        if p.error:
            notes.append(f"- **{p.name}** left out: unavailable: {p.error}")
        else:
            extra = "; ".join(sorted(p.notes))
            notes.append(f"- **{p.name}**: loaded in {p.load_seconds:.1f}s" + (f"; {extra}" if extra else ""))

    elapsed = time.perf_counter() - started
    title = "Accuracy benchmark" + (f" — QUICK smoke run ({QUICK_ROWS} rows per set, not reference numbers)"
                                    if args.quick else "")
    doc = f"""# {title}

Generated by `python -m bench.accuracy{' --quick' if args.quick else ''}` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC in {elapsed:.0f}s.

- Model: `{os.path.relpath(args.model, ROOT)}`, version {model.version}, {size_mb:.1f} MB.
- Held-out rows: seed {seed} from `{os.path.relpath(card_path, ROOT)}`; {held_how}.
- Out-of-domain rows: `data/eval/ood_es.csv`, `data/eval/ood_en.csv` (never trained on).
- Machine: {os.cpu_count()} CPUs ({cpu_model()}), Python {platform.python_version()}, {platform.system()} {platform.machine()}; numpy {dist_version('numpy')}, scikit-learn {dist_version('scikit-learn')}.
- Every system is scored on the same rows. Pos-vs-neg accuracy is over rows whose true label is not neutral (a neutral answer there is wrong); macro-F1 is over the three labels; texts/s excludes loading: ours is one batch call, the peers have a one-text API and run in a Python loop.

## Results

{main_table}

## Our model: calibration and speed

{ours_table}

## Rows (true labels)

{count_table}

## Systems, versions and label mappings

{peer_table}

{chr(10).join(notes)}
"""
    print()
    print(doc)
    if output:
        os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
        with open(output, "w", encoding="utf-8") as fh:
            fh.write(doc)
        print(f"wrote {os.path.relpath(output, ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
