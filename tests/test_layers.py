"""The house keeps its shape: no import circles, and no import from a lower layer to a higher one.

The layer order is written once, in docs/ARCHITECTURE.md (the fenced block under "## Layers",
lowest first); this test reads it from there, so the map and the code cannot drift apart.
Every import counts, including lazy ones inside functions and those under TYPE_CHECKING: a
circle held apart only at run time is still a circle for the reader.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("monitor", "probes", "rules")


def layer_order() -> list[str]:
    """Package prefixes, lowest layer first, from docs/ARCHITECTURE.md."""
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    section = text.split("## Layers", 1)[1]
    block = re.search(r"```text\n(.*?)```", section, re.S)
    assert block, "docs/ARCHITECTURE.md: ## Layers needs a ```text block of layers"
    layers = [line.split("#", 1)[0].strip() for line in block.group(1).splitlines()]
    return [layer for layer in layers if layer]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    """Every module of the product, compiled ones (a C source) included; `monitor` itself is
    only a namespace (a docstring) and in no layer."""
    found = {module_name(p): p for pkg in PACKAGES for ext in ("*.py", "*.c") for p in sorted((ROOT / pkg).rglob(ext))}
    assert not imports(found["monitor"], "monitor", set(found)), "monitor/__init__.py must stay a docstring"
    del found["monitor"]
    return found


def imports(path: Path, name: str, known: set[str]) -> set[str]:
    """fleetmon modules that `path` (module `name`) imports, anywhere in the file (none from C)."""
    if path.suffix == ".c":
        return set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            # `from pkg import mod` imports the module pkg.mod when there is one
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imports(path, name, known) for name, path in mods.items()}


def layer_of(module: str, order: list[str]) -> int:
    """Index of the most specific layer prefix that `module` falls under."""
    best = [(len(p), i) for i, p in enumerate(order) if module == p or module.startswith(p + ".")]
    assert best, f"{module} is in no layer of docs/ARCHITECTURE.md"
    return max(best)[1]


def circles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in sorted(g):
        if root in index:
            continue
        work = [(root, iter(sorted(g[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(g.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


def test_layer_order_is_written_and_covers_every_module():
    order = layer_order()
    assert order[0] == "monitor.core" and order[-1] == "monitor.app", order
    for module in modules():
        layer_of(module, order)


def test_no_import_circles():
    found = circles(graph())
    assert not found, "import circles:\n" + "\n".join(" ↔ ".join(c) for c in found)


def test_no_import_from_a_lower_layer_to_a_higher_one():
    order = layer_order()
    upward = [
        f"{module} ({order[layer_of(module, order)]}) imports {target} ({order[layer_of(target, order)]})"
        for module, targets in sorted(graph().items())
        for target in sorted(targets)
        if layer_of(target, order) > layer_of(module, order)
    ]
    assert not upward, "imports against the layer order:\n" + "\n".join(upward)


@pytest.mark.parametrize(
    "g, expected",
    [
        ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
        ({"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"c"}}, [["a", "b"], ["c", "d"]]),
    ],
)
def test_the_circle_finder_finds_circles(g, expected):
    assert sorted(circles(g)) == expected


def test_the_import_reader_sees_lazy_and_type_checking_imports(tmp_path, monkeypatch):
    source = tmp_path / "m.py"
    source.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from x.y import Z\n"
        "def f():\n    import x.w\n    from . import v\n",
        encoding="utf-8",
    )
    assert imports(source, "x.m", {"x.y", "x.w", "x.v", "x"}) == {"x.y", "x.w", "x.v"}
