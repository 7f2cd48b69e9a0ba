"""Coverage-guided fuzzing (atheris, libFuzzer) of the submission parser and every form's validation.

The entry point is ``tests.fuzz_inputs.accept`` (``parse_submission`` → the form's ``parse`` → the
event model), the one ``tests/test_fuzz_intake.py`` runs under hypothesis in ``make test``; here it
runs for longer, guided by coverage. Expected: an event, or ``SubmissionRejected`` with its reasons
(``tests.fuzz_inputs.outcome`` checks them). Anything else is a crash, written to ``build/fuzz/``.

Seeds: ``bench/corpus/``, written on the first run from a valid filled instance of every form
(the sample generator's answers in XForms built from ``odk-forms/``) and the bad-input corpus of
``tests/test_bad_input.py``. New inputs libFuzzer finds go to ``build/fuzz/corpus/``.

    .venv/bin/python bench/fuzz_intake.py --seconds 30    # prints {"runs": N, "crashes": 0, "seconds": S}

Without atheris (``pip install -e '.[bench]'``), the hypothesis strategies of ``tests.fuzz_inputs``
run for the same time instead, and the summary says ``"engine": "hypothesis"``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if sys.path and Path(sys.path[0]).resolve() == REPO / "bench":
    sys.path[0] = str(REPO)  # run as a script: import services/ and tests/ from the repo, not bench/'s modules
elif str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

SEEDS = REPO / "bench" / "corpus"
WORK = REPO / "build" / "fuzz"
MAX_LEN = 1 << 20  # larger inputs stop at the intake's size limits before any parsing


def _xforms(out: Path) -> dict[str, bytes]:
    """The served XForms: ``build/forms`` if ``make run`` built them, else built here (no ODK Validate)."""
    from services.intake.forms import build_form
    from tests.fuzz_inputs import read_xforms

    built = REPO / "build" / "forms"
    if not all((built / f"{f}.xml").exists() for f in ("visit_log", "mobile_session")):
        for path in sorted((REPO / "odk-forms").glob("*.xlsx")):
            build_form(path, out, validate=False)
        built = out
    return read_xforms(built)


class _Recorder:
    """Stands in for the test client: keeps the submission a bad-input case would post."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    def post(self, url: str, files=None, content: bytes | None = None, **_: object) -> None:
        parts = list(files.items()) if isinstance(files, dict) else list(files or [])
        named = [part for name, part in parts if name == "xml_submission_file"] or [part for _, part in parts]
        self.bodies.extend(body for _, body, *_ in named)
        if content is not None:
            self.bodies.append(content)


def seed_inputs() -> list[bytes]:
    """Valid submissions of every form, then every submission of the bad-input corpus."""
    from services.domain.reference import default_reference
    from tests.fuzz_inputs import valid_submissions
    from tests.test_bad_input import CORPUS

    with tempfile.TemporaryDirectory() as tmp:
        xforms = _xforms(Path(tmp))
    found = [xml for _, xml in valid_submissions(xforms)]
    library = next(lib for lib in default_reference().libraries.values() if lib.area("legacy").province_code == "02")
    recorder = _Recorder()
    for case in CORPUS:
        case.request(recorder, xforms["visit_log"], library)  # type: ignore[arg-type]
    found += [body for body in recorder.bodies if len(body) <= MAX_LEN]
    return found


def write_seeds(directory: Path) -> int:
    """Write the seeds (named by content) if ``directory`` has none yet; return how many it holds."""
    directory.mkdir(parents=True, exist_ok=True)
    if not any(directory.iterdir()):
        for body in seed_inputs():
            (directory / hashlib.sha1(body).hexdigest()).write_bytes(body)
    return sum(1 for _ in directory.iterdir())


# --- the atheris child ---------------------------------------------------------------------

