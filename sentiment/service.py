"""What the API and the page both do: validate, predict and store, give feedback."""
import contextlib
import functools
import re
from datetime import datetime
from itertools import chain
from types import SimpleNamespace

from flask import current_app, g
from sqlalchemy import bindparam, insert
from sqlalchemy.exc import DBAPIError, IntegrityError

from . import LABELS
from .db import Feedback, Prediction, db, feedback_shown, utcnow
from .errors import BadInput
from .model import ModelUnavailable
from .walcheckpoint import checkpointer_of
from .writelock import writing

# Ids are INTEGER columns: PostgreSQL refuses a larger number in a query
# ("integer out of range"), so anything beyond cannot exist and is a 404.
MAX_ID = 2**31 - 1


def model_holder():
    return current_app.extensions["sentiment_model"]


def check_text(value, name="text"):
    """The text, or BadInput saying what is wrong with it."""
    if value is None:
        raise BadInput(f"missing '{name}'")
    if not isinstance(value, str):
        raise BadInput(f"'{name}' must be a string")
    if not value.strip():
        raise BadInput(f"'{name}' is empty")
    limit = current_app.config["MAX_TEXT_LENGTH"]
    if len(value) > limit:
        raise BadInput(f"'{name}' is longer than {limit} characters ({len(value)})")
    if "\x00" in value:
        raise BadInput(f"'{name}' contains a NUL character")
    if not _encodes(value):
        raise BadInput(f"'{name}' is not valid Unicode (unpaired surrogate)")
    return value


def check_texts(value):
    """A list of 1 to MAX_BATCH_SIZE valid texts."""
    if not isinstance(value, list):
        raise BadInput("'texts' must be a list of strings")
    limit = current_app.config["MAX_BATCH_SIZE"]
    if not value:
        raise BadInput("'texts' is empty")
    if len(value) > limit:
        raise BadInput(f"'texts' has {len(value)} items; at most {limit} are allowed")
    longest = current_app.config["MAX_TEXT_LENGTH"]
    for i, text in enumerate(value):
        # What check_text accepts, in one expression for the texts of a
        # batch (a 100-text request: 2.2 -> 0.17 us per text); anything it
        # doubts goes through check_text for the error that names it.
        if not (type(text) is str and text and len(text) <= longest and not text.isspace()
                and "\x00" not in text and (text.isascii() or _encodes(text))):
            check_text(text, f"texts[{i}]")
    return value


