"""Pictures of the shipped dataflows for docs/dataflow.md, drawn by Hamilton's own visualization.

    scripts/dataflow-pictures      # writes docs/dataflow/<dataflow>.dot and .svg (needs Graphviz's `dot`)

Hamilton emits its nodes and edges in an order that changes from one process to the next, so the
DOT source is put in a canonical order (statements sorted, blocks kept whole) before it is written.
The tests regenerate it and compare it with the committed file, never the image bytes: a changed
dataflow fails CI until its picture is regenerated.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PICTURES = ROOT / "docs" / "dataflow"
TABLE = re.compile(r"(<table[^>]*>)((?:<tr>.*?</tr>)+)(</table>)")  # a node's inputs, listed in set order


def dataflows() -> dict:
    """Each shipped dataflow's module and the config its picture shows (sales: the daily run)."""
    from hamilton_pipelines import ml_pipeline, sales_analytics

    return {"sales_analytics": (sales_analytics, {"sales_scope": "daily"}), "ml_pipeline": (ml_pipeline, {})}


def dot_source(module, config: dict) -> str:
    """Hamilton's picture of the dataflow as DOT, in canonical order."""
    from hamilton import driver

    dr = driver.Builder().with_modules(module).with_config(config).build()
    graph = dr.display_all_functions(None, show_legend=True, orient="TB")
    return canonical(graph.source)


def canonical(source: str) -> str:
    """The DOT statements of each block sorted (attribute statements first), nested blocks whole,
    and the rows of the input tables sorted."""
    lines = [TABLE.sub(_sorted_rows, line) for line in source.strip().splitlines()]
    opening = next(i for i, line in enumerate(lines) if line.rstrip().endswith("{"))  # `digraph {`
    body, _ = _block(lines, opening + 1)
    return "\n".join([*lines[: opening + 1], *body, "}"]) + "\n"


def _block(lines: list[str], i: int) -> tuple[list[str], int]:
    """The statements from line `i` to the closing brace of their block, sorted; and where it ends."""
    settings: list[str] = []
    statements: list[list[str]] = []
    while lines[i].strip() != "}":
        line = lines[i]
        if line.rstrip().endswith("{"):
            inner, i = _block(lines, i + 1)
            statements.append([line, *inner, lines[i]])
        elif line.strip().startswith(("graph [", "node [", "edge [")):
            settings.append(line)
        else:
            statements.append([line])
        i += 1
    return [*settings, *(line for statement in sorted(statements) for line in statement)], i


def _sorted_rows(table: re.Match) -> str:
    return table.group(1) + "".join(sorted(re.findall(r"<tr>.*?</tr>", table.group(2)))) + table.group(3)


def main() -> int:
    PICTURES.mkdir(parents=True, exist_ok=True)
    for name, (module, config) in dataflows().items():
        dot = PICTURES / f"{name}.dot"
        dot.write_text(dot_source(module, config))
        subprocess.run(["dot", "-Tsvg", str(dot), "-o", str(dot.with_suffix(".svg"))], check=True)
        print(f"wrote {dot.relative_to(ROOT)} and {dot.with_suffix('.svg').relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
