"""The folders are the architecture (docs/architecture.md): which room may import which.

Read from the source with ``ast`` (imports inside functions count too), so a shortcut from
voice into the tools or the memory layer, or from the runtime into the fakes, fails here
rather than in a review.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imports_of(folder: str) -> dict[str, set[str]]:
    """Every module each ``.py`` file under ``folder`` imports (absolute, first-party or not)."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / folder).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module)
        found[str(path.relative_to(ROOT))] = names
    return found


def rooms(names: set[str]) -> set[str]:
    """The first-party rooms among ``names`` (``app.web.server`` → ``app.web``, ``graphs.x`` → ``graphs``)."""
    out = set()
    for name in names:
        parts = name.split(".")
        if parts[0] == "app":
            out.add(".".join(parts[:2]) if len(parts) > 1 and parts[1] in ("web", "cli", "eval") else "app")
        elif parts[0] in ("graphs", "memories", "tools", "voice", "tests"):
            out.add(parts[0])
    return out


@pytest.mark.parametrize(("folder", "allowed"), [
    ("memories", {"memories"}),
    ("tools", {"tools", "memories"}),
    ("graphs", {"graphs", "tools", "memories"}),
    ("voice", {"voice", "graphs"}),  # voice depends on graphs only
])
def test_each_room_imports_only_the_rooms_below_it(folder: str, allowed: set[str]) -> None:
    wrong = {path: sorted(rooms(names) - allowed) for path, names in imports_of(folder).items()
             if rooms(names) - allowed}
    assert not wrong, wrong


def test_the_runtime_never_reaches_the_fakes_or_the_tests() -> None:
    # The fakes (and their TLS certificate, hence cryptography) are for tests and benchmarks only.
    runtime = {**imports_of("app/web"), **imports_of("app/cli"), **imports_of("voice"), **imports_of("graphs"),
               **{p: n for p, n in imports_of("app").items() if p.count("/") == 1}}
    wrong = {path: sorted(n for n in names if n.startswith(("app.eval.fakes", "tests")) or n == "cryptography")
             for path, names in runtime.items()}
    assert not {p: n for p, n in wrong.items() if n}, wrong


def test_the_core_of_app_does_not_import_its_wings() -> None:
    core = {p: rooms(n) & {"app.web", "app.cli", "app.eval"} for p, n in imports_of("app").items()
            if p.count("/") == 1}
    assert not {p: r for p, r in core.items() if r}, core


def test_the_wings_cross_only_where_the_cli_and_the_benchmarks_need_to() -> None:
    # The CLI starts the server (serve) and runs the evaluations and benchmarks; the serve
    # benchmark times the web app. Nothing else crosses: the server never reaches the CLI or the evals.
    web = {p: rooms(n) & {"app.cli", "app.eval"} for p, n in imports_of("app/web").items()}
    evals = {p: rooms(n) & ({"app.cli"} if p.startswith("app/eval/bench/") else {"app.cli", "app.web"})
             for p, n in imports_of("app/eval").items()}
    assert not {p: r for p, r in {**web, **evals}.items() if r}, {**web, **evals}
