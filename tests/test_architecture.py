"""The layers hold (ARCHITECTURE.md): import-linter checks the contracts in pyproject.toml over
the code as it is, so an upward import or a cycle between the wallet's modules fails here."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("app", "services", "shared")


def _lint(code: Path) -> subprocess.CompletedProcess[str]:
    """import-linter over the packages found first on the path: those under `code`."""
    return subprocess.run(
        [sys.executable, "-c", "from importlinter.cli import lint_imports_command; lint_imports_command()",
         "--no-cache"],
        cwd=code, capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(code)},
    )


def test_every_import_contract_is_kept():
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_an_upward_import_breaks_the_layers(tmp_path):
    """The check can fail: over a copy of the code in which the ledger imports the directory (the
    layer above it), the same contracts name that import."""
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    ledger = tmp_path / "services" / "wallet" / "ledger" / "service.py"
    ledger.write_text(ledger.read_text() + "\nfrom services.wallet.directory import service as upward  # noqa\n")
    result = _lint(tmp_path)
    assert result.returncode != 0
    assert "services.wallet.ledger.service -> services.wallet.directory.service" in result.stdout
