"""The model held in memory: load, verify, predict, and reload when the
file on disk is replaced by a newer one."""
import logging
import os
import pickle
import threading
import time

import sklearn

from . import LABELS
from .text import normalize

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


class SentimentModel:
    """A trained pipeline plus the corrections people gave for exact texts."""

    def __init__(self, header, pipeline, overrides):
        self.header = header
        self.version = header["version"]
        self.pipeline = pipeline
        self.overrides = overrides
        classes = list(pipeline.classes_)
        self._order = [classes.index(label) for label in LABELS]

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
        matrix = self.pipeline.predict_proba(list(texts))
        results = []
        for text, row in zip(texts, matrix):
            probs = [float(row[i]) for i in self._order]
            corrected = self.overrides.get(normalize(text))
            if corrected is not None:
                # A person labelled this very text: their answer stands.
                probs = [1.0 if label == corrected else 0.0 for label in LABELS]
            best = max(range(len(LABELS)), key=probs.__getitem__)
            results.append((
                LABELS[best],
                probs[2] + probs[1] / 2,
                dict(zip(LABELS, probs)),
            ))
        return results


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
