"""The lean inference path gives the same probabilities as scikit-learn."""
import logging
import pickle

import numpy as np
import pytest
from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.pipeline import FeatureUnion, Pipeline

from helpers import TINY_CORPUS, corpus_texts, missing
from sentiment import model as model_module
from sentiment.model import CHECK_TEXTS, FastPath, SentimentModel, UnsupportedPipeline
from sentiment.text import WordFeatures, normalize

word_features = WordFeatures()

EDGE_TEXTS = [
    "", " ", "\t\n", ".", "!!!", "¿?", "😀", "🤷‍♂️", "💩💩💩💩", "🙂 🙁", ":) :( <3 xD",
    "ñ", "ÑANDÚ", "über straße", "日本語のテキスト", "текст", "x" * 5000, "ja" * 2500,
    "NO NO NO NO", "no está nada mal", "not good, not bad", "https://x.y/z @someone",
    "Me encantó 😍 pero llegó tarde 😡", "I can't believe it's not butter!!!",
    "zzqxj vvkkw pfft", "12:30 3.5 €100 50%",
]


@pytest.fixture(scope="module")
def shipped(shipped_model):
    with open(shipped_model, "rb") as fh:
        header = pickle.load(fh)
        body = pickle.load(fh)
    return header, body["pipeline"]


def tiny_rows(labels=("positive", "negative", "neutral")):
    rows = [line.split(",") for line in TINY_CORPUS.strip().splitlines()[1:]]
    return [r[0] for r in rows if r[1] in labels], [r[1] for r in rows if r[1] in labels]


def test_shipped_model_uses_the_fast_path(shipped):
    header, pipeline = shipped
    assert SentimentModel(header, pipeline, {}).fast is not None


def test_fast_path_matches_predict_proba_on_many_texts(shipped):
    _, pipeline = shipped
    texts = corpus_texts() + EDGE_TEXTS + list(CHECK_TEXTS)
    assert len(texts) > 2000
    fast = FastPath(pipeline)
    expected = pipeline.predict_proba(texts)
    batch = fast.predict_proba(texts)
    assert batch.shape == expected.shape
    # Not merely close: the same additions in the same order and dtype.
    np.testing.assert_array_equal(batch, expected)
    # One text at a time takes the other way through the fast path.
    for text, row in list(zip(texts, expected))[::5]:
        np.testing.assert_allclose(fast.predict_proba([text])[0], row, rtol=0, atol=1e-6)
    # Small batches too, with texts that have no known feature among them.
    for start in range(0, 60, 3):
        chunk = EDGE_TEXTS[start % len(EDGE_TEXTS):][:3] + texts[start:start + 1]
        np.testing.assert_allclose(fast.predict_proba(chunk), pipeline.predict_proba(chunk),
                                   rtol=0, atol=1e-6)


def test_predict_answers_are_unchanged(shipped):
    """The service's answers (label, score, probabilities) with and without it."""
    header, pipeline = shipped
    texts = corpus_texts(60) + EDGE_TEXTS
    fast = SentimentModel(header, pipeline, {"me encanta": "negative"})
    slow = SentimentModel(header, pipeline, {"me encanta": "negative"}, fast=False)
    assert fast.fast is not None and slow.fast is None
    for (label_a, score_a, probs_a), (label_b, score_b, probs_b) in zip(
            fast.predict(texts + ["Me encanta"]), slow.predict(texts + ["Me encanta"])):
        assert label_a == label_b
        assert score_a == pytest.approx(score_b, abs=1e-6)
        assert probs_a == pytest.approx(probs_b, abs=1e-6)
    assert fast.predict(["Me encanta"])[0][0] == "negative"


@pytest.mark.parametrize("features", [
    # another word analyzer, l1 norm, binary counts, float64, no idf smoothing
    lambda: TfidfVectorizer(ngram_range=(1, 2), norm="l1", binary=True, smooth_idf=False),
    # a single vectorizer with a callable analyzer, no norm, no idf
    lambda: TfidfVectorizer(analyzer=word_features, norm=None, use_idf=False),
    # an analyzer that hands back a generator, not a list
    lambda: TfidfVectorizer(analyzer=lambda text: (word for word in text.lower().split())),
    # a union of three, as the lead may grow the features
    lambda: FeatureUnion([
        ("w", TfidfVectorizer(analyzer=word_features, sublinear_tf=True, dtype=np.float32)),
        ("c", TfidfVectorizer(preprocessor=normalize, analyzer="char", ngram_range=(1, 3),
                              sublinear_tf=True, dtype=np.float32)),
        ("cw", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), max_features=200)),
    ]),
])
@pytest.mark.parametrize("labels", [("positive", "negative", "neutral"), ("positive", "negative")])
def test_fast_path_is_generic(features, labels):
    texts, y = tiny_rows(labels)
    pipeline = Pipeline([("features", features()), ("clf", LogisticRegression(C=10.0))])
    pipeline.fit(texts, y)
    probe = texts + EDGE_TEXTS + list(CHECK_TEXTS)
    expected = pipeline.predict_proba(probe)
    fast = FastPath(pipeline)
    np.testing.assert_allclose(fast.predict_proba(probe), expected, rtol=0, atol=1e-6)
    singles = np.vstack([fast.predict_proba([text]) for text in probe])
    np.testing.assert_allclose(singles, expected, rtol=0, atol=1e-6)