def _encodes(text):
    """Whether the text is valid Unicode (no unpaired surrogate)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_label(value):
    """One of the three labels (case and surrounding blanks forgiven)."""
    if not isinstance(value, str) or value.strip().lower() not in LABELS:
        raise BadInput(f"'label' must be one of {', '.join(LABELS)}")
    return value.strip().lower()


def current_model():
    """The loaded model, or a 503 that tells the user to retrain."""
    try:
        return model_holder().get()
    except ModelUnavailable as exc:
        raise BadInput(f"no model is loaded: {exc}", status=503) from None


class StoredPrediction:
    """A prediction just stored: what the API answers, without an ORM object."""

    __slots__ = ("id", "text", "label", "score", "p_negative", "p_neutral", "p_positive",
                 "model_version")

    def __init__(self, id, text, label, score, p_negative, p_neutral, p_positive, model_version):
        self.id = id
        self.text = text
        self.label = label
        self.score = score
        self.p_negative = p_negative
        self.p_neutral = p_neutral
        self.p_positive = p_positive
        self.model_version = model_version

    # The same JSON as a Prediction read back from the database.
    to_dict = Prediction.to_dict


_PREDICTION = Prediction.__table__
# The columns a prediction row is stored with, in the order of its values.
_COLUMNS = ("text", "label", "score", "p_negative", "p_neutral", "p_positive",
            "model_version", "username", "created_at")


# Rows per INSERT statement on SQLite: nine parameters a row, under the 999
# that SQLite before 3.32 takes in one statement.
_SQLITE_ROWS_PER_INSERT = 100


class _Inserts:
    """The INSERT of prediction rows in the driver's own SQL for one engine.

    SQLAlchemy writes the statement once, from the table, for the engine's
    dialect; each request then hands the driver that string and plain
    values. On SQLite and PostgreSQL they go to the pooled driver connection
    itself (_alone): one row, or a batch as one statement (many rows of
    VALUES on SQLite, arrays on PostgreSQL). Other databases get them
    through a Connection. Compiling the statement's parameters on every
    call cost more than the SQLite INSERT itself, and SQLAlchemy's RETURNING
    for many rows in their order sends SQLite one statement per row: a
    100-text batch went from 1.5 to 0.7 ms of storing, then to 0.3 with
    the rows as one statement on the driver's connection.
    """

    def __init__(self, engine):
        dialect = engine.dialect
        self.sqlite = dialect.name == "sqlite"
        # One statement on PostgreSQL in autocommit (_alone).
        self.autocommit = dialect.name == "postgresql" and dialect.driver == "psycopg"
        statement = insert(_PREDICTION).values({name: bindparam(name) for name in _COLUMNS})
        if not self.sqlite:
            statement = statement.returning(_PREDICTION.c.id)
        compiled = statement.compile(dialect=dialect)
        self.sql = compiled.string
        if self.sqlite:
            # The INSERT of n rows is the part before VALUES and n times the
            # one row's "(?, ?, ...)"; made once for each n.
            self._sqlite_sql = {1: self.sql}
            self._sql_head, _, self._sql_row = self.sql.partition(" VALUES ")
            if not self._sql_row.startswith("(") or not compiled.positional:
                raise RuntimeError(f"unexpected SQLite INSERT: {self.sql}")
        order = compiled.positiontup if compiled.positional else None
        self.order = [_COLUMNS.index(name) for name in order] if order else None
        # What SQLAlchemy itself does to a value of each column on its way
        # to this driver (SQLite's datetimes become its text format).
        self.processors = [_PREDICTION.c[name].type.dialect_impl(dialect).bind_processor(dialect)
                           for name in _COLUMNS]
        self.many = insert(_PREDICTION).returning(_PREDICTION.c.id, sort_by_parameter_order=True)
        self.unnest = None
        if (dialect.name == "postgresql" and dialect.paramstyle == "pyformat"
                and not any(self.processors)):
            # Many rows as one array per column: psycopg adapts nine arrays
            # far faster than nine parameters per row (100 rows: 0.9 ms of
            # client CPU instead of 3.4 with SQLAlchemy's many-row VALUES).
            # In binary (%(name)b): an array's text form has psycopg search
            # every value with a regular expression for what to quote, and
            # the server parse it back (100 rows, twentieth round's machine:
            # 2.87 -> 0.65 ms of client CPU, 4.26 -> 1.74 ms to the answer).
            quote = dialect.identifier_preparer.quote
            names = ", ".join(map(quote, _COLUMNS))
            binary = "b" if dialect.driver == "psycopg" else "s"  # psycopg2 has no %b
            # Without the length: a cast to VARCHAR(n) would cut a longer
            # value short, where the INSERT itself refuses it.
            arrays = ", ".join(
                f"%({name}){binary}::{re.sub(r'[(].*[)]', '', _PREDICTION.c[name].type.compile(dialect))}[]"
                for name in _COLUMNS)
            self.unnest = (f"INSERT INTO {quote(_PREDICTION.name)} ({names}) SELECT {names} "
                           f"FROM unnest({arrays}) WITH ORDINALITY AS given({names}, position) "
                           f"ORDER BY position RETURNING {quote(_PREDICTION.c.id.name)}")
        # One row on PostgreSQL: a statement prepared once per connection,
        # its values in PostgreSQL's text format (_one_row_in_postgres).
        self.prepared = None
        if self.autocommit:
            # psycopg is imported only where it is the driver.
            from psycopg import errors, pq
            self.pq, self.psycopg_errors = pq, errors
            quote = dialect.identifier_preparer.quote
            self.prepared = (
                f"INSERT INTO {quote(_PREDICTION.name)} ({', '.join(map(quote, _COLUMNS))}) "
                f"VALUES ({', '.join(f'${n}' for n in range(1, len(_COLUMNS) + 1))}) "
                f"RETURNING {quote(_PREDICTION.c.id.name)}").encode()
        self.engine = engine
        self.driver_error = dialect.loaded_dbapi.Error
        self.checkpointer = checkpointer_of(engine)

    def parameters(self, values):
        """One row's values (in _COLUMNS order) as the driver takes them."""
        values = [value if process is None else process(value)
                  for value, process in zip(values, self.processors)]
        if self.order is not None:
            return tuple(values[i] for i in self.order)
        return dict(zip(_COLUMNS, values))

    def many_parameters(self, rows):
        """parameters() of every row. A column whose values are all one
        object (a batch's timestamp, model version and user) goes through
        SQLAlchemy's processing once, not once per row. (One object, not
        equal values: equal datetimes in other time zones, or 0.0 and -0.0,
        are processed into different parameters.)"""
        if self.order is None or not rows:
            return [self.parameters(row) for row in rows]
        columns = list(zip(*rows))
        for index, process in enumerate(self.processors):
            if process is None:
                continue
            column = columns[index]
            first = column[0]
            if all(value is first for value in column):
                columns[index] = (process(first),) * len(column)
            else:
                columns[index] = tuple(map(process, column))
        return list(zip(*(columns[i] for i in self.order)))

    def store(self, rows):
        """Insert rows (tuples in _COLUMNS order), all of them or none; their
        ids, in the order of the rows."""
        if not rows:
            return []
        if self.sqlite:
            return self._store_in_sqlite(rows)
        if len(rows) == 1 and self.autocommit:
            values = _postgres_text(rows[0])
            stored = None if values is None else self._one_row_in_postgres(values, rows[0])
            if stored is not None:
                return [stored]
            return [self._alone([(self.sql, self.parameters(rows[0]))], _first_value)]
        if self.unnest is not None:
            # The rows are inserted in the order of their position, and
            # each takes the next value of the id sequence, which only
            # grows: their ids, smallest first, are in the rows' order.
            columns = dict(zip(_COLUMNS, map(list, zip(*rows))))
            if self.autocommit:
                # One statement: all the rows or none, without a transaction
                # of its own (BEGIN and COMMIT are two more round trips).
                return sorted(row[0] for row in self._alone([(self.unnest, columns)], _all_rows))
            with self.engine.connect() as connection, connection.begin():
                return sorted(connection.exec_driver_sql(self.unnest, columns).scalars().all())
        # Another database: SQLAlchemy's many-row RETURNING, in order.
        with self.engine.connect() as connection, connection.begin():
            return connection.execute(
                self.many, [dict(zip(_COLUMNS, row)) for row in rows]).scalars().all()

    def _store_in_sqlite(self, rows):
        """store() on SQLite: each _SQLITE_ROWS_PER_INSERT rows one INSERT
        with that many rows of VALUES, in one transaction. (executemany
        binds and steps the statement once per row: 100 rows of storing,
        3.4 -> 2.4 us per row on the driver alone.)"""
        parameters = self.many_parameters(rows) if len(rows) > 1 else [self.parameters(rows[0])]
        statements = []
        for start in range(0, len(parameters), _SQLITE_ROWS_PER_INSERT):
            chunk = parameters[start:start + _SQLITE_ROWS_PER_INSERT]
            sql = self._sqlite_sql.get(len(chunk))
            if sql is None:
                sql = self._sqlite_sql[len(chunk)] = (
                    f"{self._sql_head} VALUES {', '.join([self._sql_row] * len(chunk))}")
            statements.append((sql, list(chain.from_iterable(chunk))))
        # The transaction holds SQLite's only write lock from the first row
        # to the commit, the rows of VALUES go in in their order, and a new
        # row's id is the largest id + 1 (ids stay far below SQLite's limit,
        # where it would pick at random): the rows got the ids up to the
        # last one, in order.
        last = self._alone(statements, _new_rowid)
        return list(range(last - len(rows) + 1, last + 1))

    def _alone(self, statements, result):
        """(sql, parameters) statements on the pooled driver connection
        itself (SQLite, or one statement on PostgreSQL in autocommit),
        committed together; what result(cursor) makes of the last one. A
        SQLAlchemy Connection around it cost as
        much again as the INSERT and its commit (one-text predictions under
        load: +6-11 % on SQLite; on PostgreSQL the client's CPU per row went
        from 163-170 to 81-106 us). The driver's errors,
        opening the connection included, are raised as SQLAlchemy's, so they
        answer 503 like any other database error, and a connection the
        server dropped is thrown away rather than pooled again. What the
        Connection would add and this does without: statement events, echo
        and handle_error hooks."""
        raw = cursor = None
        sql, parameters = statements[0]
        try:
            raw = self.engine.raw_connection()
            cursor = raw.cursor()
            if self.sqlite:
                with writing(self.engine):
                    try:
                        for sql, parameters in statements:
                            cursor.execute(sql, parameters)
                        answer = result(cursor)
                        raw.commit()
                    except BaseException:
                        # Rolled back before the write lock goes to the next
                        # writer, which would otherwise wait on SQLite's
                        # lock (the pool would roll back only later).
                        with contextlib.suppress(Exception):
                            raw.rollback()
                        raise
                if self.checkpointer is not None:
                    # A commit SQLAlchemy's commit event does not see.
                    self.checkpointer.wrote()
            else:
                # One statement is a transaction by itself, committed before
                # the server answers: no BEGIN and COMMIT round trips.
                driver = raw.driver_connection
                driver.autocommit = True
                try:
                    [(sql, parameters)] = statements
                    cursor.execute(sql, parameters)
                    answer = result(cursor)
                finally:
                    if not driver.closed:
                        driver.autocommit = False
        except self.driver_error as exc:
            raise self._database_error(exc, raw, cursor, sql, parameters) from exc
        finally:
            if cursor is not None:
                cursor.close()
            if raw is not None:
                # Back to the pool, which rolls back anything left uncommitted.
                raw.close()
        return answer

    def _database_error(self, exc, raw, cursor, sql, parameters):
        """The driver's error `exc` as SQLAlchemy's (a 503, like any other
        database error), its connection `raw` (None if none was had) thrown
        away if the server dropped it, rather than pooled again."""
        if raw is not None and self.engine.dialect.is_disconnect(exc, raw.dbapi_connection,
                                                                  cursor):
            raw.invalidate(exc)
        return DBAPIError.instance(sql, parameters, exc, self.driver_error)

    def _one_row_in_postgres(self, values, row):
        """One row's INSERT on PostgreSQL through libpq itself (psycopg.pq),
        its id; None where the connection does not talk UTF-8, for the
        caller to go through psycopg's cursor.

        The INSERT is prepared once per connection; a statement outside a
        transaction is committed before the server answers, as in
        autocommit, and leaves the connection idle, as psycopg expects it.
        In one process, the worker's CPU for a one-row INSERT went from
        156 us (pool, autocommit switch, psycopg's cursor) to 45. Errors are
        psycopg's, made from the server's answer, and become SQLAlchemy's
        as _alone's do (_database_error).
        """
        raw = None
        try:
            raw = self.engine.raw_connection()
            pgconn = raw.driver_connection.pgconn
            for attempt in (1, 2):
                prepared = raw.info.get(_PREPARED)
                if prepared is None:
                    prepared = raw.info[_PREPARED] = self._prepare(pgconn)
                if not prepared:
                    return None
                result = pgconn.exec_prepared(_STATEMENT, values)
                if result.status == self.pq.ExecStatus.TUPLES_OK:
                    return int(result.get_value(0, 0))
                if (attempt == 1 and pgconn.status == self.pq.ConnStatus.OK
                        and result.error_field(self.pq.DiagnosticField.SQLSTATE) == b"26000"):
                    # The statement is gone (DEALLOCATE ALL): prepared again,
                    # and the INSERT, which never ran, tried once more.
                    del raw.info[_PREPARED]
                    continue
                raise self._psycopg_error(pgconn, result)
        except self.driver_error as exc:
            raise self._database_error(exc, raw, None, self.prepared.decode(), row) from exc
        finally:
            if raw is not None:
                raw.close()

    def _prepare(self, pgconn):
        """Prepare the one-row INSERT on this connection: True, or False if
        its client encoding is not UTF-8 (what _postgres_text writes)."""
        if pgconn.parameter_status(b"client_encoding") != b"UTF8":
            return False
        result = pgconn.prepare(_STATEMENT, self.prepared)
        if result.status != self.pq.ExecStatus.COMMAND_OK:
            raise self._psycopg_error(pgconn, result)
        return True

    def _psycopg_error(self, pgconn, result):
        """psycopg's exception for a failed result: the server's error, or
        OperationalError where the connection was lost (that answer has no
        SQLSTATE), as psycopg's cursor raises it."""
        if pgconn.status != self.pq.ConnStatus.OK:
            return self.psycopg_errors.OperationalError(pgconn.get_error_message())
        return self.psycopg_errors.error_from_result(result, encoding="utf-8")


