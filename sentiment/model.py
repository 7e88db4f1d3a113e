"""The model held in memory: load, verify, predict, and reload when the
file on disk is replaced by a newer one."""
import logging
import os
import pickle
import threading
import math
import time
from itertools import chain, repeat

import numpy as np
import sklearn
from scipy.sparse import csr_matrix
from scipy.special import expit
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline

from . import LABELS
from .text import WordFeatures, normalize

try:
    # Built by `pip install -e .` (setup.py); without it, the same in numpy.
    from . import _decision
except ImportError:  # pragma: no cover - depends on the install
    _compiled_decision = _compiled_decision_of_blocks = None
else:
    _compiled_decision = _decision.decision
    # A module built before decision_of_blocks still serves decision().
    _compiled_decision_of_blocks = getattr(_decision, "decision_of_blocks", None)
try:
    # The word features and the character n-grams' lookups, the same way
    # (sentiment/_words.c).
    from ._words import by_word as _compiled_by_word
    from ._words import columns as _compiled_word_columns
    from ._words import table as _word_table
except ImportError:  # pragma: no cover - depends on the install
    _compiled_by_word = _compiled_word_columns = _word_table = None
try:
    # A module built before word_cache() still serves by_word() with the dict.
    from ._words import word_cache as _compiled_word_cache
except ImportError:  # pragma: no cover - depends on the install
    _compiled_word_cache = None

log = logging.getLogger(__name__)

FORMAT = 1


class ModelUnavailable(Exception):
    """No usable model is loaded; the message tells the user what to do."""


def write_artifact(path, header, body):
    """Write header and body as two pickles into `path`, atomically.

    The header holds only plain types, so a reader can check versions
    before unpickling scikit-learn objects. The file is written beside the
    target and renamed over it, so a server never reads half a file.
    """
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            pickle.dump(header, fh, protocol=pickle.HIGHEST_PROTOCOL)
            pickle.dump(body, fh, protocol=pickle.HIGHEST_PROTOCOL)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def read_header(path):
    """The plain-data header of a model file."""
    with open(path, "rb") as fh:
        header = pickle.load(fh)
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ModelUnavailable(f"{path} is not a sentiment-api model file; run `python train.py`")
    return header


# --- the lean inference path ----------------------------------------------
#
# scikit-learn spends most of a one-text predict_proba call validating its
# input and building sparse matrices, not on arithmetic. FastPath walks the
# fitted pipeline once, at load time, and then does only the arithmetic,
# step for step in the same order and the same dtypes as scikit-learn
# (count, sublinear tf, idf, row norm, dot with coef_ accumulated in index
# order, intercept, softmax), so its answers are the same. Tokenisation is
# each vectorizer's own build_analyzer(), so changing the features in
# sentiment/text.py or training.build_pipeline needs nothing here. Anything
# it does not know (another step type or setting) raises UnsupportedPipeline
# and the model keeps using pipeline.predict_proba.

# Texts the fast path is checked on at every load, against predict_proba:
# both languages, negation, emoji and emoticons, URLs and mentions,
# elongations, punctuation only, text with no known feature, a long text.
CHECK_TEXTS = (
    "me encanta", "No está nada mal, lo recomiendo", "qué desastre de servicio",
    "El tren sale a las 8", "Buenísimooo!!! 😍😍", "no me gustó para nada 👎",
    "¿Alguien sabe a qué hora abre la farmacia?", "Pésima atención, jamás vuelvo",
    "La película es larga pero vale la pena", "ni fu ni fa", "Ñandú, año, pingüino",
    "not bad at all", "I love it :)", "This is the worst purchase ever :(",
    "The meeting is on Monday at 9am", "@user check https://example.com/x?y=1 now",
    "I don't think it's good", "sooooo goooood <3", "meh", "OK", "!!!", "?", ".",
    "a", " x ", "12345", "🙂", "💩💩💩", "—", "zzqxj vvkkw",
    "Me atendieron rápido y bien, pero el precio es un robo. " * 20,
)


# Words whose char n-gram columns one worker remembers (a few MB at most).
_WORD_CACHE_SIZE = 50_000
_NO_COLUMNS = np.zeros(0, dtype=np.intp)
_NO_COLUMNS.setflags(write=False)
# The compiled arithmetic's table of tf weights by count: a feature seen
# more often in one text (a long run of "ja ja ja") goes through numpy.
_WEIGHTED_COUNTS = 4096


def _weigh(data, columns, binary, sublinear, idf):
    """Counts to tf-idf weights in place: binary or sublinear tf, then idf
    (None: no idf) of the given columns."""
    if binary:
        data.fill(1)
    if sublinear:
        np.log(data, data)
        data += 1.0
    if idf is not None:
        data *= idf[columns]


