"""The one architectural rule, enforced: domain modules import no web, broker, database or HTTP client library."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ("fastapi", "starlette", "aiokafka", "sqlalchemy", "httpx", "asyncpg")
PURE_MODULES = [
    "services/ingest/sources",
    "services/ingest/auth.py",
    "services/ingest/limits.py",
    "services/ingest/machine.py",
    "services/ingest/links.py",
    "shared/events.py",
    "services/scoring/model.py",
    "services/scoring/rules.py",
    "services/scoring/identity.py",
    "services/scoring/profile.py",
    "services/scoring/lifecycle.py",
    "services/scoring/lead.py",
    "services/scoring/icp.py",
    "services/scoring/backtest.py",
    "services/routing/model.py",
    "services/routing/rules.py",
    "services/routing/roundrobin.py",
    "services/routing/directory.py",
    "services/routing/sla.py",
    "services/routing/lifecycle.py",
    "services/routing/dryrun.py",
    "services/routing/brief.py",
    "services/routing/auth.py",
    "services/routing/webhooks.py",
    "services/reporting/attribution.py",
    "services/reporting/markov.py",
    "services/reporting/identities.py",
    "services/reporting/campaigns.py",
    "services/reporting/facts.py",
    "services/reporting/credits.py",
    "services/reporting/funnel.py",
    "services/reporting/roi.py",
    "services/reporting/scorecards.py",
    "services/reporting/dashboard.py",
    "services/reporting/batch.py",
]


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def pure_files() -> list[Path]:
    files: list[Path] = []
    for entry in PURE_MODULES:
        path = ROOT / entry
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path] if path.exists() else []
    return files


def test_domain_modules_import_no_io_framework() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(m for m in imported_modules(path) if m.split(".")[0] in FORBIDDEN)
        for path in pure_files()
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_rule_sees_the_domain_modules() -> None:
    assert len(pure_files()) >= 5
    assert "fastapi" in {m.split(".")[0] for m in imported_modules(ROOT / "services/ingest/app.py")}
