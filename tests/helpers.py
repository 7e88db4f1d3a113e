"""Small tools the tests share."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A corpus small enough to train in a second, for tests that need a model
# other than the shipped one (the shipped one is trained on everything).
TINY_CORPUS = """text,label,lang
me encanta este lugar,positive,es
qué maravilla de atención,positive,es
lo recomiendo muchísimo,positive,es
una experiencia genial,positive,es
odio esperar tanto,negative,es
un desastre total,negative,es
no vuelvo nunca más,negative,es
pésimo servicio,negative,es
abre a las nueve,neutral,es
el paquete llegó el martes,neutral,es
la reunión es mañana,neutral,es
queda en la calle mayor,neutral,es
fue un día feliz,positive,es
qué rabia me dio,negative,es
son las cinco,neutral,es
i love it,positive,en
absolutely wonderful,positive,en
great value for money,positive,en
best day ever,positive,en
terrible service,negative,en
i hate this,negative,en
worst purchase ever,negative,en
broken on arrival,negative,en
the store opens at nine,neutral,en
the meeting is on monday,neutral,en
it ships from madrid,neutral,en
the box is blue,neutral,en
what a lovely surprise,positive,en
awful and rude staff,negative,en
the bus leaves at noon,neutral,en
"""


def write_tiny_corpus(path):
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(TINY_CORPUS)
    return str(path)


def run_train(*args, env=None):
    """Run `python train.py ARGS` as a user would; returns the CompletedProcess."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([sys.executable, os.path.join(ROOT, "train.py"), *args],
                          cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=600)