def _counted(values):
    """(the distinct values, sorted, and how often each occurs) of a
    non-empty integer array, which is sorted in place: np.unique(values,
    return_counts=True) without its Python layers (the first of every run
    of equal neighbours starts a new value)."""
    values.sort()
    first_of_run = np.empty(values.size, dtype=bool)
    first_of_run[0] = True
    np.not_equal(values[1:], values[:-1], out=first_of_run[1:])
    starts = first_of_run.nonzero()[0]
    ends = np.empty_like(starts)
    ends[:-1] = starts[1:]
    ends[-1] = values.size
    return values[starts], ends - starts


def _rows_and_columns(counts, columns):
    """(the row of each column, the columns) from how many columns each row
    has (int64 arrays)."""
    return np.repeat(np.arange(len(counts), dtype=np.int64), counts), columns


def _remember(cache, word, columns):
    """columns, kept in a cache of at most _WORD_CACHE_SIZE words (emptied
    when full)."""
    if len(cache) >= _WORD_CACHE_SIZE:
        cache.clear()
    cache[word] = columns
    return columns


class UnsupportedPipeline(Exception):
    """The pipeline has a step or setting the fast path does not reproduce."""


class _Tfidf:
    """One fitted TfidfVectorizer: its own analyzer, then its arithmetic."""

    def __init__(self, vectorizer):
        if type(vectorizer) is not TfidfVectorizer:
            raise UnsupportedPipeline(f"feature step {type(vectorizer).__name__}")
        self.dtype = np.dtype(vectorizer.dtype)
        if self.dtype not in (np.float32, np.float64):
            raise UnsupportedPipeline(f"vectorizer dtype {self.dtype}")
        if vectorizer.norm not in (None, "l1", "l2"):
            raise UnsupportedPipeline(f"vectorizer norm {vectorizer.norm!r}")
        self.analyze = vectorizer.build_analyzer()
        self.vocabulary = vectorizer.vocabulary_
        self.indices = self._indices
        # The columns as a list of integer arrays, for numpy to join.
        self.column_arrays = self._column_arrays
        # indices() gives an array (char_wb, word by word), not a list.
        self.indices_are_array = False
        # Both of the model's vectorizers start with normalize(text): the
        # caller does that once per text for both (and for the corrections
        # lookup) and hands it over. None: this one starts from the raw text.
        self.from_normalized = None
        if vectorizer.input == "content" and isinstance(vectorizer.analyzer, WordFeatures):
            self.from_normalized = vectorizer.analyzer.from_normalized
        # (function, arguments): one C call gives the columns of a list of
        # normalised texts, function(texts, *arguments); None: Python's way.
        self.compiled = None
        if (self.from_normalized is not None and _compiled_word_columns is not None
                and type(vectorizer.analyzer) is WordFeatures
                and type(vectorizer.vocabulary_) is dict):
            # The word features and their columns: in Python the features
            # took 8-9 us per text, the lookups 3-4 more.
            *word_sets, scope = vectorizer.analyzer.compiled_arguments()
            self.compiled = (_compiled_word_columns,
                             (_word_table(self.vocabulary, *word_sets), scope))
            self._decode = vectorizer.decode
            self.indices = self._compiled_indices
        if vectorizer.analyzer == "char_wb":
            # char_wb n-grams never cross a word, and words repeat a lot
            # across texts: each word's columns are looked up once.
            self._preprocess = vectorizer.build_preprocessor()
            self._decode = vectorizer.decode
            self._word_ngrams = vectorizer._char_wb_ngrams
            self._word_columns = {}
            self.indices = self._indices_by_word
            self.column_arrays = self._arrays_by_word
            self.indices_are_array = True
            if vectorizer.input == "content" and vectorizer.preprocessor is normalize:
                self.from_normalized = str.split
                if _compiled_by_word is not None and type(vectorizer.vocabulary_) is dict:
                    # Each word's columns from a cache in C, where Python
                    # took a dictionary lookup and an array per word.
                    self._word_bytes = {}
                    arguments = (self._word_bytes, self._columns_of_word)
                    if _compiled_word_cache is not None:
                        # Latin-1 words (nearly all) in a cache in C, by their
                        # bytes, where a dict lookup of a new str per word took
                        # 6.6 % of a worker's time under batches of 100.
                        arguments += (_compiled_word_cache(_WORD_CACHE_SIZE),)
                    self.compiled = (_compiled_by_word, arguments)
                    self.indices = self._compiled_indices
                    self.column_arrays = self._column_arrays
                    self.indices_are_array = False
        self.width = len(self.vocabulary)
        self.binary = vectorizer.binary
        self.sublinear = vectorizer.sublinear_tf
        self.idf = vectorizer.idf_ if vectorizer.use_idf else None
        self.norm = vectorizer.norm

    def _features(self, text, normalized=None):
        """The analyzer's features of the text. `normalized` is
        normalize(text), if the caller has it."""
        if normalized is not None and self.from_normalized is not None:
            features = self.from_normalized(normalized)
        else:
            features = self.analyze(text)
        # found() counts them: an analyzer may hand back any iterable.
        return features if isinstance(features, list) else list(features)

    def _indices(self, text, normalized=None):
        """The vocabulary columns of the text's features, repeats kept,
        features outside the vocabulary dropped."""
        get = self.vocabulary.get
        return [j for j in map(get, self._features(text, normalized)) if j is not None]

    def _column_arrays(self, text, normalized=None):
        """_indices as a list of one integer array."""
        return [np.asarray(self.indices(text, normalized), dtype=np.intp)]

    def _indices_by_word(self, text, normalized=None):
        """_indices for a char_wb analyzer (an array): the same columns as
        the analyzer's n-grams of the whole text."""
        arrays = self._arrays_by_word(text, normalized)
        return np.concatenate(arrays) if arrays else _NO_COLUMNS

    def _arrays_by_word(self, text, normalized=None):
        """The columns of a char_wb analyzer's n-grams, one array per word,
        each looked up once through a cache: n-grams never cross a word,
        and words repeat a lot across texts. numpy joins the arrays far
        faster than Python builds one list of ~200 numbers and converts it."""
        cache = self._word_columns
        if normalized is not None and self.from_normalized is not None:
            words = self.from_normalized(normalized)
        else:
            words = self._preprocess(self._decode(text)).split()
        arrays = []
        for word in words:
            found = cache.get(word)
            if found is None:
                found = self._ngram_columns(word, np.intp)
                # Shared by every later text with this word: never changed.
                found.setflags(write=False)
                _remember(cache, word, found)
            arrays.append(found)
        return arrays

    def _ngram_columns(self, word, dtype):
        """The vocabulary columns of a char_wb analyzer's n-grams of one
        word, as an array of `dtype`."""
        get = self.vocabulary.get
        return np.array([j for j in map(get, self._word_ngrams(word)) if j is not None],
                        dtype=dtype)

    def _columns_of_word(self, word):
        """The columns of one word's n-grams as int64 bytes, kept for the
        next text with this word (the compiled way's _arrays_by_word): in
        by_word's word cache if it has one and the word is Latin-1, which
        by_word keeps itself, else here."""
        columns = self._ngram_columns(word, np.int64).tobytes()
        if len(self.compiled[1]) < 3 or not word.isascii() and max(word) > "\xff":
            _remember(self._word_bytes, word, columns)
        return columns

    def compiled_bytes(self, texts, normalized):
        """(columns, how many of them each text has) of the texts' features
        through sentiment/_words.c, as int64 bytes: found() without a Python
        loop per feature; `normalized` as for found()."""
        texts = [normalize(self._decode(text)) if norm is None else norm
                 for text, norm in zip(texts, normalized)]
        function, arguments = self.compiled
        return function(texts, *arguments)

    def _compiled_columns(self, texts, normalized):
        """compiled_bytes as two int64 arrays."""
        columns, counts = self.compiled_bytes(texts, normalized)
        return np.frombuffer(columns, dtype=np.int64), np.frombuffer(counts, dtype=np.int64)

    def _compiled_indices(self, text, normalized=None):
        """_indices through sentiment/_words.c (an array)."""
        return self._compiled_columns([text], [normalized])[0]

    def transform_one(self, text, normalized=None):
        """(sorted column indices, tf-idf values) of one text, or None:
        transform() with fewer numpy calls, for the one-text requests."""
        found = self.indices(text, normalized)
        if not len(found):
            return None
        # One conversion to an array, then only numpy: indexing numpy with a
        # Python list converts the list again at every use.
        columns, counts = _counted(np.array(found, dtype=np.intp))
        data = counts.astype(self.dtype)
        _weigh(data, columns, self.binary, self.sublinear, self.idf)
        if self.norm is not None:
            parts = np.abs(data) if self.norm == "l1" else data * data
            total = float(np.cumsum(parts, dtype=np.float64)[-1])  # in column order
            if total != 0.0:
                if self.norm == "l2":
                    total = math.sqrt(total)
                # float64 division, as in sklearn's Cython (a Python float
                # alone would keep it in float32).
                data = (data.astype(np.float64) / total).astype(self.dtype)
        return columns, data

    def found(self, texts, normalized):
        """(row, column) of every known feature of the texts, repeats kept,
        as two int64 arrays in no particular order; `normalized` holds
        normalize(text) or None for each text."""
        # Every text's features looked up at once, without a Python loop
        # per feature: map() and fromiter() run in C, and a text's row is
        # repeated once per feature (per word, for char_wb) by numpy.
        # (400 corpus texts at once: the word features' tf-idf 14-21 -> 9-10
        # us per text, the character n-grams' 9-14 -> 5.5.)
        if self.compiled is not None:
            found, counts = self._compiled_columns(texts, normalized)
            return _rows_and_columns(counts, found)
        per_text = list(map(self.column_arrays if self.indices_are_array else self._features,
                            texts, normalized))
        rows = np.repeat(np.arange(len(texts), dtype=np.int64),
                         np.fromiter(map(len, per_text), dtype=np.intp, count=len(per_text)))
        if self.indices_are_array:
            arrays = list(chain.from_iterable(per_text))
            rows = np.repeat(rows, np.fromiter(map(len, arrays), dtype=np.intp, count=len(arrays)))
            found = (np.concatenate(arrays) if arrays else _NO_COLUMNS).astype(np.int64)
        else:
            found = np.fromiter(map(self.vocabulary.get, chain.from_iterable(per_text), repeat(-1)),
                                dtype=np.int64, count=rows.size)
            known = found >= 0
            rows, found = rows[known], found[known]
        return rows, found

    def transform(self, texts, normalized):
        """The tf-idf matrix of the texts as (rows, columns, values), sorted
        by row then column like sklearn's CSR matrix; `normalized` as for
        found()."""
        rows, found = self.found(texts, normalized)
        if not found.size:
            return rows, found, np.zeros(0, dtype=self.dtype)
        # One sort of row * width + column orders every row's columns; equal
        # neighbours are the same feature counted again.
        keys, counts = _counted(rows * self.width + found)
        rows, columns = np.divmod(keys, self.width)
        data = counts.astype(self.dtype)
        _weigh(data, columns, self.binary, self.sublinear, self.idf)
        if self.norm is not None and data.size:
            # As sklearn's inplace_csr_row_normalize_l1/l2: squares (or
            # absolute values) in the data's dtype, added up in float64 in
            # column order (bincount adds in input order), each value divided
            # in float64. Rows without any feature stay empty.
            parts = np.abs(data) if self.norm == "l1" else data * data
            totals = np.bincount(rows, weights=parts, minlength=len(texts))
            if self.norm == "l2":
                totals = np.sqrt(totals)
            totals[totals == 0.0] = 1.0
            data = (data / totals[rows]).astype(self.dtype)
        return rows, columns, data


