"""The layers hold (ARCHITECTURE.md): import-linter checks the contracts in pyproject.toml over
the code as it is, so an upward import or a cycle between the wallet's modules fails here."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

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


@pytest.mark.parametrize("services", [["services.coupons", "services.settlement"], ["services.platform"]])
def test_other_services_are_kept_from_every_wallet_module_but_the_public_surface(services):
    """The forbidden list names every wallet module except public.py, so a module added later is
    not open to them by omission."""
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    (contract,) = [c for c in contracts if c.get("source_modules") == services
                   and "services.wallet.ledger" in c["forbidden_modules"]]
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


# Who may look at the caller (a `Principal`): the endpoints, which authenticate; access.py, which
# holds every rule of who may see or do what; and the API-key resolvers, whose product is a
# principal (only inside those functions). Every other wallet (and platform) module takes an
# explicit `Actor` and the scope it works in (DESIGN.md), so that jobs and other services need no
# made-up caller.
PRINCIPAL_READERS = {"services/wallet/access.py", "services/wallet/endpoints.py", "services/platform/access.py"}
PRINCIPAL_MAKERS = {
    "services/wallet/directory/service.py": {"resolve_api_key"},
    "services/wallet/grants/service.py": {"resolve_partner_key"},
    "services/platform/partners/service.py": {"resolve_partner_service_key"},
}
CHECKED = ("wallet", "platform")


def _principal_users(root: Path) -> list[str]:
    """Where a wallet or platform module outside those named above uses `Principal`: "path:line"."""
    found = []
    for path in sorted(p for service in CHECKED for p in (root / "services" / service).rglob("*.py")):
        name = path.relative_to(root).as_posix()
        if name in PRINCIPAL_READERS or path.name == "endpoints.py":
            continue
        tree = ast.parse(path.read_text(), filename=name)
        makers = PRINCIPAL_MAKERS.get(name, set())
        allowed: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in makers:
                allowed |= {id(inner) for inner in ast.walk(node)}
        for node in ast.walk(tree):
            imported = isinstance(node, ast.ImportFrom) and any(a.name == "Principal" for a in node.names)
            used = (isinstance(node, ast.Name) and node.id == "Principal") or (
                isinstance(node, ast.Attribute) and node.attr == "Principal"
            )
            named = isinstance(node, ast.Constant) and isinstance(node.value, str) and "Principal" in node.value.split()
            if imported and makers:
                continue  # the resolvers' own import; their uses are checked one by one
            if (imported or used or named) and id(node) not in allowed:
                found.append(f"{name}:{node.lineno}")
    return found


def test_only_endpoints_access_and_key_resolvers_see_the_principal():
    assert _principal_users(ROOT) == []


def test_a_service_reading_the_principal_is_named(tmp_path):
    """The check can fail: over a copy in which the top-ups service takes a principal again, and the
    directory's service uses one outside its key resolver, both are named."""
    shutil.copytree(ROOT / "services", tmp_path / "services", ignore=shutil.ignore_patterns("__pycache__"))
    topups = tmp_path / "services" / "wallet" / "topups" / "service.py"
    topups.write_text(topups.read_text() + "\nfrom shared.auth import Principal  # noqa\n")
    directory = tmp_path / "services" / "wallet" / "directory" / "service.py"
    directory.write_text(directory.read_text() + "\n\ndef caller(principal: 'Principal') -> str:\n"
                         "    return Principal.__name__\n")
    found = _principal_users(tmp_path)
    lines = len(topups.read_text().splitlines())
    assert f"services/wallet/topups/service.py:{lines}" in found
    assert any(f.startswith("services/wallet/directory/service.py:") for f in found)
    assert len(found) == 3  # the import, the annotation and the use