def test_vectorizers_weighed_alike_share_one_batch_path():
    """Three vectorizers with the same weighting go through the batch path
    that sorts all their columns at once; every block of a row keeps its own
    norm, and the answers are scikit-learn's to the last bit."""
    texts, y = tiny_rows()
    pipeline = Pipeline([
        ("features", FeatureUnion([
            ("w", TfidfVectorizer(analyzer=word_features, sublinear_tf=True)),
            ("c", TfidfVectorizer(preprocessor=normalize, analyzer="char", ngram_range=(1, 3),
                                  sublinear_tf=True)),
            ("cw", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), max_features=200,
                                   sublinear_tf=True)),
        ])),
        ("clf", LogisticRegression(C=10.0)),
    ])
    pipeline.fit(texts, y)
    fast = FastPath(pipeline)
    assert fast.joint is not None
    probe = texts + EDGE_TEXTS + list(CHECK_TEXTS)
    np.testing.assert_array_equal(fast.predict_proba(probe, one_by_one=False),
                                  pipeline.predict_proba(probe))


@pytest.mark.parametrize("pipeline", [
    lambda: Pipeline([("f", TfidfVectorizer()), ("clf", SGDClassifier(loss="log_loss"))]),
    lambda: Pipeline([("f", CountVectorizer()), ("clf", LogisticRegression())]),
    lambda: Pipeline([("f", FeatureUnion([("a", TfidfVectorizer()), ("b", TfidfVectorizer())],
                                         transformer_weights={"a": 2.0, "b": 1.0})),
                      ("clf", LogisticRegression())]),
    lambda: Pipeline([("f", CountVectorizer()), ("g", TfidfTransformer()),
                      ("clf", LogisticRegression())]),
])
def test_unknown_steps_fall_back_to_sklearn(pipeline, caplog):
    pipeline = pipeline()
    texts, y = tiny_rows()
    pipeline.fit(texts, y)
    with pytest.raises(UnsupportedPipeline):
        FastPath(pipeline)
    with caplog.at_level(logging.WARNING, logger="sentiment.model"):
        model = SentimentModel({"version": "t"}, pipeline, {})
    assert model.fast is None
    assert "using scikit-learn's predict_proba" in caplog.text
    assert model.predict(["me encanta"])[0][0] in ("negative", "neutral", "positive")


def test_a_fast_path_that_differs_is_not_used(shipped, monkeypatch, caplog):
    header, pipeline = shipped
    original = FastPath.predict_proba

    def off_by_a_little(self, texts, one_by_one=None, normalized=None):
        return original(self, texts, one_by_one, normalized) + 2e-6

    monkeypatch.setattr(FastPath, "predict_proba", off_by_a_little)
    with caplog.at_level(logging.WARNING, logger="sentiment.model"):
        model = SentimentModel(header, pipeline, {})
    assert model.fast is None
    assert "differs by" in caplog.text
    expected = pipeline.predict_proba(["me encanta"])[0]
    assert model.predict(["me encanta"])[0][2]["positive"] == pytest.approx(
        float(expected[list(pipeline.classes_).index("positive")]), abs=0)


# --- the arithmetic in C (sentiment/_decision.c) ------------------------------

@pytest.fixture
def compiled():
    """The C function, or a skip (a failure under CI) when it was not built."""
    if model_module._compiled_decision is None:
        missing("sentiment/_decision.c is not built (pip install -e .)")
    return model_module._compiled_decision


needs_compiled = pytest.mark.usefixtures("compiled")


@needs_compiled
def test_the_shipped_model_uses_the_compiled_arithmetic(shipped):
    """Built by the README's install (under CI a missing build fails), and
    the same numbers to the last bit as the numpy way and as scikit-learn,
    in batches and one text at a time."""
    _, pipeline = shipped
    fast = FastPath(pipeline)
    assert fast.compiled is not None
    texts = corpus_texts(150) + EDGE_TEXTS + list(CHECK_TEXTS)
    compiled_batch = fast.predict_proba(texts, one_by_one=False)
    compiled_singles = np.vstack([fast.predict_proba([text]) for text in texts])
    fast.compiled = None
    np.testing.assert_array_equal(compiled_batch, fast.predict_proba(texts, one_by_one=False))
    np.testing.assert_array_equal(compiled_singles,
                                  np.vstack([fast.predict_proba([text]) for text in texts]))
    np.testing.assert_array_equal(compiled_batch, pipeline.predict_proba(texts))