# The one-row INSERT's name on each connection (psycopg's own are _pg3_*),
# and the key in the pool's info for that connection saying whether it is
# prepared there (that info is emptied when the connection is replaced).
_STATEMENT = b"sentiment_insert_prediction"
_PREPARED = "sentiment_insert_prediction"


def _postgres_text(row):
    """A row's values as PostgreSQL reads them in its text format, UTF-8;
    None for a row that psycopg should adapt instead: one with a NUL (which
    psycopg refuses and libpq would cut short), a datetime with a time zone,
    or a value that is not exactly a str, a float or a datetime. Floats
    keep every bit: repr() is the shortest text that reads back as the
    same double, and PostgreSQL reads it exactly."""
    text, label, score, p_negative, p_neutral, p_positive, version, username, at = row
    strings = (text, label, version, username)
    floats = (score, p_negative, p_neutral, p_positive)
    if (any(type(value) is not str or "\0" in value for value in strings)
            or any(type(value) is not float for value in floats)
            or type(at) is not datetime or at.tzinfo is not None):
        return None
    try:
        return [text.encode(), label.encode(), *(repr(value).encode() for value in floats),
                version.encode(), username.encode(), at.isoformat(" ").encode()]
    except UnicodeEncodeError:  # an unpaired surrogate: psycopg says so
        return None


