"""Imports only point down the layers of docs/architecture.md; an upward or sideways import fails here."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bot", "tools", "knowledge")

# Top to bottom. A module may import its own group and any group below it, never above or beside it.
LAYERS: list[tuple[str, ...]] = [
    ("bot.__main__",),
    ("bot.cli",),
    ("bot.slack", "bot.console"),
    ("bot.services",),
    ("bot.conversation",),
    ("tools", "bot.accounting"),
    ("knowledge",),
    ("bot.llm", "bot.store"),
    ("bot.messages", "bot.errors", "bot.config"),
]
# The bottom layer is one base: its three modules may use each other (config raises ConfigError).
BASE = len(LAYERS) - 1

# Known violations still being removed, as (importing module, imported module). Must shrink to nothing.
KNOWN: set[tuple[str, str]] = set()


def group_of(module: str) -> tuple[int, str] | None:
    best: tuple[int, str] | None = None
    for level, groups in enumerate(LAYERS):
        for group in groups:
            if (module == group or module.startswith(group + ".")) and (best is None or len(group) > len(best[1])):
                best = (level, group)
    return best


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, name: str) -> list[str]:
    """Every module an import statement names anywhere in the file (also inside functions and TYPE_CHECKING)."""
    tree = ast.parse(path.read_text("utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.append(module)
            # `from bot import x` names module bot.x when x is a module.
            folder = ROOT.joinpath(*module.split("."))
            found.extend(f"{module}.{alias.name}" for alias in node.names
                         if (folder / f"{alias.name}.py").exists() or (folder / alias.name).is_dir())
    return found


def allowed(here: tuple[int, str], there: tuple[int, str]) -> bool:
    return there[1] == here[1] or there[0] > here[0] or here[0] == there[0] == BASE


def violations() -> set[tuple[str, str, str]]:
    bad: set[tuple[str, str, str]] = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = module_name(path)
            if name == "bot":
                continue  # the namespace's empty __init__
            here = group_of(name)
            assert here is not None, f"{name} belongs to no layer: add it to LAYERS"
            for target in imported_modules(path, name):
                there = group_of(target)
                if there is None or allowed(here, there):
                    continue
                bad.add((name, here[1], target))
    return bad


def test_imports_point_down() -> None:
    unexpected = sorted((importer, target) for importer, _, target in violations() if (importer, target) not in KNOWN)
    assert not unexpected, "imports against the layer rule:\n" + "\n".join(f"  {a} imports {b}" for a, b in unexpected)


def test_known_violations_still_exist() -> None:
    """A fixed violation leaves KNOWN too, so the list only shrinks."""
    present = {(importer, target) for importer, _, target in violations()}
    assert not (KNOWN - present), f"no longer violated, remove from KNOWN: {sorted(KNOWN - present)}"


def test_rule_catches_an_upward_import() -> None:
    """The walk itself works: the upward imports this layout removed would each be reported."""
    for importer, target in [("bot.errors", "bot.llm.types"), ("bot.store.knowledge", "knowledge.bm25"),
                             ("bot.accounting.pricing", "bot.conversation.context_window"),
                             ("knowledge.search", "bot.console"), ("bot.slack.reply", "bot.console.render"),
                             ("tools.registry", "bot.accounting.meter"), ("bot.llm.openai", "bot.store")]:
        here, there = group_of(importer), group_of(target)
        assert here and there and not allowed(here, there), (importer, target)
    assert allowed(group_of("bot.slack.reply"), group_of("bot.store"))  # type: ignore[arg-type]
