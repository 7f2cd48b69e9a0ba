"""What every benchmark shares in one run: the scale, a scratch directory, the built forms,
the generated registry, and one real Kafka broker (started on first use, as the tests start it)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from services.config import REPO_ROOT, Settings

SCALES = ("quick", "full")


@dataclass
class Context:
    scale: str  # "quick": minutes, to check the harness; "full": the figures the README shows
    workdir: Path
    seed: int = 2026
    _broker: object | None = field(default=None, repr=False)

    @property
    def full(self) -> bool:
        return self.scale == "full"

    def dir(self, name: str) -> Path:
        """A fresh scratch directory for one benchmark."""
        path = self.workdir / name
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return path

    @cached_property
    def forms_dir(self) -> Path:
        from services.intake.forms import build_all

        out = self.workdir / "forms"
        if not any(out.glob("*.xml")):
            build_all(REPO_ROOT / "odk-forms", out)
        return out

    @cached_property
    def registry(self) -> Path:
        """The generated registry of about 5,000 libraries (``LIBRARIES_FILE``)."""
        from bench.generate import write_registry

        return write_registry(self.workdir / "libraries.csv", seed=self.seed)

    @property
    def kafka_bootstrap(self) -> str:
        if self._broker is None:
            from tests.kafka.broker import KafkaBroker

            self._broker = KafkaBroker(heap="1g").start()
        return self._broker.bootstrap_servers  # type: ignore[attr-defined]

    def settings(self, name: str, **overrides: object) -> Settings:
        """Settings for one benchmark's own store and state, with the generated registry."""
        base = self.dir(name)
        forms = base / "forms"
        shutil.copytree(self.forms_dir, forms)
        return Settings.from_env(**{"store_dsn": f"chdb://{base / 'store'}", "state_dir": base / "state",
                                    "forms_dir": forms, "libraries_file": str(self.registry), "log_level": "WARNING",
                                    **overrides})

    def close(self) -> None:
        if self._broker is not None:
            self._broker.stop()  # type: ignore[attr-defined]
            self._broker = None