class FastPath:
    """predict_proba of a fitted Pipeline(TfidfVectorizer or FeatureUnion of
    TfidfVectorizers, LogisticRegression) without sklearn's per-call overhead."""

    def __init__(self, pipeline):
        if type(pipeline) is not Pipeline or len(pipeline.steps) != 2:
            raise UnsupportedPipeline("not a two-step Pipeline")
        features, clf = pipeline.steps[0][1], pipeline.steps[1][1]
        if type(features) is FeatureUnion:
            if features.transformer_weights:
                raise UnsupportedPipeline("FeatureUnion with transformer_weights")
            self.vectorizers = [_Tfidf(t) for _, t in features.transformer_list]
        else:
            self.vectorizers = [_Tfidf(features)]
        if type(clf) is not LogisticRegression:
            raise UnsupportedPipeline(f"classifier {type(clf).__name__}")
        self.offsets = []
        offset = 0
        for vectorizer in self.vectorizers:
            self.offsets.append(offset)
            offset += vectorizer.width
        if clf.coef_.ndim != 2 or clf.coef_.shape[1] != offset:
            raise UnsupportedPipeline(f"coef_ of shape {clf.coef_.shape} for {offset} features")
        # One row of coefficients per feature, contiguous, for fancy indexing.
        self.coef_t = np.ascontiguousarray(clf.coef_.T)
        self.intercept = np.asarray(clf.intercept_)
        self.binary = len(clf.classes_) <= 2
        if self.binary and self.coef_t.shape[1] != 1:
            raise UnsupportedPipeline("binary classifier with several coefficient rows")
        # scipy multiplies the sparse matrix (the union's dtype) by coef_ in
        # their common dtype.
        data_dtype = np.result_type(*(v.dtype for v in self.vectorizers))
        self.dtype = np.result_type(data_dtype, self.coef_t.dtype)
        self.joint = self._joint_settings()
        self.compiled = self._compiled_settings()

    def _joint_settings(self):
        """For one text, every vectorizer's arithmetic in one set of numpy
        calls over all their columns: only when they all weigh and
        normalise alike (the shipped model's two do). None otherwise."""
        first = self.vectorizers[0]
        same = all((v.dtype, v.binary, v.sublinear, v.norm, v.idf is None)
                   == (first.dtype, first.binary, first.sublinear, first.norm, first.idf is None)
                   for v in self.vectorizers)
        if not same or first.norm != "l2" or first.binary:
            return None
        idf = None
        if first.idf is not None:
            if len({v.idf.dtype for v in self.vectorizers}) != 1:
                return None
            idf = np.concatenate([v.idf for v in self.vectorizers])
        return {"idf": idf, "starts": np.array(self.offsets[1:], dtype=np.intp)}

    def _compiled_settings(self):
        """The arguments of sentiment/_decision.c's decision() that never
        change, when it is built and does exactly what the numpy way does
        for this model: its vectorizers weighed alike (joint), float32
        tf-idf with float32 idf, float32 or float64 coefficients and an
        intercept of their type (the shipped model's are float32; a float64
        intercept would make numpy's scores float64). None otherwise."""
        if _compiled_decision is None or self.joint is None:
            return None
        first = self.vectorizers[0]
        idf = self.joint["idf"]
        if (first.dtype != np.float32 or self.coef_t.dtype not in (np.float32, np.float64)
                or self.dtype != self.coef_t.dtype or self.intercept.dtype != self.dtype
                or (idf is not None and idf.dtype != np.float32)):
            return None
        # weights[count]: what _weigh makes of a count before idf, worked
        # out by numpy itself (its float32 log, not the C library's).
        weights = np.zeros(_WEIGHTED_COUNTS, dtype=np.float32)
        counts = np.arange(1, _WEIGHTED_COUNTS, dtype=np.float32)
        _weigh(counts, None, first.binary, first.sublinear, None)
        weights[1:] = counts
        return {
            "function": _compiled_decision,
            # The vectorizers' bytes from sentiment/_words.c straight in,
            # where numpy joined them (2-3 us per text in batches of 100).
            "of_blocks": (_compiled_decision_of_blocks
                          if all(v.compiled is not None for v in self.vectorizers) else None),
            "weights": weights,
            "idf": None if idf is None else np.ascontiguousarray(idf),
            "starts": self.joint["starts"].astype(np.int64),
            "coef": np.ascontiguousarray(self.coef_t),
            # Each column's idf beside its coefficients (float32 only, as
            # they are shipped): decision_of_blocks then fetches one row
            # from memory per column, not an idf and a row (2 MB more).
            "packed": (np.ascontiguousarray(np.hstack([idf[:, None], self.coef_t]))
                       if idf is not None and self.coef_t.dtype == np.float32 else None),
            "intercept": np.ascontiguousarray(self.intercept),
        }

    def _of_blocks(self):
        """The compiled arithmetic that takes the vectorizers' bytes, or None
        (read from self.compiled, which a test may switch off)."""
        return None if self.compiled is None else self.compiled["of_blocks"]

    def _compiled_scores(self, rows, found, count):
        """decision scores of `count` rows through the compiled arithmetic,
        or None (a count beyond its table: numpy's turn)."""
        c = self.compiled
        scores = np.empty((count, c["coef"].shape[1]), dtype=self.dtype)
        if c["function"](rows, found, count, c["weights"], c["idf"], c["starts"], c["coef"],
                         c["intercept"], scores):
            return scores
        return None

    def decision_function(self, texts, normalized):
        """coef_ . features + intercept, each row summed in column order in
        the same dtype as scipy's sparse-times-dense product (csr_matvecs);
        `normalized` as for _Tfidf.found."""
        if self.joint is not None:
            return self._decision_joint(texts, normalized)
        parts = [v.transform(texts, normalized) for v in self.vectorizers]
        rows = np.concatenate([p[0] for p in parts])
        columns = np.concatenate([p[1] + offset for p, offset in zip(parts, self.offsets)])
        values = np.concatenate([p[2].astype(self.dtype, copy=False) for p in parts])
        # The union's columns: each vectorizer's block after the previous
        # one's, so a stable sort by row gives every row in column order.
        order = np.argsort(rows, kind="stable")
        rows, columns, values = rows[order], columns[order], values[order]
        return self._product(rows, columns, values, len(texts))

    def _product(self, rows, columns, values, count):
        """The CSR matrix of `count` rows (rows sorted, each row's columns
        in order), times coef_, plus the intercept."""
        # The very CSR matrix scikit-learn builds (the same dtype),
        # multiplied by scipy's own csr_matvecs as in sklearn: the same
        # additions in the same order. It replaced a padded running sum in
        # numpy (9 -> 2 us per text).
        indptr = np.zeros(count + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=count), out=indptr[1:])
        matrix = csr_matrix((values.astype(self.dtype, copy=False), columns, indptr),
                            shape=(count, self.coef_t.shape[0]))
        return matrix @ self.coef_t + self.intercept

    def _decision_joint(self, texts, normalized):
        """decision_function with the vectorizers' columns side by side, as
        _decision_one_joint does for one text: one sort of (row, column)
        for all of them, where each vectorizer sorted its own and the union
        was sorted again by row (callgrind, predict() in batches of 100:
        317.0k -> 300.7k instructions per text). Each block of a row still
        gets its own norm, its squares added in column order, as before."""
        count = len(texts)
        c = self.compiled
        if self._of_blocks() is not None:
            blocks = [(*v.compiled_bytes(texts, normalized), offset)
                      for v, offset in zip(self.vectorizers, self.offsets)]
            scores = np.empty((count, c["coef"].shape[1]), dtype=self.dtype)
            if c["packed"] is not None:
                done = c["of_blocks"](blocks, count, c["weights"], None, c["starts"],
                                      c["packed"], c["intercept"], scores, True)
            else:
                done = c["of_blocks"](blocks, count, c["weights"], c["idf"], c["starts"],
                                      c["coef"], c["intercept"], scores)
            if done:
                return scores
            # A count beyond the weights table: numpy's turn, on the same columns.
            parts = [_rows_and_columns(np.frombuffer(counts, dtype=np.int64),
                                       np.frombuffer(columns, dtype=np.int64))
                     for columns, counts, _ in blocks]
            c = None
        else:
            parts = [v.found(texts, normalized) for v in self.vectorizers]
        rows = np.concatenate([p[0] for p in parts])
        found = np.concatenate([p[1] + offset if offset else p[1]
                                for p, offset in zip(parts, self.offsets)])
        if c is not None:
            scores = self._compiled_scores(rows.astype(np.int64, copy=False),
                                             found.astype(np.int64, copy=False), count)
            if scores is not None:
                return scores
        if not found.size:
            return self._product(rows, found, np.zeros(0, dtype=self.dtype), count)
        width = self.coef_t.shape[0]
        keys, counts = _counted(rows * width + found)
        rows, columns = np.divmod(keys, width)
        first = self.vectorizers[0]
        data = counts.astype(first.dtype)
        _weigh(data, columns, first.binary, first.sublinear, self.joint["idf"])
        blocks = len(self.vectorizers)
        group = rows * blocks + np.searchsorted(self.joint["starts"], columns, side="right")
        # l2: _joint_settings lets no other norm through.
        totals = np.sqrt(np.bincount(group, weights=data * data, minlength=count * blocks))
        totals[totals == 0.0] = 1.0
        data = (data / totals[group]).astype(first.dtype)
        return self._product(rows, columns, data, count)

    def decision_one(self, text, normalized=None):
        """decision_function([text])[0] with the fewest numpy calls: the
        running sum of the products in column order, as scipy adds them."""
        if self.joint is not None:
            return self._decision_one_joint(text, normalized)
        columns, values = [], []
        for vectorizer, offset in zip(self.vectorizers, self.offsets):
            found = vectorizer.transform_one(text, normalized)
            if found is not None:
                columns.append(found[0] + offset if offset else found[0])
                values.append(found[1])
        if not columns:
            return self._sum_products(None, None)
        if len(columns) == 1:
            return self._sum_products(columns[0], values[0])
        return self._sum_products(np.concatenate(columns), np.concatenate(values))

    def _sum_products(self, columns, values):
        """coef_ . one text's features + intercept: the products added one
        at a time in column order, as scipy adds them. None: no feature."""
        if columns is None:
            return np.zeros(self.coef_t.shape[1], dtype=self.dtype) + self.intercept
        products = self.coef_t[columns] * values.astype(self.dtype, copy=False)[:, None]
        return np.add.accumulate(products, axis=0)[-1] + self.intercept

    def _decision_one_joint(self, text, normalized):
        """decision_one with the vectorizers' columns side by side (each
        block after the previous one's, so sorted columns keep the blocks
        in order); each block still gets its own norm, summed as before."""
        blocks = [v.column_arrays(text, normalized) for v in self.vectorizers]
        sizes = [sum(map(len, arrays)) for arrays in blocks]
        if not sum(sizes):
            return self._sum_products(None, None)
        found = np.concatenate(list(chain.from_iterable(blocks)))
        start = sizes[0]
        for size, offset in zip(sizes[1:], self.offsets[1:]):
            found[start:start + size] += offset
            start += size
        if self.compiled is not None:
            scores = self._compiled_scores(None, found.astype(np.int64, copy=False), 1)
            if scores is not None:
                return scores[0]
        columns, counts = _counted(found)
        first = self.vectorizers[0]
        data = counts.astype(first.dtype)
        _weigh(data, columns, first.binary, first.sublinear, self.joint["idf"])
        squares = data * data
        scaled = data.astype(np.float64)
        bounds = [0, *np.searchsorted(columns, self.joint["starts"]).tolist(), len(columns)]
        for start, end in zip(bounds, bounds[1:]):
            if end > start:
                # add.accumulate is cumsum without its wrapper: one at a time.
                total = float(np.add.accumulate(squares[start:end], dtype=np.float64)[-1])
                if total != 0.0:
                    scaled[start:end] /= math.sqrt(total)
        return self._sum_products(columns, scaled.astype(first.dtype))

    def predict_proba(self, texts, one_by_one=None, normalized=None):
        """The same matrix as pipeline.predict_proba(texts); `normalized`,
        if given, is [normalize(text) for text in texts].

        A few texts go one by one (less numpy overhead), more in one batch
        (less Python per text); both give the same numbers. With the
        compiled arithmetic taking the vectorizers' bytes, every text goes
        the batch way: it has no numpy call per vectorizer (one text:
        22.5 -> 12.7 us of scores)."""
        if one_by_one is None:
            one_by_one = len(texts) <= 4 and self._of_blocks() is None
        if normalized is None:
            normalized = [None] * len(texts)
        if one_by_one and len(texts) == 1:
            scores = self.decision_one(texts[0], normalized[0]).reshape(1, -1)
        elif one_by_one:
            scores = np.stack(list(map(self.decision_one, texts, normalized)))
        else:
            scores = self.decision_function(texts, normalized)
        if self.binary:
            positive = expit(scores.reshape(-1))
            return np.stack([1 - positive, positive], axis=1)
        if len(scores) == 1:
            # sklearn's softmax on the one row, without the axis arguments
            # and reshapes: the same reductions, the same numbers.
            row = scores[0]
            row -= row.max()
            np.exp(row, out=row)
            row /= row.sum()
            return scores
        scores -= scores.max(axis=1).reshape((-1, 1))
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=1).reshape((-1, 1))
        return scores


