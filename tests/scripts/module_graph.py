#!/usr/bin/env python3
"""Checks the module graph that lib.rs's Layout promises, without building anything.

- pipeline-core's top-level modules import one another without a cycle (non-test code only);
- src-tauri reaches into pipeline_core only through `api`;
- the `vigil` binary does not name the SQLite store (it goes through the facade).

Prints each violation with file:line and exits 1 if there is any.
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
CORE = ROOT / "pipeline-core" / "src"
USE_CRATE = re.compile(r"\bcrate::([a-z_][a-z0-9_]*)")
USE_GROUP = re.compile(r"use crate::\{([^;]*)\}", re.S)
TEST_START = re.compile(r"^\s*#\[cfg\(test\)\]\s*$")


def non_test_text(path):
    """The file's lines up to its `#[cfg(test)]` module, or none for a tests file."""
    if path.name == "tests.rs" or "tests" in path.parts[len(CORE.parts):-1]:
        return []
    lines = path.read_text().splitlines()
    out = []
    for i, line in enumerate(lines):
        if TEST_START.match(line) and i + 1 < len(lines) and re.match(r"\s*(pub(\(crate\))? )?mod ", lines[i + 1]):
            break
        if not line.lstrip().startswith("//"):
            out.append((i + 1, line))
    return out


def top_module(path):
    rel = path.relative_to(CORE)
    return rel.parts[0].removesuffix(".rs")


def core_edges():
    edges = {}
    for path in sorted(CORE.rglob("*.rs")):
        if path.parts[len(CORE.parts)] == "bin" or path.name == "lib.rs":
            continue
        src = top_module(path)
        lines = non_test_text(path)
        text = "\n".join(l for _, l in lines)
        targets = set()
        for n, line in lines:
            for m in USE_CRATE.finditer(line):
                targets.add((m.group(1), f"{path.relative_to(ROOT)}:{n}"))
        for group in USE_GROUP.finditer(text):
            for name in re.findall(r"(?:^|[,{]\s*)([a-z_][a-z0-9_]*)", group.group(1)):
                line_no = text[: group.start()].count("\n") + 1
                targets.add((name, f"{path.relative_to(ROOT)}:{lines[line_no - 1][0]}"))
        for target, where in targets:
            if target != src and target not in ("self", "super"):
                edges.setdefault(src, {}).setdefault(target, where)
    return edges


def find_cycles(edges):
    cycles, state, stack = [], {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges.get(node, {})):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node)
    return cycles


def main():
    problems = []
    edges = core_edges()
    for cycle in find_cycles(edges):
        hops = [f"{a} -> {b} ({edges[a][b]})" for a, b in zip(cycle, cycle[1:])]
        problems.append("import cycle: " + "; ".join(hops))
    for path in sorted((ROOT / "src-tauri" / "src").rglob("*.rs")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            for m in re.finditer(r"pipeline_core::([a-z_][a-z0-9_]*)", line):
                if m.group(1) != "api":
                    problems.append(f"{path.relative_to(ROOT)}:{n}: src-tauri imports pipeline_core::{m.group(1)}; only api is allowed")
            g = re.search(r"use pipeline_core::\{([^}]*)", line)
            if g:
                for name in re.findall(r"([a-z_][a-z0-9_]*)(?:::|\s*[,}]|$)", g.group(1)):
                    if name != "api":
                        problems.append(f"{path.relative_to(ROOT)}:{n}: src-tauri imports pipeline_core::{name}; only api is allowed")
    for path in sorted((CORE / "bin").rglob("*.rs")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"SqliteStore|store::sqlite", line):
                problems.append(f"{path.relative_to(ROOT)}:{n}: the binary names the SQLite store; go through api::Admin")
    for p in problems:
        print(p)
    if problems:
        print(f"module graph: {len(problems)} problem(s)")
        return 1
    print(f"module graph: {len(edges)} modules, acyclic; src-tauri uses api only; the binary goes through the facade")
    return 0


if __name__ == "__main__":
    sys.exit(main())
