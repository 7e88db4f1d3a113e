"""Builds the C modules, sentiment/_decision.c, sentiment/_words.c and
sentiment/_normalize.c, in place: `pip install -e .` (which requirements.txt does). Optional: without a
C compiler the install goes on, and the model does the same work in numpy
and Python (sentiment/model.py)."""
from setuptools import Extension, setup

setup(
    name="sentiment-api",
    version="0",
    packages=["sentiment"],
    ext_modules=[Extension(
        "sentiment._decision", ["sentiment/_decision.c"],
        # Separate multiplies and adds, as scipy's loop does (bit for bit).
        extra_compile_args=["-O2", "-ffp-contract=off", "-fno-fast-math"],
        optional=True,
    ), Extension(
        "sentiment._words", ["sentiment/_words.c"],
        extra_compile_args=["-O2"],
        optional=True,
    ), Extension(
        "sentiment._normalize", ["sentiment/_normalize.c"],
        extra_compile_args=["-O2"],
        optional=True,
    )],
)
