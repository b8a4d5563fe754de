"""linalgformer: transformers that learn numerical linear algebra.

The Python API (:mod:`linalgformer.api`) is reachable from the package::

    import linalgformer as lf
    model = lf.load("eigenvalues-3x3")

It is loaded on first use: the API pulls in torch (about 3 s), which the command line and the
numpy-only modules (problems, tokens, matrices) do not need at start-up.

``lf.train`` is the API's function; the training loop is the module :mod:`linalgformer.training`.
"""

__version__ = "0.1.0"

API = ("Model", "Generated", "load", "train", "preset", "generate", "UserError")
__all__ = ["__version__", *API]


def __getattr__(name: str):
    if name not in API:
        raise AttributeError(f"module 'linalgformer' has no attribute {name!r}")
    from linalgformer import api  # the API imports torch: loaded on first use, not at start-up

    value = getattr(api, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *API])
