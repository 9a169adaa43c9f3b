"""Loading from the Hugging Face Hub (or any URL) through ``datasets``, with an offline-aware error.

Imported lazily by the dataset tasks: ``datasets`` is only needed when a task downloads.
"""

from __future__ import annotations

import os

from sert.errors import DataError


def load_hub(path: str, *, name: str | None = None, split: str | None = None, **kwargs):
    """``datasets.load_dataset`` with a one-line error that says what to do offline."""
    import datasets

    try:
        return datasets.load_dataset(path, name, split=split, **kwargs)
    except Exception as err:  # datasets raises many types (ConnectionError, FileNotFoundError, HfHubHTTPError...)
        offline = os.environ.get("HF_DATASETS_OFFLINE") == "1" or os.environ.get("HF_HUB_OFFLINE") == "1"
        where = kwargs.get("data_files") or path
        raise DataError(
            f"cannot load {where!r} through datasets{' (offline mode)' if offline else ''}: "
            f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''} "
            "Download the files once and point task.source at the local copy."
        ) from None
