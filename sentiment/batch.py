"""Batch in the browser: upload a CSV or text file, get a CSV of answers.

Without JavaScript the form posts the file and gets the CSV back. With
JavaScript, static/batch.js asks /batch/texts for the file's texts, sends
them to /predict in chunks and shows the progress; both paths read the file
with read_texts() below, so they accept and refuse the same files.
"""
import csv
import io
import os

from flask import Blueprint, Response, current_app, jsonify, render_template, request
from flask_babel import format_number, gettext as _

from .errors import BadInput
from .service import check_text, predict_and_store

bp = Blueprint("batch", __name__)

COLUMNS = ("text", "label", "score", "p_negative", "p_neutral", "p_positive")


def read_texts(upload):
    """The texts in an uploaded file, or BadInput with a readable reason.

    A .csv file gives its `text` column (or the first column when no header
    cell is called "text"); any other file gives one text per line. Blank
    rows are skipped.
    """
    if upload is None or not upload.filename:
        raise BadInput(_("Choose a file to upload."))
    raw = upload.read()
    if not raw.strip():
        raise BadInput(_("The file is empty."))
    try:
        # utf-8-sig: spreadsheet programs often start a CSV with a BOM.
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadInput(_("The file is not UTF-8 text. Save it as UTF-8 (in a spreadsheet: "
                         "CSV UTF-8) and upload it again.")) from None
    if os.path.splitext(upload.filename)[1].lower() == ".csv":
        texts = _csv_texts(content)
    else:
        texts = [(n, line) for n, line in enumerate(content.splitlines(), 1)]
    texts = [(n, t) for n, t in texts if t.strip()]
    if not texts:
        raise BadInput(_("The file has no texts."))
    limit = current_app.config["MAX_UPLOAD_ROWS"]
    if len(texts) > limit:
        raise BadInput(_("The file has %(count)s texts; at most %(limit)s are allowed per file.",
                         count=format_number(len(texts)), limit=format_number(limit)))
    checked = []
    for n, text in texts:
        try:
            checked.append(check_text(text))
        except BadInput as exc:
            raise BadInput(_("Row %(row)s: %(reason)s", row=n, reason=exc.message)) from None
    return checked


def _csv_texts(content):
    """(line number, text) pairs from CSV content."""
    try:
        rows = list(csv.reader(io.StringIO(content, newline="")))
    except csv.Error as exc:
        raise BadInput(_("The CSV file cannot be read: %(reason)s", reason=str(exc))) from None
    rows = [(n, row) for n, row in enumerate(rows, 1) if row]
    if not rows:
        return []
    header = [cell.strip().lower() for cell in rows[0][1]]
    column = 0
    if "text" in header:
        column = header.index("text")
        rows = rows[1:]
    return [(n, row[column] if column < len(row) else "") for n, row in rows]


def label_all(texts):
    """Predict and store every text, MAX_BATCH_SIZE at a time."""
    size = current_app.config["MAX_BATCH_SIZE"]
    rows = []
    for start in range(0, len(texts), size):
        chunk, _version = predict_and_store(texts[start:start + size])
        rows.extend(chunk)
    return rows


def to_csv(rows):
    """The answers as CSV text with the COLUMNS header."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([row.text, row.label, f"{row.score:.4f}", f"{row.p_negative:.4f}",
                         f"{row.p_neutral:.4f}", f"{row.p_positive:.4f}"])
    return out.getvalue()


def result_name(filename):
    """The download's file name: the upload's name with -sentiment.csv."""
    stem = os.path.splitext(os.path.basename(filename or "texts"))[0]
    # ASCII only, as static/batch.js does: a plain header needs no encoding.
    stem = "".join(c for c in stem if c.isascii() and (c.isalnum() or c in "-_")) or "texts"
    return f"{stem}-sentiment.csv"


@bp.get("/batch")
def form():
    """The upload form."""
    return render_template("batch.html")


@bp.post("/batch")
def upload():
    """Label every text in the uploaded file and send back the CSV."""
    upload = request.files.get("file")
    try:
        texts = read_texts(upload)
    except BadInput as exc:
        return render_template("batch.html", error=exc.message), exc.status
    rows = label_all(texts)
    return Response(to_csv(rows), mimetype="text/csv",
                    headers={"Content-Disposition":
                             f'attachment; filename="{result_name(upload.filename)}"'})


@bp.post("/batch/texts")
def texts():
    """The file's texts as JSON, for the page's chunked upload; nothing is
    stored here."""
    try:
        found = read_texts(request.files.get("file"))
    except BadInput as exc:
        return jsonify(error=exc.message), exc.status
    return jsonify(texts=found, chunk=current_app.config["MAX_BATCH_SIZE"])
