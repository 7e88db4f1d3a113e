"""Locust load test: what people do with the service.

Credentials come from the environment, never from this file:

    export SENTIMENT_USER=admin SENTIMENT_PASSWORD="$(cat instance/admin-password)"
    .venv/bin/locust -f stress_test/locustfile.py --host http://127.0.0.1:8000 \
        --headless --users 32 --spawn-rate 8 --run-time 60s --only-summary

(`pip install -r requirements-load.txt` installs Locust.) Without --headless,
Locust serves its web UI on http://127.0.0.1:8089 (add --web-host 127.0.0.1).
Only point it at a server you run: it stores every prediction it makes.
"""
import os
import random

from locust import HttpUser, between, task

TEXTS = [
    "No está nada mal, lo recomiendo",
    "Qué desastre de servicio, no vuelvo nunca más",
    "El tren sale de la estación a las ocho y cuarto",
    "Me encantó la película, la volvería a ver mil veces",
    "La atención fue lenta pero la comida estaba buenísima",
    "Che, ¿a qué hora abre el súper mañana?",
    "I absolutely love this, best purchase ever",
    "This is the worst support I have ever dealt with",
    "The package arrived on Tuesday",
    "not bad at all, would buy again 👍",
    "meh",
    "Pésimo, llegó roto y nadie contesta 😡",
]
LABELS = ("negative", "neutral", "positive")


def credentials():
    user = os.environ.get("SENTIMENT_USER", "admin")
    password = os.environ.get("SENTIMENT_PASSWORD")
    if not password:
        raise SystemExit("set SENTIMENT_PASSWORD (and SENTIMENT_USER, default admin) "
                         "to the service's Basic auth credentials")
    return user, password


class SentimentUser(HttpUser):
    """Someone (or a script) using the page and the API, with short pauses."""

    wait_time = between(0.1, 0.5)

    def on_start(self):
        self.client.auth = credentials()
        self.prediction_ids = []

    @task(2)
    def open_page(self):
        self.client.get("/", name="GET / (page)")

    @task(10)
    def predict_one(self):
        with self.client.post("/predict", json={"text": random.choice(TEXTS)},
                              name="POST /predict (1 text)", catch_response=True) as response:
            if response.status_code == 200:
                self.prediction_ids.append(response.json()["id"])
                del self.prediction_ids[:-100]
                response.success()
            else:
                response.failure(f"{response.status_code}: {response.text[:200]}")

    @task(1)
    def predict_batch(self):
        texts = [random.choice(TEXTS) for _ in range(100)]
        self.client.post("/predict", json={"texts": texts}, name="POST /predict (100 texts)")

    @task(3)
    def give_feedback(self):
        if not self.prediction_ids:
            return
        self.client.post("/feedback", json={"prediction_id": random.choice(self.prediction_ids),
                                            "label": random.choice(LABELS)},
                         name="POST /feedback")

    @task(1)
    def list_predictions(self):
        self.client.get("/predictions?per_page=20", name="GET /predictions")
