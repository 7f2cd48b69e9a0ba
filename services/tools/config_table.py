"""The configuration table (Markdown) generated from ``services/config.py``'s ``Settings`` fields.

``python -m services.tools.config_table`` prints it; ``--write`` replaces the table in README.md
(between the ``config-table`` markers). ``tests/test_config_docs.py`` checks the README is current.
"""

from __future__ import annotations

import argparse
import re

from services.config import REPO_ROOT, Settings, env_text, env_var

README = REPO_ROOT / "README.md"
BLOCK = re.compile(r"(<!-- config-table:start -->\n)(.*?)(\n<!-- config-table:end -->)", re.S)


def markdown_table() -> str:
    lines = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        default = env_text(field.default)
        lines.append(f"| `{env_var(name)}` | {f'`{default}`' if default else '(empty)'} | {field.description} |")
    return "\n".join(lines)


def readme_table(text: str) -> str | None:
    """The table README.md carries now (None: its markers are gone)."""
    block = BLOCK.search(text)
    return block.group(2) if block else None


def write_readme() -> None:
    text = README.read_text("utf-8")
    if readme_table(text) is None:
        raise SystemExit("README.md lost its <!-- config-table:start/end --> markers")
    README.write_text(BLOCK.sub(lambda m: m.group(1) + markdown_table() + m.group(3), text), "utf-8")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m services.tools.config_table", description=__doc__)
    parser.add_argument("--write", action="store_true", help="replace the table in README.md instead of printing it")
    if parser.parse_args().write:
        write_readme()
    else:
        print(markdown_table())
