"""Imports flow one way (design.md §2); the sandbox and each SDK stay behind their walls."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "connector"

# Lower layers never import higher ones: models/errors → config/mapping/retry/store → adapters/lonescale
# → sync → webhook/daemon → cli.
LAYERS = {
    "connector.models": 0, "connector.errors": 0, "connector.redact": 0, "connector.logs": 0, "connector.serving": 0,
    "connector.readahead": 0, "connector.values": 0, "connector.durations": 0, "connector.problems": 0, "connector.halving": 1,
    "connector.config": 1, "connector.request_custom": 1, "connector.schedules": 1, "connector.mapping": 1, "connector.transforms": 1, "connector.retry": 1,
    "connector.store": 1,
    "connector.adapters": 2, "connector.lonescale": 2,
    "connector.wiring": 3, "connector.sync": 3, "connector.apply": 3, "connector.apply_report": 3, "connector.apply_plan": 3, "connector.apply_write": 3, "connector.inbox": 3, "connector.checks": 3, "connector.overdue": 3, "connector.review": 3, "connector.resend": 3, "connector.merging": 3, "connector.selection": 3, "connector.batching": 3, "connector.window": 3,
    "connector.webhook": 4, "connector.ingest": 4, "connector.runtime": 4, "connector.daemon": 4,
    "connector.reports": 4,
    "connector.cli": 5, "connector.cli_support": 5, "connector.cli_review": 5, "connector.demo": 5,
}  # fmt: skip
# Which modules may import an SDK or framework that belongs to one concern only.
OWNERS = {
    "simple_salesforce": ("connector.adapters.salesforce",),
    "hubspot": ("connector.adapters.hubspot",),
    "apscheduler": ("connector.daemon", "connector.schedules"),  # schedules: the one parser of schedule lines
}
SANDBOX = "connector.sandbox"
SANDBOX_USERS = ("connector.cli", "connector.demo")  # the `sandbox` and `demo` commands
SHARED_WITH_SANDBOX = ("connector.serving",)  # a server runner, not product logic


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def layer_of(module: str) -> int | None:
    for prefix, rank in LAYERS.items():
        if module == prefix or module.startswith(prefix + "."):
            return rank
    return None


MODULES = sorted(PACKAGE.rglob("*.py"))
PRODUCT = [p for p in MODULES if not module_name(p).startswith(SANDBOX) and module_name(p) != "connector"]


@pytest.mark.parametrize("path", PRODUCT, ids=module_name)
def test_product_modules_import_only_their_own_layer_or_lower(path: Path) -> None:
    name = module_name(path)
    rank = layer_of(name)
    assert rank is not None, f"{name} has no layer in tests/test_architecture.py: place it in LAYERS"
    upward = [m for m in imports(path) if (layer_of(m) or -1) > rank]
    assert not upward, f"{name} (layer {rank}) imports higher layers: {upward}"


@pytest.mark.parametrize("path", PRODUCT, ids=module_name)
def test_product_code_never_imports_the_sandbox_except_the_cli(path: Path) -> None:
    name = module_name(path)
    into_sandbox = [m for m in imports(path) if m == SANDBOX or m.startswith(SANDBOX + ".")]
    assert name in SANDBOX_USERS or not into_sandbox, f"{name} imports the sandbox: {into_sandbox}"


@pytest.mark.parametrize("path", MODULES, ids=module_name)
def test_each_sdk_is_imported_only_by_its_owner(path: Path) -> None:
    name = module_name(path)
    for sdk, owners in OWNERS.items():
        used = [m for m in imports(path) if m == sdk or m.startswith(sdk + ".")]
        allowed = any(name == owner or name.startswith(owner + "_") for owner in owners)
        assert not used or allowed, f"{name} imports {sdk}; only {owners} may"


@pytest.mark.parametrize("path", [p for p in MODULES if module_name(p).startswith(SANDBOX)], ids=module_name)
def test_the_sandbox_is_a_separate_world(path: Path) -> None:
    product = [
        m
        for m in imports(path)
        if m.startswith("connector.") and not m.startswith(SANDBOX) and m not in SHARED_WITH_SANDBOX
    ]
    assert not product, f"{module_name(path)} imports product code: {product}"


def test_the_rules_see_the_modules() -> None:
    # A broken glob would make every parametrised test above vanish silently.
    assert any(module_name(p) == "connector.cli" for p in PRODUCT)
    assert any(module_name(p).startswith(SANDBOX) for p in MODULES)