def fast_path_for(pipeline, texts=CHECK_TEXTS, tolerance=1e-6):
    """A verified FastPath for the pipeline, or None (logged) to use sklearn."""
    texts = list(texts)
    try:
        fast = FastPath(pipeline)
        expected = pipeline.predict_proba(texts)
        # Both ways through the fast path: as one batch and one by one.
        normalized = [normalize(text) for text in texts]
        answers = [fast.predict_proba(texts, one_by_one=False),
                   np.vstack([fast.predict_proba([text], one_by_one=True) for text in texts]),
                   fast.predict_proba(texts, one_by_one=False, normalized=normalized),
                   np.vstack([fast.predict_proba([text], one_by_one=True, normalized=[norm])
                              for text, norm in zip(texts, normalized)])]
    except UnsupportedPipeline as exc:
        log.warning("using scikit-learn's predict_proba: the fast path does not support %s", exc)
        return None
    except Exception as exc:  # a fast path that cannot run must not stop serving
        log.warning("using scikit-learn's predict_proba: the fast path failed (%s: %s)",
                    exc.__class__.__name__, exc)
        return None
    for got in answers:
        if got.shape != expected.shape:
            log.warning("using scikit-learn's predict_proba: the fast path gave shape %s, not %s",
                        got.shape, expected.shape)
            return None
        difference = float(np.max(np.abs(got.astype(np.float64) - expected)))
        if not difference <= tolerance:
            log.warning("using scikit-learn's predict_proba: the fast path differs by %.3g "
                        "on the check texts (tolerance %g)", difference, tolerance)
            return None
    return fast


