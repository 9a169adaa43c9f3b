"""Errors that the stages report as one line and a non-zero exit (no traceback)."""


class SertError(Exception):
    """Base class: bad params, data, models or an empty result; the message says what to fix."""


class ParamsError(SertError):
    """A param is unknown, of the wrong type or out of range."""


class DataError(SertError):
    """An input file is missing or malformed (the message names file and line)."""


class TaskError(SertError):
    """Bad task name, options or records."""


class ModelError(SertError):
    """A model or tokenizer cannot be loaded."""


class EmptyResultError(SertError):
    """A step produced nothing to continue with (e.g. every sample was filtered out)."""


class ApiError(SertError):
    """Requests to an API failed for good, or too many did; the message says how many and why."""