def _new_rowid(cursor):
    return cursor.lastrowid


def _first_value(cursor):
    return cursor.fetchone()[0]


def _all_rows(cursor):
    return cursor.fetchall()


@functools.lru_cache(maxsize=8)
def _inserts(engine):
    """The engine's prediction INSERTs, made once per engine."""
    return _Inserts(engine)


def predict_and_store(texts):
    """Predict every text and store all of them in one transaction.

    Committed before it returns: an answer with an id is a stored row. The
    rows go in through SQLAlchemy Core, not the ORM: its unit of work and
    the reload of every row after commit cost more than the model itself.
    """
    model = current_model()
    version = model.version
    username = g.username
    now = utcnow()
    rows = [(text, *predicted, version, username, now)
            for text, predicted in zip(texts, model.predict_rows(texts))]
    ids = _inserts(db.engine).store(rows)
    return [StoredPrediction(id, *row[:7]) for id, row in zip(ids, rows)], version


def _checked_id(prediction_id):
    """The id if it can name a stored prediction, None if it cannot (a
    404), or BadInput if it is not an integer at all."""
    if isinstance(prediction_id, bool) or not isinstance(prediction_id, int):
        raise BadInput("'prediction_id' must be an integer")
    return prediction_id if 1 <= prediction_id <= MAX_ID else None