def _fuzz(libfuzzer_args: list[str]) -> None:
    import atheris

    with atheris.instrument_imports(include=["services", "defusedxml", "tests.fuzz_inputs"]):
        from tests.fuzz_inputs import outcome

    def one_input(data: bytes) -> None:
        outcome(data)  # raises on anything but an event or a documented rejection

    atheris.Setup([sys.argv[0], *libfuzzer_args], one_input)
    atheris.Fuzz()


def run_atheris(seconds: int, extra: list[str]) -> dict[str, object]:
    corpus = WORK / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    args = [f"-max_total_time={seconds}", f"-max_len={MAX_LEN}", "-timeout=10", "-rss_limit_mb=4096",
            f"-artifact_prefix={WORK}/", "-print_final_stats=1", *extra, str(corpus), str(SEEDS)]
    started = time.monotonic()
    child = subprocess.Popen([sys.executable, __file__, "--child", *args], stderr=subprocess.PIPE, text=True,
                             errors="replace")
    runs, crashes, artifacts = 0, 0, []
    assert child.stderr is not None
    for line in child.stderr:
        sys.stderr.write(line)
        if (m := re.match(r"#(\d+)\s", line)) or (m := re.match(r"Done (\d+) runs", line)) \
                or (m := re.match(r"stat::number_of_executed_units:\s*(\d+)", line)):
            runs = max(runs, int(m.group(1)))
        if m := re.search(r"Test unit written to (\S+)", line):
            artifacts.append(m.group(1))
    code = child.wait()
    crashes = max(len(artifacts), int(code != 0))
    summary: dict[str, object] = {"runs": runs, "crashes": crashes, "seconds": round(time.monotonic() - started, 1)}
    if artifacts:
        summary["artifacts"] = artifacts
    return summary


# --- without atheris: the hypothesis strategies, for as long -----------------------------------

def run_hypothesis(seconds: int) -> dict[str, object]:
    from hypothesis import HealthCheck, Phase, given, settings

    from tests.fuzz_inputs import anything, outcome, valid_submissions

    with tempfile.TemporaryDirectory() as tmp:
        seeds = valid_submissions(_xforms(Path(tmp)))
    bodies = [p.read_bytes() for p in sorted(SEEDS.iterdir())]
    runs, crashes, failures = 0, 0, []
    started = time.monotonic()
    for body in bodies:
        outcome(body)
        runs += 1

    @settings(max_examples=10**9, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(anything(seeds))
    def check(raw: bytes) -> None:
        nonlocal runs
        if time.monotonic() - started > seconds:
            raise TimeoutError
        runs += 1
        outcome(raw)

    while time.monotonic() - started < seconds:
        try:
            check()
        except TimeoutError:
            break
        except Exception as exc:  # a crash: hypothesis has shrunk it; keep going for the rest of the time
            crashes += 1
            failures.append(f"{type(exc).__name__}: {exc}"[:300])
    summary: dict[str, object] = {"runs": runs, "crashes": crashes, "seconds": round(time.monotonic() - started, 1),
                                  "engine": "hypothesis"}
    if failures:
        summary["failures"] = failures
    return summary


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        _fuzz(argv[1:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=60, help="how long to fuzz (libFuzzer -max_total_time)")
    parser.add_argument("--engine", choices=("atheris", "hypothesis"), default=None,
                        help="default: atheris when installed, else hypothesis")
    options, extra = parser.parse_known_args(argv)  # the rest goes to libFuzzer (-jobs=…, -dict=…)
    seeds = write_seeds(SEEDS)
    print(f"fuzzing the intake's parser for {options.seconds} s from {seeds} seeds in {SEEDS}", file=sys.stderr)
    engine = options.engine
    if engine is None:
        try:
            import atheris  # noqa: F401
            engine = "atheris"
        except ImportError:
            print("atheris is not installed (pip install -e '.[bench]'): running the hypothesis strategies instead",
                  file=sys.stderr)
            engine = "hypothesis"
    summary = run_atheris(options.seconds, extra) if engine == "atheris" else run_hypothesis(options.seconds)
    print(json.dumps(summary))
    return 1 if summary["crashes"] else 0


if __name__ == "__main__":
    sys.exit(main())
