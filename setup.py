"""Builds the one C module, sentiment/_decision.c, in place:
`pip install -e .` (which requirements.txt does). Optional: without a C
compiler the install goes on, and the model does the same arithmetic in
numpy (sentiment/model.py)."""
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
    )],
)
