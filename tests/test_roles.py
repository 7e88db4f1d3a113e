"""Who may do what: every endpoint for no user, a `user`, and an `admin`
(the bootstrap administrator and an admin from the database)."""
import pytest

from conftest import AUTH, add_user, basic, csrf_token

USER_PW = "user-password-1"
OTHER_PW = "other-password-2"
ADMIN_PW = "admin-password-3"


@pytest.fixture
def people(app):
    """Headers for: a user, another user, a database admin, the bootstrap admin."""
    return {
        "user": add_user(app, "ana", USER_PW),
        "other": add_user(app, "ben", OTHER_PW),
        "admin": add_user(app, "carla", ADMIN_PW, role="admin"),
        "bootstrap": AUTH,
    }


def predict(client, headers, text="me encanta"):
    response = client.post("/predict", json={"text": text}, headers=headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["id"]


# (method, path, JSON body) with PID standing for a prediction of "ana" and
# FID for a feedback on it.
ENDPOINTS = [
    ("post", "/predict", {"text": "hola"}),
    ("post", "/feedback", {"prediction_id": "PID", "label": "neutral"}),
    ("get", "/predictions", None),
    ("get", "/predictions?username=ben", None),
    ("get", "/", None),
    ("get", "/p/PID", None),
    ("get", "/feedback", None),
    ("get", "/feedback/export", None),
    ("post", "/feedback/FID/reject", {}),
    ("get", "/users", None),
    ("post", "/users", {"username": "dora", "password": "dora-password", "role": "user"}),
    ("patch", "/users/ben", {"role": "user"}),
    ("delete", "/users/ben", None),
]

# What each role gets: admin-only endpoints answer 403 to a user.
EXPECTED = {
    "user": [200, 200, 200, 403, 200, 200, 403, 403, 403, 403, 403, 403, 403],
    "admin": [200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 201, 200, 204],
}


@pytest.fixture
def ids(client, people):
    pid = predict(client, people["user"])
    response = client.post("/feedback", json={"prediction_id": pid, "label": "positive"},
                           headers=people["user"])
    assert response.status_code == 201
    return pid, response.get_json()["id"]


def call(client, method, path, body, headers, ids):
    pid, fid = ids
    path = path.replace("PID", str(pid)).replace("FID", str(fid))
    if isinstance(body, dict):
        body = {k: (pid if v == "PID" else v) for k, v in body.items()}
    kwargs = {"headers": headers}
    if body is not None:
        kwargs["json"] = body
    return getattr(client, method)(path, **kwargs)


@pytest.mark.parametrize("index", range(len(ENDPOINTS)), ids=[f"{m} {p}" for m, p, _ in ENDPOINTS])
def test_every_endpoint_for_no_user_a_user_and_an_admin(client, people, ids, count_rows, index):
    method, path, body = ENDPOINTS[index]
    before = count_rows()
    anonymous = call(client, method, path, body, {}, ids)
    assert anonymous.status_code == 401
    assert count_rows() == before

    as_user = call(client, method, path, body, people["user"], ids)
    assert as_user.status_code == EXPECTED["user"][index], as_user.get_data(as_text=True)
    if as_user.status_code == 403:
        assert "forbidden" in as_user.get_json()["error"]

    for admin in ("admin", "bootstrap"):
        if method == "delete" or path == "/users" and method == "post":
            if admin == "bootstrap":
                continue  # already done once: the user is gone / exists
        as_admin = call(client, method, path, body, people[admin], ids)
        assert as_admin.status_code == EXPECTED["admin"][index], as_admin.get_data(as_text=True)


def test_a_user_lists_only_their_own_predictions_an_admin_everyones(client, people):
    mine = predict(client, people["user"], "mi texto")
    theirs = predict(client, people["other"], "su texto")
    listed = client.get("/predictions", headers=people["user"]).get_json()
    assert [i["id"] for i in listed["items"]] == [mine] and listed["total"] == 1
    everyone = client.get("/predictions", headers=people["admin"]).get_json()
    assert {i["id"] for i in everyone["items"]} == {mine, theirs}
    only_ben = client.get("/predictions?username=ben", headers=people["admin"]).get_json()
    assert [i["id"] for i in only_ben["items"]] == [theirs]


def test_a_user_cannot_correct_or_view_someone_elses_prediction(client, people, count_rows):
    theirs = predict(client, people["other"], "su texto")
    response = client.post("/feedback", json={"prediction_id": theirs, "label": "negative"},
                           headers=people["user"])
    assert response.status_code == 403
    assert count_rows() == (1, 0)
    page = client.get(f"/p/{theirs}", headers=people["user"])
    assert page.status_code == 403 and "text/html" in page.content_type
    token = csrf_token(client, people["user"])
    form = client.post(f"/p/{theirs}/feedback", data={"label": "negative", "csrf_token": token},
                       headers=people["user"])
    assert form.status_code == 403
    assert count_rows() == (1, 0)
    # The admin may correct anyone's.
    assert client.post("/feedback", json={"prediction_id": theirs, "label": "negative"},
                       headers=people["admin"]).status_code == 201


def test_feedback_records_who_gave_it_and_their_role(client, people):
    pid = predict(client, people["user"])
    given = client.post("/feedback", json={"prediction_id": pid, "label": "neutral"},
                        headers=people["user"]).get_json()
    assert given["username"] == "ana" and given["role"] == "user" and given["rejected"] is False
    listed = client.get("/feedback", headers=people["admin"]).get_json()
    assert listed["items"][0]["text"] == "me encanta" and listed["items"][0]["role"] == "user"


def test_admin_manages_users_over_the_api(client, people):
    dora = basic("dora", "dora-password")
    created = client.post("/users", json={"username": "dora", "password": "dora-password"},
                          headers=people["admin"])
    assert created.status_code == 201 and created.get_json()["role"] == "user"
    assert client.post("/predict", json={"text": "hola"}, headers=dora).status_code == 200
    again = client.post("/users", json={"username": "dora", "password": "dora-password"},
                        headers=people["admin"])
    assert again.status_code == 409
    # Disabled: refused from the next request on, even with a cached check.
    assert client.patch("/users/dora", json={"active": False},
                        headers=people["admin"]).status_code == 200
    assert client.post("/predict", json={"text": "hola"}, headers=dora).status_code == 401
    # Promoted and enabled: now an admin.
    client.patch("/users/dora", json={"active": True, "role": "admin"}, headers=people["admin"])
    assert client.get("/users", headers=dora).status_code == 200
    # A new password replaces the old one at once.
    client.patch("/users/dora", json={"password": "another-password"}, headers=people["admin"])
    assert client.get("/users", headers=dora).status_code == 401
    assert client.get("/users", headers=basic("dora", "another-password")).status_code == 200
    assert client.delete("/users/dora", headers=people["admin"]).status_code == 204
    assert client.get("/users", headers=basic("dora", "another-password")).status_code == 401
    assert client.delete("/users/dora", headers=people["admin"]).status_code == 404


@pytest.mark.parametrize("body, status", [
    ({"username": "x", "password": "short"}, 400),
    ({"username": "", "password": "long-enough"}, 400),
    ({"username": "a:b", "password": "long-enough"}, 400),
    ({"username": " pad", "password": "long-enough"}, 400),
    ({"username": "x" * 151, "password": "long-enough"}, 400),
    ({"username": "nul\x00", "password": "long-enough"}, 400),
    ({"username": 5, "password": "long-enough"}, 400),
    ({"username": "x", "password": "long-enough", "role": "root"}, 400),
    ({"username": "tester", "password": "long-enough"}, 409),
])
def test_bad_user_creation_is_refused_and_stores_nothing(client, people, body, status):
    response = client.post("/users", json=body, headers=people["admin"])
    assert response.status_code == status
    assert len(client.get("/users", headers=people["admin"]).get_json()["users"]) == 4


def test_a_bad_patch_changes_nothing(client, people):
    response = client.patch("/users/ben", json={"role": "admin", "active": "no"},
                            headers=people["admin"])
    assert response.status_code == 400
    ben = [u for u in client.get("/users", headers=people["admin"]).get_json()["users"]
           if u["username"] == "ben"][0]
    assert ben["role"] == "user" and ben["active"] is True
