"""Build of the engine's compiled kernels (everything else is configured in pyproject.toml).

``pip install -e .`` (``make install``) compiles ``streams/engine/_kernels.c`` next to its source;
``python setup.py build_ext --inplace`` does the same by hand after editing it. The extension is
optional: without a compiler the install goes on, and the engine computes with its Python
reference kernels (``streams.engine.kernels`` says so in one warning).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "streams.engine._kernels",
            sources=["streams/engine/_kernels.c"],
            # -ffp-contract=off: no fused multiply-adds, so every clone of a loop rounds alike
            extra_compile_args=[
                "-O3",
                "-fno-math-errno",
                "-fcx-limited-range",
                "-ffp-contract=off",
                "-Wall",
                "-Wno-unused-label",
            ],
            libraries=["m"],
            optional=True,
        )
    ]
)
