"""Every endpoint but /health needs HTTP Basic credentials."""
import base64
import os
import stat

import pytest

from sentiment.auth import curl_hint

from conftest import AUTH, PASSWORD, USERNAME, basic

PROTECTED = [("post", "/predict"), ("post", "/feedback"), ("get", "/predictions"),
             ("get", "/"), ("post", "/"), ("get", "/p/1"), ("post", "/p/1/feedback")]


@pytest.mark.parametrize("method, path", PROTECTED)
@pytest.mark.parametrize("headers", [
    {},
    basic(USERNAME, "wrong"),
    basic("someone", PASSWORD),
    basic("", ""),
    {"Authorization": "Basic not-base64!!"},
    {"Authorization": "Bearer abc"},
], ids=["none", "wrong-password", "wrong-user", "empty", "garbage", "bearer"])
def test_protected_endpoints_refuse_bad_credentials(client, count_rows, method, path, headers):
    response = getattr(client, method)(path, headers=headers, json={"text": "hola"})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert count_rows() == (0, 0)


def test_non_ascii_credentials_get_401_not_500(client):
    latin1 = base64.b64encode("usuário:contraseña".encode("latin-1")).decode()
    for headers in (basic("usuário", "contraseña"), {"Authorization": f"Basic {latin1}"}):
        response = client.post("/predict", json={"text": "hola"}, headers=headers)
        assert response.status_code == 401


def test_non_ascii_password_works_when_it_is_the_password(make_app):
    client = make_app(BASIC_AUTH_USERNAME="josé", BASIC_AUTH_PASSWORD="contraseña-ñ").test_client()
    assert client.post("/predict", json={"text": "hola"}, headers=basic("josé", "contraseña-ñ")).status_code == 200
    assert client.post("/predict", json={"text": "hola"}, headers=basic("jose", "contraseña-ñ")).status_code == 401


def test_health_is_open(client):
    assert client.get("/health").status_code == 200


def test_generated_password_is_private_and_reused(make_app, tmp_path, capsys):
    first = make_app(BASIC_AUTH_PASSWORD=None)
    path = os.path.join(first.instance_path, "admin-password")
    assert os.path.exists(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with open(path) as fh:
        password = fh.read().strip()
    assert len(password) >= 24
    err = capsys.readouterr().err
    assert path in err and password not in err
    client = first.test_client()
    assert client.post("/predict", json={"text": "hola"},
                       headers=basic(USERNAME, password)).status_code == 200
    assert client.post("/predict", json={"text": "hola"}, headers=AUTH).status_code == 401
    second = make_app(BASIC_AUTH_PASSWORD=None)
    assert second.config["BASIC_AUTH_PASSWORD"] == password


def test_the_curl_hint_names_the_servers_own_address(make_app):
    """`python app.py` prints a curl command for the generated password with
    the address it listens on (PORT=5078: port 5078, not 5000); with the
    password from the environment there is none."""
    app = make_app(BASIC_AUTH_PASSWORD=None)
    hint = curl_hint(app, "http://127.0.0.1:5078")
    path = os.path.join(app.instance_path, "admin-password")
    assert hint == (f"  Try: curl -u {USERNAME}:$(cat {path}) -X POST "
                    "'http://127.0.0.1:5078/predict?text=me%20encanta'")
    assert curl_hint(make_app(), "http://127.0.0.1:5078") is None