@needs_compiled
def test_a_feature_counted_beyond_the_table_goes_through_numpy(shipped):
    _, pipeline = shipped
    fast = FastPath(pipeline)
    texts = ["ja " * (model_module._WEIGHTED_COUNTS + 10), "me encanta"]
    rows, found = fast.vectorizers[1].found(texts, [None, None])
    # The premise: one character n-gram of the first text is counted more
    # often than the compiled table goes.
    assert np.bincount(found[rows == 0]).max() >= model_module._WEIGHTED_COUNTS
    assert fast._compiled_scores(None, np.zeros(0, dtype=np.int64), 1) is not None
    np.testing.assert_array_equal(fast.predict_proba(texts, one_by_one=False),
                                  pipeline.predict_proba(texts))
    np.testing.assert_array_equal(fast.predict_proba(texts[:1]),
                                  pipeline.predict_proba(texts[:1]))


@needs_compiled
@pytest.mark.parametrize("coef_dtype", [np.float32, np.float64])
def test_compiled_arithmetic_in_either_coefficient_type(coef_dtype):
    """float32 coefficients (what training gives) add in float32; float64
    ones in float64, as scipy's product does."""
    texts, y = tiny_rows()
    pipeline = Pipeline([
        ("features", FeatureUnion([
            ("w", TfidfVectorizer(analyzer=word_features, sublinear_tf=True, dtype=np.float32)),
            ("c", TfidfVectorizer(preprocessor=normalize, analyzer="char_wb", ngram_range=(2, 4),
                                  sublinear_tf=True, dtype=np.float32)),
        ])),
        ("clf", LogisticRegression(C=10.0)),
    ])
    pipeline.fit(texts, y)
    clf = pipeline.steps[-1][1]
    clf.coef_ = clf.coef_.astype(coef_dtype)
    clf.intercept_ = clf.intercept_.astype(coef_dtype)
    fast = FastPath(pipeline)
    assert fast.compiled is not None and fast.compiled["coef"].dtype == coef_dtype
    probe = texts + EDGE_TEXTS + list(CHECK_TEXTS)
    expected = pipeline.predict_proba(probe)
    assert expected.dtype == coef_dtype
    np.testing.assert_array_equal(fast.predict_proba(probe, one_by_one=False), expected)
    # One text at a time, through the compiled arithmetic too, the same bits.
    singles = np.vstack([fast.predict_proba([text]) for text in probe])
    np.testing.assert_array_equal(singles, expected)


@needs_compiled
def test_compiled_counts_of_many_columns():
    """Thousands of columns in one row, in any order (sorted, reversed, all
    equal, organ pipe, random): every count still right."""
    width, k = 5000, 3
    rng = np.random.default_rng(7)
    coef = rng.standard_normal((width, k))
    intercept = np.zeros(k)
    weights = np.arange(model_module._WEIGHTED_COUNTS, dtype=np.float32)
    starts = np.zeros(0, dtype=np.int64)
    ramp = np.arange(width, dtype=np.int64)
    orders = [ramp, ramp[::-1].copy(), np.full(4000, 17, dtype=np.int64),
              np.concatenate([ramp[::2], ramp[1::2][::-1]]), rng.integers(0, 300, 4000)]
    for columns in orders:
        out = np.empty((1, k))
        assert model_module._compiled_decision(None, columns, 1, weights, None, starts, coef,
                                               intercept, out) is True
        found, counts = np.unique(columns, return_counts=True)
        values = counts.astype(np.float32)
        values = (values / np.sqrt(np.add.accumulate((values * values).astype(np.float64))[-1])
                  ).astype(np.float32)
        expected = np.add.accumulate(coef[found] * values.astype(np.float64)[:, None])[-1]
        np.testing.assert_array_equal(out[0], expected)