def _not_found(prediction_id):
    return BadInput(f"no prediction with id {prediction_id}", status=404)


def find_prediction(prediction_id):
    """The stored prediction, or a 404."""
    checked = _checked_id(prediction_id)
    prediction = None if checked is None else db.session.get(Prediction, checked)
    if prediction is None:
        raise _not_found(prediction_id)
    return prediction


def check_may_see(prediction):
    """A user sees and corrects only their own predictions; an admin, all.

    Feedback trains the next model, so a user must not be able to relabel
    what someone else asked: that is the admin's job. `prediction` needs
    only its id and username.
    """
    if g.role != "admin" and prediction.username != g.username:
        raise BadInput(f"forbidden: prediction {prediction.id} is another user's", status=403)
    return prediction


_FEEDBACK = Feedback.__table__
_OWNER = db.select(_PREDICTION.c.id, _PREDICTION.c.username, _PREDICTION.c.label).where(
    _PREDICTION.c.id == bindparam("id"))
# Only the columns given change: a user's feedback never writes `rejected`,
# so an admin's veto committed meanwhile stands.
_REPLACE = _FEEDBACK.update().where(
    _FEEDBACK.c.prediction_id == bindparam("target")).returning(
    _FEEDBACK.c.id, _FEEDBACK.c.created_at, _FEEDBACK.c.rejected)
