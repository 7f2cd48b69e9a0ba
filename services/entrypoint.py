"""What every process's ``main`` does first, in one place: answer ``--help`` from the module's
docstring, read the settings (a wrong one ends the process with one line naming it), and
configure logging once."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from services import logs
from services.config import Settings, load_settings


def start(prog: str, doc: str | None, argv: Sequence[str] | None = None, *,
          parser: argparse.ArgumentParser | None = None, **overrides: Any) -> tuple[argparse.Namespace, Settings]:
    """The parsed arguments (``parser``'s, or none but ``--help``) and the settings, logging configured."""
    parser = parser or argparse.ArgumentParser(prog=prog, description=doc,
                                               formatter_class=argparse.RawDescriptionHelpFormatter)
    args = parser.parse_args(argv)
    settings = load_settings(**overrides)
    logs.configure(settings)
    return args, settings