@needs_compiled
def test_compiled_counts_start_from_zero_after_a_refused_row():
    """The counts live between calls: a row refused halfway (a count past
    the table) must leave none behind for the next call's rows."""
    width, k = 300, 2
    coef = np.random.default_rng(3).standard_normal((width, k))
    intercept = np.zeros(k)
    starts = np.zeros(0, dtype=np.int64)
    weights = np.arange(8, dtype=np.float32)
    decision = model_module._compiled_decision

    def scores(rows, columns, n_rows, weights=weights):
        out = np.empty((n_rows, k))
        done = decision(rows, np.array(columns, dtype=np.int64), n_rows, weights, None, starts,
                        coef, intercept, out)
        return out if done else None

    clean = scores(None, [5, 9, 9, 260], 1)
    # Row 1 counts column 9 eight times: refused after row 0 was done.
    assert scores(np.array([0, 0, 1, 1, 1] + [1] * 8, dtype=np.int64),
                  [5, 260, 5, 260, 299] + [9] * 8, 2) is None
    assert scores(None, [260] + [7] * 8 + [5], 1) is None
    np.testing.assert_array_equal(scores(None, [260, 9, 5, 9], 1), clean)
    # A table too short for any count refuses every row, reading nothing.
    assert scores(None, [5], 1, weights[:1]) is None
    assert scores(None, [5], 1, weights[:0]) is None
    np.testing.assert_array_equal(scores(None, [9, 5, 260, 9], 1), clean)


@needs_compiled
def test_compiled_arithmetic_refuses_what_would_read_out_of_bounds(shipped):
    _, pipeline = shipped
    settings = FastPath(pipeline).compiled
    decision = settings["function"]
    fixed = (settings["weights"], settings["idf"], settings["starts"], settings["coef"],
             settings["intercept"])
    out = np.empty((1, settings["coef"].shape[1]), dtype=settings["coef"].dtype)
    width = settings["coef"].shape[0]
    with pytest.raises(ValueError, match="out of range"):
        decision(None, np.array([width], dtype=np.int64), 1, *fixed, out)
    with pytest.raises(ValueError, match="out of range"):
        decision(None, np.array([-1], dtype=np.int64), 1, *fixed, out)
    with pytest.raises(ValueError, match="out of range"):
        decision(np.array([1], dtype=np.int64), np.array([0], dtype=np.int64), 1, *fixed, out)
    with pytest.raises(TypeError, match="wrong item type"):
        decision(None, np.array([0], dtype=np.int32), 1, *fixed, out)
    with pytest.raises(ValueError, match="sizes disagree"):
        decision(None, np.array([0], dtype=np.int64), 2, *fixed, out)
    assert decision(None, np.array([0, 0, 5], dtype=np.int64), 1, *fixed, out) is True


@needs_compiled
def test_compiled_blocks_give_what_decision_gives():
    """decision_of_blocks (each vectorizer's columns and counts as bytes,
    and its offset) scores rows as decision() scores the same columns given
    with their rows: empty rows, empty blocks and repeats included."""
    width, k, n_rows = 700, 3, 9
    rng = np.random.default_rng(5)
    coef = rng.standard_normal((width, k)).astype(np.float32)
    intercept = rng.standard_normal(k).astype(np.float32)
    weights = np.arange(model_module._WEIGHTED_COUNTS, dtype=np.float32)
    idf = rng.uniform(1, 5, width).astype(np.float32)
    starts = np.array([300], dtype=np.int64)
    blocks, rows, columns = [], [], []
    for offset, block_width in ((0, 300), (300, 400)):
        counts = rng.integers(0, 40, n_rows)
        counts[[2, 5]] = 0
        found = rng.integers(0, block_width, counts.sum())
        blocks.append((found.astype(np.int64).tobytes(), counts.astype(np.int64).tobytes(),
                       offset))
        rows.append(np.repeat(np.arange(n_rows), counts))
        columns.append(found + offset)
    blocks.append((b"", np.zeros(n_rows, dtype=np.int64).tobytes(), 0))
    fixed = (weights, idf, starts, coef, intercept)
    expected, got = np.empty((n_rows, k), np.float32), np.empty((n_rows, k), np.float32)
    assert model_module._compiled_decision(
        np.concatenate(rows).astype(np.int64), np.concatenate(columns).astype(np.int64),
        n_rows, *fixed, expected) is True
    assert model_module._compiled_decision_of_blocks(blocks, n_rows, *fixed, got) is True
    np.testing.assert_array_equal(got, expected)
    assert (got[2] == intercept).all()
    # The idf packed into the coefficients' rows: the very same scores.
    packed = np.ascontiguousarray(np.hstack([idf[:, None], coef]))
    got[:] = 0
    assert model_module._compiled_decision_of_blocks(
        blocks, n_rows, weights, None, starts, packed, intercept, got, True) is True
    np.testing.assert_array_equal(got, expected)
    with pytest.raises(ValueError, match="idf must be None"):
        model_module._compiled_decision_of_blocks(
            blocks, n_rows, weights, idf, starts, packed, intercept, got, True)
    with pytest.raises(TypeError, match="float32"):
        model_module._compiled_decision_of_blocks(
            blocks, n_rows, weights, None, starts, packed.astype(np.float64),
            intercept.astype(np.float64), got.astype(np.float64), True)
    with pytest.raises(ValueError, match="disagree"):  # not rows of k + 1 values
        model_module._compiled_decision_of_blocks(
            blocks, n_rows, weights, None, starts, np.zeros(width * (k + 1) + 1, np.float32),
            intercept, got, True)


