"""Print the configuration table (Markdown) from ``services/config.py``'s SETTINGS.

README.md carries its output verbatim; ``tests/test_config_docs.py`` checks they agree.
"""

from __future__ import annotations

from services.config import SETTINGS


def markdown_table() -> str:
    lines = ["| variable | default | meaning |", "| --- | --- | --- |"]
    lines += [f"| `{s.env}` | `{s.default}` | {s.meaning} |" if s.default else f"| `{s.env}` | (empty) | {s.meaning} |"
              for s in SETTINGS]
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
