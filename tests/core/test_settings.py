"""Production settings refuse to start when misconfigured (a real interpreter per case)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
GOOD_KEY = "k" * 50


def _load_production(**env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("DJANGO_") and key != "PYTEST_XDIST_WORKER"
    }
    environment.update({"DJANGO_SETTINGS_MODULE": "config.settings.production", **env})
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); print('started')"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DJANGO_SECRET_KEY": GOOD_KEY, "DJANGO_DEBUG": "true"}, "DJANGO_DEBUG must be off"),
        ({}, "Set DJANGO_SECRET_KEY"),
        ({"DJANGO_SECRET_KEY": "short"}, "Set DJANGO_SECRET_KEY"),
    ],
)
def test_production_refuses_debug_or_a_default_secret(env: dict[str, str], message: str) -> None:
    result = _load_production(**env)

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert message in result.stderr
    assert "started" not in result.stdout


def test_production_starts_when_configured() -> None:
    result = _load_production(DJANGO_SECRET_KEY=GOOD_KEY)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "started"