@needs_compiled
def test_compiled_blocks_refuse_what_would_read_out_of_bounds():
    width, k = 50, 2
    fixed = (np.arange(8, dtype=np.float32), None, np.zeros(0, dtype=np.int64),
             np.ones((width, k)), np.zeros(k))
    of_blocks = model_module._compiled_decision_of_blocks
    out = np.empty((2, k))

    def block(columns, counts, offset=0):
        return (np.array(columns, dtype=np.int64).tobytes(),
                np.array(counts, dtype=np.int64).tobytes(), offset)

    assert of_blocks([block([1, 2, 49], [2, 1])], 2, *fixed, out) is True
    assert of_blocks([block([1] * 9, [9, 0])], 2, *fixed, out) is False  # past the weights
    for blocks, error in [
            ([block([50], [1, 0])], "out of range"),
            ([block([-1], [1, 0])], "out of range"),
            ([block([9], [1, 0], 41)], "out of range"),
            ([block([9], [1, 0], -10)], "out of range"),
            ([block([1, 2], [1, 0])], "counts disagree"),
            ([block([1], [2, -1])], "counts disagree"),
            ([block([1], [1])], "sizes disagree"),
            ([(b"1234567", np.zeros(2, dtype=np.int64).tobytes(), 0)], "sizes disagree")]:
        with pytest.raises(ValueError, match=error):
            of_blocks(blocks, 2, *fixed, out)
    for blocks in [[block([1], [1, 0])[:2]], [list(block([1], [1, 0]))],
                   [(np.array([1]), np.array([1, 0]), 0)], [block([1], [1, 0], "0")]]:
        with pytest.raises(TypeError):
            of_blocks(blocks, 2, *fixed, out)
    with pytest.raises(ValueError, match="sizes disagree"):
        of_blocks([], 3, *fixed, out)


# --- the word features in C (sentiment/_words.c) -------------------------------

@pytest.fixture
def compiled_words():
    """The C function, or a skip (a failure under CI) when it was not built."""
    if model_module._compiled_word_columns is None:
        missing("sentiment/_words.c is not built (pip install -e .)")
    return model_module._compiled_word_columns


def _python_columns(vectorizer, texts):
    """Each normalised text's word-feature columns the Python way, sorted."""
    analyzer = vectorizer.from_normalized.__self__
    return [sorted(j for j in map(vectorizer.vocabulary.get, analyzer.from_normalized(text))
                   if j is not None) for text in texts]


def _compiled_columns(vectorizer, texts):
    columns, counts = vectorizer._compiled_columns(texts, texts)
    ends = np.cumsum(counts)
    return [sorted(columns[end - count:end].tolist()) for end, count in zip(ends, counts)]


def _fuzz_texts(count, seed):
    """Texts made to catch a tokeniser out: words of the negation, contrast
    and scope sets, apostrophes in and around words, every punctuation mark
    the tokens know, letters they do not (ß, é, Ñ, CJK, emoji), glued or
    spaced."""
    import random

    from sentiment import text as text_module
    rng = random.Random(seed)
    words = sorted(text_module._NEGATORS | text_module._SCOPE_BREAKERS
                   | text_module._TRANSPARENT | text_module._CONTRAST | text_module._CLAUSE_END
                   | text_module._PUNCTUATION) + [
        "n't", "don't", "it's", "rock'n'roll", "l'ñu", "a'1", "bueno", "malo", "good", "bad",
        "NEG_x", "neg_x", "AFTER_BUT_x", "love", "excelente", "horrible", "meh"]
    letters = list("abcdefghijklmnopqrstuvwxyz0123456789_ñçÑÇ'’!?¡¿.,;:  \t\nßøé日😀-\"()")
    texts = []
    for _ in range(count):
        parts = [rng.choice(words) if rng.random() < 0.6 else
                 "".join(rng.choice(letters) for _ in range(rng.randint(1, 6)))
                 for _ in range(rng.randint(0, 14))]
        texts.append(rng.choice([" ", "", "'", ",", " '"]).join(parts))
    return texts


@pytest.mark.usefixtures("compiled_words")
def test_compiled_word_features_are_the_python_ones(shipped):
    """The same columns, text by text, as WordFeatures.from_normalized and
    the vocabulary give: on the corpus, the edge texts, and 20,000 made-up
    texts both normalised and raw (raw: any character, upper case
    included, reaches the tokeniser)."""
    _, pipeline = shipped
    fast = FastPath(pipeline)
    words = fast.vectorizers[0]
    assert words.compiled is not None
    made_up = _fuzz_texts(20_000, seed=11)
    texts = [normalize(t) for t in corpus_texts() + EDGE_TEXTS + list(CHECK_TEXTS) + made_up]
    texts += made_up
    assert _compiled_columns(words, texts) == _python_columns(words, texts)


