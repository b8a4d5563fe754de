"""linalgformer: transformers that learn numerical linear algebra."""

__version__ = "0.1.0"