class SentimentModel:
    """A trained pipeline plus the corrections people gave for exact texts."""

    def __init__(self, header, pipeline, overrides, fast=True):
        self.header = header
        self.version = header["version"]
        self.pipeline = pipeline
        self.overrides = overrides
        classes = list(pipeline.classes_)
        self._order = [classes.index(label) for label in LABELS]
        # None: the classifier's columns are already in LABELS order (sorted
        # labels, as scikit-learn keeps them), so no reordering copy.
        if self._order == list(range(len(LABELS))):
            self._order = None
        # Checked against predict_proba here, once per load; None means sklearn.
        self.fast = fast_path_for(pipeline) if fast else None

    def predict_proba(self, texts, normalized=None):
        """pipeline.predict_proba(texts), through the fast path when verified."""
        if self.fast is not None:
            return self.fast.predict_proba(texts, normalized=normalized)
        return self.pipeline.predict_proba(list(texts))

    @classmethod
    def load(cls, path):
        """Load a model file, refusing one built by another scikit-learn."""
        try:
            header = read_header(path)
        except FileNotFoundError as exc:
            raise ModelUnavailable(f"no model file at {path}; run `python train.py`") from exc
        except ModelUnavailable:
            raise
        except Exception as exc:
            raise ModelUnavailable(f"cannot read {path} ({exc}); run `python train.py`") from exc
        built_with = header.get("sklearn_version")
        if built_with != sklearn.__version__:
            raise ModelUnavailable(
                f"{path} was built with scikit-learn {built_with} but {sklearn.__version__} "
                "is installed; run `python train.py` to retrain it"
            )
        with open(path, "rb") as fh:
            pickle.load(fh)
            body = pickle.load(fh)
        return cls(header, body["pipeline"], body["overrides"])

    def predict(self, texts):
        """(label, score, probabilities) for each text, in order."""
        return [(label, score, dict(zip(LABELS, probabilities)))
                for label, score, *probabilities in self.predict_rows(texts)]

    def predict_rows(self, texts):
        """(label, score, p_negative, p_neutral, p_positive) for each text,
        in order, as a prediction is stored: the label the most probable
        (the first of equals), the score p_positive + p_neutral / 2. Worked
        out for all the texts at once in numpy, where a loop over the texts
        with a dict each took 1.1 us per text (0.25 now)."""
        normalized = [normalize(text) for text in texts]
        matrix = self.predict_proba(texts, normalized)
        if self._order is not None:
            matrix = matrix[:, self._order]
        if len(texts) == 1:
            return [self._one_row(matrix[0].tolist(), normalized[0])]
        # float64 as Python's floats: the same sums as p[2] + p[1] / 2 in Python.
        matrix = matrix.astype(np.float64)
        overrides = self.overrides
        if overrides:
            for row, norm in enumerate(normalized):
                corrected = overrides.get(norm)
                if corrected is not None:
                    # A person labelled this very text: their answer stands.
                    matrix[row] = [1.0 if label == corrected else 0.0 for label in LABELS]
        labels = [LABELS[best] for best in matrix.argmax(axis=1).tolist()]
        scores = (matrix[:, 2] + matrix[:, 1] / 2).tolist()
        return list(zip(labels, scores, *matrix.T.tolist()))

    def _one_row(self, probabilities, normalized):
        """predict_rows of one text from its probabilities as Python floats
        (float64, as astype gives them): the same sums and the same first
        of equals as the numpy way, without its dozen calls (15 us)."""
        corrected = self.overrides.get(normalized) if self.overrides else None
        if corrected is not None:
            probabilities = [1.0 if label == corrected else 0.0 for label in LABELS]
        best = probabilities.index(max(probabilities))
        return (LABELS[best], probabilities[2] + probabilities[1] / 2, *probabilities)