@pytest.mark.usefixtures("compiled_words")
def test_the_shipped_model_gives_the_same_answers_without_compiled_features(shipped, monkeypatch):
    _, pipeline = shipped
    texts = corpus_texts(150) + EDGE_TEXTS + list(CHECK_TEXTS)
    fast = FastPath(pipeline)
    assert all(v.compiled is not None for v in fast.vectorizers)
    batch = fast.predict_proba(texts, one_by_one=False)
    singles = np.vstack([fast.predict_proba([text]) for text in texts])
    monkeypatch.setattr(model_module, "_compiled_word_columns", None)
    monkeypatch.setattr(model_module, "_compiled_by_word", None)
    python = FastPath(pipeline)
    assert [v.compiled for v in python.vectorizers] == [None, None]
    np.testing.assert_array_equal(batch, python.predict_proba(texts, one_by_one=False))
    np.testing.assert_array_equal(singles, np.vstack([python.predict_proba([t]) for t in texts]))
    np.testing.assert_array_equal(batch, pipeline.predict_proba(texts))


def _word_sets():
    """The word sets _words.table() takes, and the negation scope."""
    *sets, scope = WordFeatures().compiled_arguments()[1:]
    return sets, scope


def test_compiled_word_features_refuse_bad_arguments(compiled_words):
    sets, scope = _word_sets()
    table = model_module._word_table
    ok = table({"ok": 4}, None, *sets)
    with pytest.raises(TypeError):
        compiled_words(("tuple",), ok, scope)
    with pytest.raises(TypeError, match="must be str"):
        compiled_words(["ok", b"bytes"], ok, scope)
    with pytest.raises(ValueError):  # a dict where the table goes
        compiled_words(["ok"], {"ok": 4}, scope)
    with pytest.raises(TypeError, match="sets must be sets"):
        table({"ok": 4}, None, ["no"], *sets[1:])
    with pytest.raises(TypeError, match="hold str"):
        table({"ok": 4}, None, {b"no"}, *sets[1:])
    with pytest.raises(TypeError, match="lexicon"):
        table({"ok": 4}, ["no"], *sets)
    with pytest.raises(TypeError, match="lexicon's words"):
        table({"ok": 4}, {1: "LEX"}, *sets)
    with pytest.raises(TypeError):
        table({"ok": "not a column"}, None, *sets)
    with pytest.raises(TypeError, match="str"):
        table({b"ok": 1}, None, *sets)
    with pytest.raises(ValueError, match="range"):
        table({"ok": -1}, None, *sets)
    with pytest.raises(ValueError, match="range"):  # a lexicon feature's column
        table({"ok": 1, "LEX": -1}, {"ok": "LEX"}, *sets)
    columns, counts = compiled_words(["ok ok", "", "nada"], ok, scope)
    assert np.frombuffer(columns, dtype=np.int64).tolist() == [4, 4]
    assert np.frombuffer(counts, dtype=np.int64).tolist() == [2, 0, 0]


@pytest.mark.usefixtures("compiled_words")
def test_a_vocabulary_changed_while_its_table_is_made_does_not_break_it():
    """Reading a column may run Python code (an int-like's __index__) that
    changes the dict: the table is made from the items as they were."""
    vocabulary = {}

    class Sneaky:
        def __init__(self, column):
            self.column = column

        def __index__(self):
            vocabulary.update({"x" * 1000 + str(k): 10 + k for k in range(50)})
            vocabulary.pop("b", None)
            return self.column

    vocabulary.update({"a": Sneaky(0), "b": 1, "c": Sneaky(2)})
    sets, scope = _word_sets()
    table = model_module._word_table(vocabulary, None, *sets)
    columns, _ = model_module._compiled_word_columns(["a b c", "x"], table, scope)
    assert sorted(np.frombuffer(columns, dtype=np.int64).tolist()) == [0, 1, 2]


