"""The alert rules load in Prometheus's own checker and name only metrics the services export."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
import yaml

from services import metrics
from services.config import REPO_ROOT

RULES = REPO_ROOT / "deploy" / "prometheus" / "alerts.yml"


def test_promtool_accepts_the_rules():
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI"):
            pytest.fail("promtool missing: .ci/run installs Debian's prometheus package")
        pytest.skip("promtool (Debian package prometheus) is not installed here; CI installs it")
    result = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_uses_exported_metrics_and_says_what_to_do():
    from prometheus_client.metrics import MetricWrapperBase

    exported = {m._name for m in vars(metrics).values() if isinstance(m, MetricWrapperBase)}
    exported |= {f"{name}_total" for name in exported}
    rules = [rule for group in yaml.safe_load(RULES.read_text("utf-8"))["groups"] for rule in group["rules"]]
    assert {r["alert"] for r in rules} >= {"ConsumerLagHigh", "DeadLettersArriving", "IntakeServerErrors",
                                           "StoreInsertFailures", "RotationBatchesOverdue", "CentralPollLagging",
                                           "CredentialsBeingGuessed"}
    for rule in rules:
        names = set(re.findall(r"\b([a-z_]+(?:_total|_seconds|_lag|_overdue))\b", rule["expr"]))
        assert names and names <= exported, (rule["alert"], names - exported)
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