_ADD = insert(_FEEDBACK).returning(_FEEDBACK.c.id)


@contextlib.contextmanager
def _feedback_statements(engine):
    """The connection give_feedback's statements run on.

    Its only writes are one UPDATE or one INSERT, never both, each a whole
    write by itself; the SELECT before them only reads who asked the
    prediction, which never changes. So outside SQLite they run in
    autocommit: a transaction around them added nothing but its BEGIN and
    COMMIT round trips. SQLite holds its write lock (sentiment/writelock.py)
    for all of them anyway and commits once.
    """
    with engine.connect() as connection:
        if engine.dialect.name != "sqlite":
            # Reset when the connection goes back to the pool.
            yield connection.execution_options(isolation_level="AUTOCOMMIT")
            return
        with writing(engine), connection.begin():
            yield connection


class StoredFeedback(SimpleNamespace):
    """Feedback just stored: its columns as attributes, shown as the API
    shows a Feedback row."""

    def to_dict(self):
        return feedback_shown(self, self.predicted_label)


def give_feedback(prediction_id, label):
    """Store the corrected label; returns (the feedback as the API shows it,
    created).

    A later feedback on the same prediction replaces the earlier one. In
    SQLAlchemy Core on a connection of its own: through the ORM (get, query,
    unit of work) the same statements cost three times a one-text
    prediction in one process.
    """
    label = check_label(label)
    checked = _checked_id(prediction_id)
    if checked is None:
        raise _not_found(prediction_id)
    engine = db.engine
    for _ in range(2):
        try:
            # The UPDATE sets only its columns, so what others commit
            # meanwhile (an admin's rejection) stays.
            with _feedback_statements(engine) as connection:
                prediction = connection.execute(_OWNER, {"id": checked}).first()
                if prediction is None:
                    raise _not_found(prediction_id)
                check_may_see(prediction)
                now = utcnow()
                changes = {"label": label, "username": g.username, "role": g.role,
                           "updated_at": now}
                values = dict(changes, prediction_id=checked)
                changes["target"] = checked
                if g.role == "admin":
                    # An admin's own correction is trusted; a user re-sending
                    # a rejected correction does not lift the rejection.
                    changes["rejected"] = False
                replaced = connection.execute(_REPLACE, changes).first()
                if replaced is None:
                    values.update(rejected=False, created_at=now)
                    values["id"] = connection.execute(_ADD, values).scalar_one()
                else:
                    values.update(id=replaced.id, created_at=replaced.created_at,
                                  rejected=replaced.rejected)
            return StoredFeedback(predicted_label=prediction.label, **values), replaced is None
        except IntegrityError:
            # Another request stored feedback for this prediction first:
            # replace theirs, as a later feedback would.
            continue
    raise BadInput("the feedback could not be stored, try again", status=409)