@pytest.mark.usefixtures("compiled_words")
def test_compiled_word_features_find_every_feature_of_the_vocabulary():
    """The table finds each feature the dict holds, Latin-1 or not (a
    lexicon's feature may be anything), and nothing else: features that
    differ only in a last letter, a prefix, or a character beyond Latin-1."""
    sets, scope = _word_sets()
    vocabulary = {"ok": 0, "oj": 1, "o": 2, "ok ok": 3, "NEG_ok": 4, "AFTER_BUT_ok": 5,
                  "LEX_日本": 6, "LEX_pos": 7, "ñu": 8, "": 9}
    vocabulary.update({f"w{i}": 10 + i for i in range(5000)})
    lexicon = {"ok": "LEX_日本", "ñu": "LEX_pos", "w7": "LEX_none"}
    function = model_module._compiled_word_columns
    table = model_module._word_table(vocabulary, lexicon, *sets)
    columns, counts = function(["ok ok ñu oi w7 w4999 w5000", "no ok", "ok pero ok"], table,
                               scope)
    found = np.frombuffer(columns, dtype=np.int64).tolist()
    counts = np.frombuffer(counts, dtype=np.int64).tolist()
    first, second, third = (found[:counts[0]], found[counts[0]:counts[0] + counts[1]],
                            found[counts[0] + counts[1]:])
    assert sorted(first) == sorted([0, 0, 8, 17, 10 + 4999, 3, 6, 6, 7])
    assert sorted(second) == [4]
    assert sorted(third) == [0, 0, 5, 6, 6]


# --- the character n-grams' lookups in C (by_word, sentiment/_words.c) --------

@pytest.mark.usefixtures("compiled_words")
@pytest.mark.parametrize("cache_size", [50_000, 7])
def test_compiled_character_ngrams_are_scikit_learns(shipped, monkeypatch, cache_size):
    """The same columns, text by text, as scikit-learn's char_wb n-grams of
    the text looked up in the vocabulary: on the corpus, the edge texts and
    20,000 made-up texts, normalised and raw (tabs, newlines and other
    spaces between words); also with a cache so small it is emptied again
    and again."""
    monkeypatch.setattr(model_module, "_WORD_CACHE_SIZE", cache_size)
    _, pipeline = shipped
    characters = FastPath(pipeline).vectorizers[1]
    assert characters.compiled is not None
    sklearn_vectorizer = pipeline.steps[0][1].transformer_list[1][1]
    assert sklearn_vectorizer.analyzer == "char_wb"
    made_up = _fuzz_texts(20_000, seed=12)
    texts = [normalize(t) for t in corpus_texts() + EDGE_TEXTS + list(CHECK_TEXTS) + made_up]
    texts += made_up + ["", " ", "\u3000a\u2028b\x1c", "a\x85b\xa0c\x1cd\x1fe\x0bf \xe9t\xe9 ",
                        "\u3000café\u3000日本 \x85niño"]
    vocabulary = sklearn_vectorizer.vocabulary_
    expected = [sorted(j for j in map(vocabulary.get, sklearn_vectorizer._char_wb_ngrams(text))
                       if j is not None) for text in texts]
    assert _compiled_columns(characters, texts) == expected
    assert len(characters._word_bytes) <= cache_size


def test_compiled_character_ngrams_refuse_bad_arguments(compiled_words):
    by_word = model_module._compiled_by_word
    cache = {"ok": np.array([4, 5], dtype=np.int64).tobytes()}
    columns, counts = by_word(["ok ok", "", " ok\t"], cache, lambda word: b"")
    assert np.frombuffer(columns, dtype=np.int64).tolist() == [4, 5, 4, 5, 4, 5]
    assert np.frombuffer(counts, dtype=np.int64).tolist() == [4, 0, 2]
    columns, counts = by_word(["new ok"], cache, lambda word: np.int64(9).tobytes())
    assert np.frombuffer(columns, dtype=np.int64).tolist() == [9, 4, 5]
    with pytest.raises(TypeError):
        by_word(("tuple",), cache, len)
    with pytest.raises(TypeError, match="must be str"):
        by_word(["ok", b"bytes"], cache, len)
    with pytest.raises(TypeError, match="callable"):
        by_word(["ok"], cache, None)
    with pytest.raises(TypeError, match="int64 bytes"):
        by_word(["other"], cache, lambda word: [1, 2])
    with pytest.raises(TypeError, match="int64 bytes"):
        by_word(["other"], cache, lambda word: b"123")
    with pytest.raises(ZeroDivisionError):
        by_word(["other"], cache, lambda word: 1 / 0)


def _by_word_lists(texts, cache, missing, words=None):
    columns, counts = model_module._compiled_by_word(texts, cache, missing, words)
    columns = np.frombuffer(columns, dtype=np.int64).tolist()
    ends = np.cumsum(np.frombuffer(counts, dtype=np.int64)).tolist()
    return [columns[end - count:end] for end, count in zip(ends, np.diff([0] + ends).tolist())]


