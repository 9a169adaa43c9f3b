"""sert: Self-Enhanced Reasoning Training as a reproducible data-and-model build.

The library never reads ``params.yaml``: the DVC stages in ``stages/`` do, validate it
into the typed configs defined here, and pass them in.
"""

__version__ = "0.1.0"