class ModelHolder:
    """Holds the current model for one process and swaps in a new file.

    Every worker process has its own holder; each looks at the file's
    identity at most every `check_interval` seconds, so a retrain reaches
    all workers without a restart or any coordination between them.
    """

    def __init__(self, path, check_interval=1.0, load=True):
        self.path = path
        self.check_interval = check_interval
        self._model = None
        self._error = None
        self._stamp = None
        self._checked = 0.0
        self._lock = threading.Lock()
        if load:
            self._reload_if_changed(force=True)

    def _file_stamp(self):
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _reload_if_changed(self, force=False):
        now = time.monotonic()
        if not force and now - self._checked < self.check_interval:
            return
        with self._lock:
            if not force and now - self._checked < self.check_interval:
                return
            self._checked = now
            stamp = self._file_stamp()
            if stamp == self._stamp and not force:
                return
            self._stamp = stamp
            try:
                model = SentimentModel.load(self.path)
            except Exception as exc:  # any unreadable file must not take the service down
                message = str(exc) if isinstance(exc, ModelUnavailable) else (
                    f"cannot load {self.path} ({exc.__class__.__name__}: {exc}); run `python train.py`")
                if self._model is None:
                    self._error = message
                    log.error("model not loaded: %s", message)
                else:
                    log.error("kept model %s; new file not loaded: %s", self._model.version, message)
                return
            if self._model is None or model.version != self._model.version:
                log.info("loaded model %s from %s", model.version, self.path)
            self._model, self._error = model, None

    def get(self):
        """The current model, or ModelUnavailable saying why there is none."""
        self._reload_if_changed()
        if self._model is None:
            raise ModelUnavailable(self._error or "no model loaded")
        return self._model