def test_word_cache_keeps_latin1_words_and_leaves_the_rest_to_the_dict(compiled_words):
    """With a word_cache, a Latin-1 word's missing() is asked once and its
    columns kept in C (not in the dict); other words go through the dict as
    before; the cache empties itself when full; a missing() that changes
    the cache meanwhile (another thread, here the same one) spoils nothing."""
    if model_module._compiled_word_cache is None:
        missing("sentiment/_words.c was built before word_cache()")
    asked = []

    def columns_of(word):
        asked.append(word)
        return np.array([len(word), ord(word[0])], dtype=np.int64).tobytes()

    cache = {}
    words = model_module._compiled_word_cache(3)
    texts = ["uno dos\xa0uno", "  ", "\u65e5 uno\u3000\u65e5\x85dos", "\x85tres\tcuatro"]
    expected = [[3, ord("u"), 3, ord("d"), 3, ord("u")], [],
                [1, 0x65E5, 3, ord("u"), 1, 0x65E5, 3, ord("d")],
                [4, ord("t"), 6, ord("c")]]
    assert _by_word_lists(texts, cache, columns_of, words) == expected
    # "uno" and "dos" asked once; the CJK word once, then from the dict.
    assert asked == ["uno", "dos", "\u65e5", "\u65e5", "tres", "cuatro"]
    assert list(cache) == []  # columns_of keeps nothing; by_word keeps Latin-1 words
    asked.clear()
    # Three words held at most: "uno", "dos", "tres", then emptied for "cuatro".
    assert _by_word_lists(["cuatro tres uno"], cache, columns_of, words) == [
        [6, ord("c"), 4, ord("t"), 3, ord("u")]]
    assert asked == ["tres", "uno"]

    asked.clear()
    busy = model_module._compiled_word_cache(2)

    def meddling(word):
        # Fills and empties the cache the outer call is using, many times.
        _by_word_lists([f"w{i}x" * (i % 5 + 1) for i in range(50)], {}, columns_of, busy)
        return columns_of(word)

    assert _by_word_lists(["ab cd ab ef"], {}, meddling, busy) == [
        [2, ord("a"), 2, ord("c"), 2, ord("a"), 2, ord("e")]]

    # A text of more words than by_word looks up at once, Latin-1's spaces
    # between them, the cache filled and emptied on the way: each word gets
    # its own columns, in the order of the words.
    ids = {}

    def numbered(word):
        return np.array([len(word), ids.setdefault(word, len(ids))], dtype=np.int64).tobytes()

    many = [f"w{i % 40}" for i in range(75)]
    spaces = [" ", "\xa0", "\x85", "\x1c\t", "   "]
    text = "".join(f"{word}{spaces[i % len(spaces)]}" for i, word in enumerate(many))
    for limit in (1000, 7):
        got = _by_word_lists([text, text], {}, numbered, model_module._compiled_word_cache(limit))
        assert got == [[n for word in many for n in (len(word), ids[word])]] * 2
    assert len(ids) == 40

    with pytest.raises(ValueError):
        model_module._compiled_word_cache(0)
    with pytest.raises(ValueError):  # a capsule of another kind
        model_module._compiled_by_word(["a"], {}, columns_of, model_module._word_table(
            {}, None, set(), set(), set(), set(), set(), set()))
    with pytest.raises(TypeError, match="int64 bytes"):
        model_module._compiled_by_word(["zz"], {}, lambda word: b"123", words)
    with pytest.raises(ZeroDivisionError):
        model_module._compiled_by_word(["zzz"], {}, lambda word: 1 / 0, words)
    # A failed word was not kept.
    assert _by_word_lists(["zz zzz"], {}, columns_of, words) == [
        [2, ord("z"), 3, ord("z")]]


def test_predicted_rows_are_the_predictions_flattened(shipped):
    """predict_rows() (what is stored) says what predict() says, a person's
    correction of an exact text included."""
    header, pipeline = shipped
    texts = corpus_texts(60) + EDGE_TEXTS + ["Me encanta", "me encanta!"]
    model = SentimentModel(header, pipeline, {normalize("Me encanta"): "negative"})
    probabilities = pipeline.predict_proba(texts)
    expected = []
    for text, probs in zip(texts, probabilities.tolist()):
        if normalize(text) == normalize("Me encanta"):
            probs = [1.0, 0.0, 0.0]
        best = max(range(3), key=probs.__getitem__)
        expected.append((("negative", "neutral", "positive")[best], probs[2] + probs[1] / 2,
                         *probs))
    rows = model.predict_rows(texts)
    assert [row[0] for row in rows] == [row[0] for row in expected]
    np.testing.assert_allclose(np.array([row[1:] for row in rows]),
                               np.array([row[1:] for row in expected]), rtol=0, atol=1e-6)
    assert model.predict(texts) == [(label, score, dict(zip(("negative", "neutral", "positive"),
                                                            probs)))
                                    for label, score, *probs in rows]
    assert rows[-2] == ("negative", 0.0, 1.0, 0.0, 0.0)
    assert rows[-1] != rows[-2]
    # One text at a time (Python floats, not numpy): the very same rows.
    assert [model.predict_rows([text])[0] for text in texts] == rows
