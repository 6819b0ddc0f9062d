"""What the migrated database must equal, for Alembic's autogenerate (env.py) and for the tests
that prove it proposes nothing: every table of every `models` module, and every database function
from its living source, the `sql/*.sql` file beside the module that owns it.

Migrations hold frozen snapshots of these functions (alembic_utils' `op.create_entity` and
`op.replace_entity` with the definition pasted in), so that replaying history gives the functions
as they were; after a change to a source file, autogenerate proposes the replacement.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

from alembic_utils.pg_function import PGFunction

import services
import shared

# The schemas Alembic manages: the services' own, and `platform` (shared's tables, the version table).
SCHEMAS = ("platform", "wallet", "coupons", "settlement")

_PACKAGES = (services, shared)
_LEADING_COMMENTS = re.compile(r"\A(?:[ \t]*(?:--[^\n]*)?\n)*")


def import_models() -> None:
    """Import every module named `models` under services/ (shared.models comes with the Base), so
    that each table is in the metadata wherever its module lives."""
    for module in pkgutil.walk_packages(services.__path__, "services."):
        if module.name.rsplit(".", 1)[-1] == "models":
            importlib.import_module(module.name)


def _sources() -> list[Path]:
    return sorted(path for package in _PACKAGES for path in Path(package.__file__).parent.glob("**/sql/*.sql"))


def function_sources() -> list[Path]:
    return [path for path in _sources() if "CREATE VIEW" not in path.read_text()]


def view_sources() -> list[Path]:
    """Views' sources (payments/sql/statement_lines.sql): compared with the database by
    tests/wallet/test_database_rules.py, not by autogenerate, as migrations wrote them."""
    return [path for path in _sources() if "CREATE VIEW" in path.read_text()]


def function_of(source: Path) -> PGFunction:
    """The function a source file creates: one `CREATE OR REPLACE FUNCTION`, after a comment
    that says why (which alembic_utils' parser does not expect)."""
    return PGFunction.from_sql(_LEADING_COMMENTS.sub("", source.read_text(), count=1))


def functions() -> list[PGFunction]:
    return [function_of(source) for source in function_sources()]


def include_name(name: str | None, type_: str, parent_names: dict[str, str | None]) -> bool:
    """Only Alembic's schemas; in them, every table and function."""
    if type_ == "schema":
        return name in SCHEMAS
    if type_ == "function":  # alembic_utils' functions, named "schema.name(arguments)"
        return parent_names["schema_name"] in SCHEMAS
    return True
