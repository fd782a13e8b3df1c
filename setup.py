"""The one compiled part: the line sift that lets a report decode a quarter of a transcript's bytes.

``optional=True``: where no C compiler is at hand the build goes on, and ``tokenomy.sources._sift``
falls back to its pure-Python reference (same output, slower).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "tokenomy.sources._csift",
            ["tokenomy/sources/_csift.c"],
            optional=True,
            extra_compile_args=["-O2"],
        )
    ]
)
