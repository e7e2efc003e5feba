"""Imports flow one way (docs/architecture.md#layers); the sandbox and each SDK stay behind their walls."""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "connector"

# Lower layers never import higher ones: models/errors → config/mapping/retry/store → adapters/lonescale
# → sync → webhook/daemon → cli.
LAYERS = {
    "connector.models": 0, "connector.errors": 0, "connector.redact": 0, "connector.logs": 0, "connector.serving": 0, "connector.jsoncodec": 0,
    "connector.readahead": 0, "connector.fencing": 0, "connector.values": 0, "connector.durations": 0, "connector.problems": 0, "connector.starter": 0, "connector.user_agent": 0, "connector.halving": 1,
    "connector.config": 1, "connector.config_base": 1, "connector.config_instance": 1, "connector.config_lonescale": 1, "connector.config_serving": 1, "connector.config_store": 1, "connector.request_custom": 1, "connector.schedules": 1, "connector.clock": 1, "connector.dispatch": 1, "connector.mapping": 1, "connector.transforms": 1, "connector.retry": 1,
    "connector.store": 1,
    "connector.adapters": 2, "connector.lonescale": 2,
    "connector.wiring": 3, "connector.sync": 3, "connector.sync_report": 3, "connector.sender": 3, "connector.send_ahead": 3, "connector.apply": 3, "connector.apply_report": 3, "connector.apply_plan": 3, "connector.apply_write": 3, "connector.apply_unique": 3, "connector.apply_ahead": 3, "connector.inbox": 3, "connector.checks": 3, "connector.overdue": 3, "connector.review": 3, "connector.resend": 3, "connector.merging": 3, "connector.selection": 3, "connector.batching": 3, "connector.window": 3,
    "connector.status": 3, "connector.status_series": 3,
    "connector.webhook": 4, "connector.webhook_asgi": 4, "connector.webhook_jobs": 4, "connector.ingest": 4, "connector.metrics": 4, "connector.runtime": 4, "connector.daemon": 4, "connector.receiver": 4, "connector.cluster": 4,
    "connector.reports": 4, "connector.charts": 4, "connector.status_page": 4, "connector.status_app": 4,
    "connector.cli": 5, "connector.cli_support": 5, "connector.cli_review": 5, "connector.cli_ops": 5, "connector.demo": 5, "connector.progress": 5, "connector.cli_status": 5,
}  # fmt: skip
# Which modules may import an SDK or framework that belongs to one concern only.
OWNERS = {
    "simple_salesforce": ("connector.adapters.salesforce",),
    "hubspot": ("connector.adapters.hubspot",),
    "apscheduler": ("connector.daemon", "connector.schedules"),
    "procrastinate": (
        "connector.cluster",
        "connector.store.queue_schema",
    ),  # the queue; its schema  # schedules: the one parser of schedule lines
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


# The store's aggregates share the database, the dialect, the schema and the records, never each other: a
# write spanning two is one transaction handed to the ledger's functions, which take the caller's connection
# (so do run_totals', the sums a run's finish adds to).
STORE = "connector.store"
STORE_SHARED = {"database", "dialect", "schema", "records", "upgrade", "fences", "queue_schema"}
STORE_AGGREGATES = {"runs": {"run_totals"}, "run_totals": set(), "cursors": set(), "jobs": {"ledger"},
                    "inbox": set(), "ledger": set(), "journal": {"ledger"}, "leases": set(), "schedules": set(),
                    "wakeups": set(), "emails": set()}  # fmt: skip


def store_imports(path: Path) -> set[str]:
    """The connector.store modules a module imports, by their last name (`from connector.store import x` too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module == STORE:
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(STORE + "."):
            found.add(node.module.removeprefix(STORE + "."))
    return found


@pytest.mark.parametrize("name", sorted(STORE_AGGREGATES))
def test_the_stores_aggregates_share_the_database_not_each_other(name: str) -> None:
    others = store_imports(PACKAGE / "store" / f"{name}.py") - STORE_SHARED - STORE_AGGREGATES[name]
    assert not others, (
        f"{STORE}.{name} imports {sorted(others)}; aggregates share only {sorted(STORE_SHARED)}"
    )


def test_the_rules_see_the_modules() -> None:
    # A broken glob would make every parametrised test above vanish silently.
    assert any(module_name(p) == "connector.cli" for p in PRODUCT)
    assert any(module_name(p).startswith(SANDBOX) for p in MODULES)
    assert {module_name(p).removeprefix(STORE + ".") for p in PRODUCT} >= set(STORE_AGGREGATES) | STORE_SHARED


# --------------------------------------------------------------------------- references to documents

ROOT = PACKAGE.parent
MD, SIGN = "md", "\N{SECTION SIGN}"  # spelled apart so this file's own examples are not references
SCANNED = (".py", ".md", ".toml")
URL = re.compile(r"[a-z][a-z0-9+.-]*://[^\s<>()\[\]\"'`]+", re.IGNORECASE)
# A path to a Markdown document, relative (`docs/x`, `../x`, `x`) or absolute, with an optional `#anchor`.
DOCUMENT = re.compile(
    rf"(?<![\w.\-/])((?:\.{{1,2}}/|/)?(?:[\w.\-]+/)*[\w\-][\w.\-]*\.{MD})(?![\w])(#[\w\-]+)?"
)
SAME_FILE_ANCHOR = re.compile(r"\]\((#[\w\-]+)\)")  # a Markdown link to a heading of its own file
SECTION = re.compile(rf"{SIGN}\s?\d")
RFC_SECTION = re.compile(rf"RFC \d+,? {SIGN}\s?\d[\d.]*")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.+?)(?:\s+#+)?\s*$")
FENCE = re.compile(r"^ {0,3}(```|~~~)")


def tracked_files(root: Path = ROOT) -> list[Path]:
    """What a clone holds: git's list of tracked files, or (outside a checkout) the tree without its caches."""
    try:
        listing = subprocess.run(
            ["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True, timeout=30
        ).stdout.decode()
        files = [root / name for name in listing.split("\0") if name]
    except (OSError, subprocess.SubprocessError):
        skip = {".git", ".venv", "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"}
        files = [
            p for p in root.rglob("*")
            if not skip.intersection(p.relative_to(root).parts)
            and not any(part.endswith(".egg-info") for part in p.relative_to(root).parts)
        ]  # fmt: skip
    return sorted(p for p in files if p.suffix in SCANNED and p.is_file())


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text (link targets dropped), lower case, punctuation other than
    '-' and '_' dropped, each space a '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(document: Path) -> set[str]:
    """Every heading's anchor, outside code blocks; a repeated heading gets GitHub's `-1`, `-2`, ..."""
    found: set[str] = set()
    counts: dict[str, int] = {}
    fenced = False
    for line in document.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        heading = None if fenced else HEADING.match(line)
        if heading is None:
            continue
        base = slug(heading.group(2))
        counts[base] = counts.get(base, -1) + 1
        found.add(base if counts[base] == 0 else f"{base}-{counts[base]}")
    return found


def resolve(source: Path, target: str, root: Path) -> Path | None:
    """The document a reference names: beside the file that makes it, else from the repository's root (as
    code comments write them: `docs/architecture.md`); None when that is no file inside the repository."""
    if target.startswith("/"):
        return None
    for base in (source.parent, root):
        candidate = (base / target).resolve()
        if candidate.is_relative_to(root.resolve()) and candidate.is_file():
            return candidate
    return None


def broken_references(source: Path, text: str, root: Path = ROOT) -> list[str]:
    """`file:line: why` for each reference in `text` to a document, or a heading of one, that is not there."""
    problems: list[str] = []
    where = source.relative_to(root)
    for number, raw in enumerate(text.splitlines(), 1):
        line = URL.sub(" ", raw)  # a page on the web is not ours to check
        found = [(m.group(1), m.group(2), None) for m in DOCUMENT.finditer(line)]
        if source.suffix == ".md":
            found += [(source.name, m.group(1), source) for m in SAME_FILE_ANCHOR.finditer(line)]
        for target, anchor, known in found:
            document = known or resolve(source, target, root)
            if document is None:
                problems.append(f"{where}:{number}: {target} is not a document in this repository")
            elif anchor and anchor[1:] not in anchors(document):
                problems.append(f"{where}:{number}: {target} has no heading for {anchor}")
    return problems


def bare_sections(source: Path, text: str, root: Path = ROOT) -> list[str]:
    """`file:line: text` for each section number cited without its document (RFCs name theirs)."""
    return [
        f"{source.relative_to(root)}:{number}: {line.strip()[:100]}"
        for number, line in enumerate(text.splitlines(), 1)
        if SECTION.search(RFC_SECTION.sub("", line))
    ]


def test_every_referenced_document_and_heading_exists() -> None:
    problems = [
        p for path in tracked_files() for p in broken_references(path, path.read_text(encoding="utf-8"))
    ]
    assert not problems, "references to documents that are not in the repository:\n" + "\n".join(problems)


def test_no_section_number_without_its_document() -> None:
    # A bare section number names a part of a document the reader cannot tell, or cannot reach.
    problems = [p for path in tracked_files() for p in bare_sections(path, path.read_text(encoding="utf-8"))]
    assert not problems, (
        "section numbers without their document (cite docs/<api>.md#<heading>):\n" + "\n".join(problems)
    )


def test_the_reference_checks_see_what_they_must(tmp_path: Path) -> None:
    # A check that finds nothing would pass for ever: it must see each kind of broken reference, and no other.
    (tmp_path / "docs").mkdir()
    (tmp_path / "connector").mkdir()
    (tmp_path / f"README.{MD}").write_text(
        "# Project\n\n## Docs\n\n[seam](#the-adapter-seam)\n", encoding="utf-8"
    )
    page = tmp_path / "docs" / f"api.{MD}"
    page.write_text(
        "# API\n```sh\n# not a heading\n```\n## Search paging\n## Search paging\n## Errors, `429` ##\n",
        encoding="utf-8",
    )
    code = "\n".join([
        f"docs/api.{MD}#no-such-heading",
        f"(design.{MD} {SIGN}4)",
        f"../shared/reference/hubspot-api.{MD}",
        f"/work/shared/seed/enrich-contacts.{MD}",
        f"# docs/api.{MD}#search-paging-1 ../README.{MD}#docs https://example.com/x.{MD} a `x.{MD}x`",
        f"RFC 9110 {SIGN}15.4.4, and see docs/api.{MD}#errors-429",
    ])  # fmt: skip
    source = tmp_path / "connector" / "module.py"
    assert [p.split(":")[1] for p in broken_references(source, code, tmp_path)] == ["1", "2", "3", "4"]
    assert [p.split(":")[1] for p in bare_sections(source, code, tmp_path)] == ["2"]
    readme = tmp_path / f"README.{MD}"
    assert broken_references(readme, readme.read_text(encoding="utf-8"), tmp_path) == [
        f"README.{MD}:5: README.{MD} has no heading for #the-adapter-seam"
    ]
    assert anchors(page) == {"api", "search-paging", "search-paging-1", "errors-429"}
    assert slug("The sync cycle: window, `settle`, [cursor](x)") == "the-sync-cycle-window-settle-cursor"


# --------------------------------------------------------------------------- code named in docs/

CODE_NAME = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)`")


def defined_names() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Product modules by their last name part (only names no two modules share), each with what it
    defines at any depth; and product classes with their members."""
    by_module: dict[str, set[str]] = {}
    shared: set[str] = set()
    classes: dict[str, set[str]] = {}
    for path in PRODUCT:
        tree = ast.parse(path.read_text())
        names = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Assign):
                names.update(t.id for t in node.targets if isinstance(t, ast.Name))
            elif isinstance(node, ast.AnnAssign | ast.AugAssign) and isinstance(node.target, ast.Name):
                names.add(node.target.id)
            elif isinstance(node, ast.ImportFrom):  # what a package re-exports is its name too
                names.update(alias.asname or alias.name for alias in node.names)
            elif (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "self"
            ):
                names.add(node.attr)  # instance attributes are members too
            if isinstance(node, ast.ClassDef):
                members = classes.setdefault(node.name, set())
                for inner in ast.walk(node):
                    if isinstance(inner, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                        members.add(inner.name)
                    elif isinstance(inner, ast.AnnAssign) and isinstance(inner.target, ast.Name):
                        members.add(inner.target.id)
                    elif isinstance(inner, ast.Assign):
                        members.update(t.id for t in inner.targets if isinstance(t, ast.Name))
                    elif (
                        isinstance(inner, ast.Attribute)
                        and isinstance(inner.value, ast.Name)
                        and inner.value.id == "self"
                    ):
                        members.add(inner.attr)
        short = module_name(path).rsplit(".", 1)[-1]
        if short in by_module:
            shared.add(short)
        by_module.setdefault(short, set()).update(names)
    return {k: v for k, v in by_module.items() if k not in shared}, classes


def stale_code_names(text: str, modules: dict[str, set[str]], classes: dict[str, set[str]]) -> list[str]:
    stale = []
    for owner, name in CODE_NAME.findall(text):
        if (owner in modules and name not in modules[owner] and name != "py") or (
            owner in classes and name not in classes[owner]
        ):
            stale.append(f"{owner}.{name}")
    return stale


def test_the_code_the_docs_name_exists() -> None:
    """`module.function` and `Class.method` in docs/ name what the code has: a refactor that renames one
    updates the docs with it."""
    modules, classes = defined_names()
    found = [
        f"{doc.relative_to(ROOT)}:{number}: {name}"
        for doc in sorted((ROOT / "docs").glob("*.md"))
        for number, line in enumerate(doc.read_text().splitlines(), 1)
        for name in stale_code_names(line, modules, classes)
    ]
    assert not found, "docs name code that is not there:\n" + "\n".join(found)


def test_the_code_name_check_sees_a_stale_name() -> None:
    modules, classes = defined_names()
    assert stale_code_names("`apply._execute` and `Store.create_job`", modules, classes) == [
        "apply._execute", "Store.create_job",
    ]  # fmt: skip
    assert (
        stale_code_names("`apply_write.write_plan`, `Jobs.create`, `hubspot_writes.py`", modules, classes)
        == []
    )
