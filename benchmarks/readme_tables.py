"""The README's benchmark tables, generated from the committed result files.

Each table in README.md sits between two marker comments naming a result file of
``benchmarks/results/`` (written by a benchmark through ``_report.emit``)::

    <!-- bench:encode -->
    ...generated: table, notes, where and when it was measured...
    <!-- /bench:encode -->

``--write`` regenerates every block in place; ``--check`` exits 1 and names each block that
differs from what its result file gives (a test runs the check, so a number typed into the
README, or a result re-run without regenerating, fails the suite). A block whose result file
does not exist yet says so, in the same generated way.

    python benchmarks/readme_tables.py --write
    python benchmarks/readme_tables.py --check
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import ROOT, render, results_dir  # noqa: E402

README = ROOT / "README.md"
_BLOCK = re.compile(
    r"(?P<open><!-- bench:(?P<name>[A-Za-z0-9_.-]+) -->\n)(?P<body>.*?)(?P<close><!-- /bench:(?P=name) -->)",
    re.S,
)
_OPEN = re.compile(r"<!-- bench:([A-Za-z0-9_.-]+) -->")
_CLOSE = re.compile(r"<!-- /bench:([A-Za-z0-9_.-]+) -->")


def block_for(name: str, results: Path | None = None) -> str:
    """The generated Markdown between the markers of block ``name`` (ends with a newline)."""
    path = results_dir(results) / f"{name}.json"
    if not path.exists():
        return (
            f"_Not measured yet: no `benchmarks/results/{name}.json`; "
            "`make bench` (or the benchmark named above) writes it._\n"
        )
    return render(json.loads(path.read_text()), heading=False) + "\n"


def _markers_balanced(text: str) -> list[str]:
    opens, closes = _OPEN.findall(text), _CLOSE.findall(text)
    problems = []
    for n in sorted(set(opens) | set(closes)):
        if opens.count(n) != 1 or closes.count(n) != 1:
            problems.append(
                f"README block {n!r}: {opens.count(n)} opening and {closes.count(n)} closing "
                f"markers; it needs exactly one '<!-- bench:{n} -->' and one '<!-- /bench:{n} -->'"
            )
    return problems


def generate(text: str, results: Path | None = None) -> str:
    """``text`` with every bench block regenerated from its result file."""
    problems = _markers_balanced(text)
    if problems:
        raise ValueError(problems[0])
    return _BLOCK.sub(lambda m: m["open"] + block_for(m["name"], results) + m["close"], text)


def check(text: str, results: Path | None = None) -> list[str]:
    """One line per block of ``text`` that differs from its generator (empty: all match)."""
    problems = _markers_balanced(text)
    if problems:
        return problems
    out = []
    for m in _BLOCK.finditer(text):
        want = block_for(m["name"], results)
        if m["body"] != want:
            have = m["body"].splitlines()
            exp = want.splitlines()
            first = next(
                (i for i, (a, b) in enumerate(zip(have, exp, strict=False)) if a != b),
                min(len(have), len(exp)),
            )
            out.append(
                f"README block {m['name']!r} differs from benchmarks/results/{m['name']}.json "
                f"at its line {first + 1}: run `python benchmarks/readme_tables.py --write`"
            )
    return out


def blocks(text: str) -> list[str]:
    """Names of the bench blocks in ``text``, in order."""
    return [m["name"] for m in _BLOCK.finditer(text)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--write", action="store_true", help="regenerate the blocks in place")
    g.add_argument("--check", action="store_true", help="exit 1 when a block is out of date")
    ap.add_argument("--readme", type=Path, default=README)
    ap.add_argument("--results", type=Path, default=None, help="results folder")
    args = ap.parse_args(argv)
    text = args.readme.read_text()
    if args.check:
        problems = check(text, args.results)
        for p in problems:
            print(p, file=sys.stderr)
        if not problems:
            print(f"{args.readme}: {len(blocks(text))} benchmark tables match their results")
        return 1 if problems else 0
    new = generate(text, args.results)
    if new != text:
        args.readme.write_text(new)
    print(
        f"{args.readme}: regenerated {len(blocks(new))} benchmark tables ({', '.join(blocks(new))})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
