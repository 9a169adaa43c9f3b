"""The stages' error convention, in a module light enough for commands that must not import torch
(`sert --help`, `sert sweep`): a library error is ``error: <message>`` on stderr and exit 1."""

from __future__ import annotations

import functools
import sys

import typer

from sert.errors import SertError


def stage(func):
    """Report library errors as ``error: <message>`` and exit 1, without a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except SertError as err:
            typer.echo(f"error: {err}", err=True)
            sys.exit(1)

    return wrapper
