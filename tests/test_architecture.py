"""The layers hold (ARCHITECTURE.md): import-linter checks the contracts in pyproject.toml over
the code as it is, so an upward import or a cycle between the wallet's modules fails here."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
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
    assert result.returncode == 1  # lint-imports: a contract is broken
    assert "services.wallet.ledger.service -> services.wallet.directory.service" in result.stdout


def test_coupons_and_settlement_are_kept_from_every_wallet_module_but_the_public_surface():
    """The forbidden list names every wallet module except public.py, so a module added later is
    not open to them by omission."""
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    (contract,) = [c for c in contracts if c.get("source_modules") == ["services.coupons", "services.settlement"]]
    wallet = ROOT / "services" / "wallet"
    modules = {p.stem for p in wallet.glob("*.py") if p.stem != "__init__"} | {
        p.parent.name for p in wallet.glob("*/__init__.py")
    }
    assert set(contract["forbidden_modules"]) == {f"services.wallet.{m}" for m in modules - {"public"}}


def test_coupons_reaching_past_the_public_surface_breaks_the_contract(tmp_path):
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    coupons = tmp_path / "services" / "coupons" / "endpoints.py"
    coupons.write_text(coupons.read_text() + "\nfrom services.wallet import public  # noqa\n"
                       "from services.wallet.payments import service as private  # noqa\n")
    result = _lint(tmp_path)
    assert result.returncode == 1  # lint-imports: a contract is broken
    assert "services.coupons.endpoints -> services.wallet.payments.service" in result.stdout
    assert "services.coupons.endpoints -> services.wallet.public" not in result.stdout  # that one is allowed
