"""The JSON answers are written by orjson (sentiment/jsonanswers.py): the
same JSON as Flask's own provider, for everything the app answers."""
import dataclasses
import datetime
import json
import uuid

from flask import jsonify
from flask.json.provider import DefaultJSONProvider
from markupsafe import Markup

from conftest import AUTH


def flask_own(app, *args, **kwargs):
    """What Flask's provider answers for the same arguments."""
    with app.test_request_context():
        return DefaultJSONProvider(app).response(*args, **kwargs)


def test_a_batch_answer_is_the_json_flask_would_write(app, client):
    texts = ["Me encantó, ¡qué buen servicio! 😍", "not bad at all", "Ñandú — “comillas”"]
    response = client.post("/predict", json={"texts": texts}, headers=AUTH)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    body = response.get_data()
    # UTF-8 rather than \u escapes, compact, keys sorted, a newline at the end.
    assert "Ñandú".encode() in body and b"\\u" not in body
    assert body.endswith(b"}\n") and b'": ' not in body and b'":' in body
    answer = json.loads(body, object_pairs_hook=lambda pairs: [key for key, _ in pairs])
    assert answer == sorted(answer)
    parsed = json.loads(body)
    assert [p["text"] for p in parsed["predictions"]] == texts
    assert parsed == json.loads(flask_own(app, parsed).get_data())


def test_types_orjson_writes_otherwise_are_written_as_flask_does(app):
    @dataclasses.dataclass
    class Point:
        x: int

    class Name(str):
        pass

    values = {"when": datetime.datetime(2026, 12, 3, 19, 0, 5), "day": datetime.date(2026, 12, 3),
              "point": Point(3), "name": Name("ana"), "markup": Markup("<b>x</b>"),
              "id": uuid.UUID(int=5), "list": [1.5, None, True, "ü"]}
    # Each alone too: one value orjson refuses sends the whole answer to
    # Flask's provider, which would hide what orjson does with the others.
    for answer in [values, *({key: value} for key, value in values.items()), {"big": 2**70}]:
        with app.test_request_context():
            ours = jsonify(answer)
        assert json.loads(ours.get_data()) == json.loads(flask_own(app, answer).get_data())
    assert json.loads(ours.get_data()) == {"big": 2**70}
    with app.test_request_context():
        assert jsonify(values).get_json()["when"] == "Thu, 03 Dec 2026 19:00:05 GMT"


def test_debug_answers_are_indented(make_app):
    app = make_app(DEBUG=True)
    app.debug = True
    with app.test_request_context():
        body = jsonify({"b": 1, "a": [2]}).get_data()
    assert body == b'{\n  "a": [\n    2\n  ],\n  "b": 1\n}\n'
