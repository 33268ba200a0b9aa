"""make mutate: mutation testing of the page daemon ports with mutmut (docs/mutation.md).

    python tools/mutate.py                  # every mutant of the ported functions
    python tools/mutate.py --sample 40      # 40 of them, drawn with a fixed seed
    python tools/mutate.py --report         # the report of the last run again

The modules and the line filter are mutmut's own settings in pyproject.toml
(``[tool.mutmut] only_mutate`` and ``do_not_mutate_patterns``). This script adds what mutmut
cannot express (:func:`excluded`): only the ported functions are tested (the port's helpers
are named ``_*``), and no change confined to the type argument of ``cast()`` (a type
annotation). It runs the rest with one worker, reads mutmut's verdicts and reports them per
module, minus the equivalent mutants listed with their reasons in docs/mutation.md; with
``--fail-under PCT`` it fails if any module scores below PCT.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EQUIVALENTS = Path("docs/mutation.md")
REPORT = Path("runs/mutate-report.json")
LOG = Path("mutants/mutmut-run.log")
SEED = 17
# mutmut's verdicts (``mutmut results --all true``) as this report counts them
DETECTED = {"killed", "timeout", "caught by type check"}

_CAST_TYPE = re.compile(r"""\bcast\(\s*(?:None|"[^"]*"|'[^']*')\s*,""")
_EQUIVALENT = re.compile(r"^- `(?P<name>[^`\s]+)` `(?P<change>[^`]+)`: (?P<reason>.+)$")


def modules(pyproject: Path) -> list[str]:
    """The files mutated: ``[tool.mutmut] only_mutate``."""
    return list(tomllib.loads(pyproject.read_text())["tool"]["mutmut"]["only_mutate"])


def module_of(path: str) -> str:
    """``kernel/uvm/uvm_pdaemon.py`` -> ``kernel.uvm.uvm_pdaemon`` (mutmut's name prefix)."""
    return path.removesuffix(".py").replace("/", ".")


def function_of(name: str) -> str:
    """The mangled function of a mutant: ``x_uvm_wait`` of ``pkg.mod.x_uvm_wait__mutmut_3``."""
    return name.rpartition(".")[2].rpartition("__mutmut_")[0]


def changed_lines(diff: str) -> tuple[list[str], list[str]]:
    """The removed and added lines of a unified diff (headers left out)."""
    lines = [ln for ln in diff.splitlines() if not ln.startswith(("---", "+++", "@@"))]
    return [ln[1:] for ln in lines if ln.startswith("-")], [ln[1:] for ln in lines if ln.startswith("+")]


def change(diff: str) -> str:
    """The mutated code, one line (what docs/mutation.md quotes for an equivalent mutant)."""
    return " / ".join(ln.strip() for ln in changed_lines(diff)[1])


def excluded(name: str, diff: str) -> str | None:
    """Why the mutant is left out of the run, or None if it is tested."""
    func = function_of(name)
    if not func.startswith("x_") or func.startswith("x__"):
        return "port helper"  # a method (xǁClassǁ...) or a _helper: not a ported function
    removed, added = changed_lines(diff)
    if [_CAST_TYPE.sub("cast(T,", ln) for ln in removed] == [
        _CAST_TYPE.sub("cast(T,", ln) for ln in added
    ]:
        return "cast type"
    return None


def sample(names: list[str], n: int, seed: int = SEED) -> list[str]:
    """``n`` of ``names``, the same ones for the same list and seed."""
    return sorted(random.Random(seed).sample(sorted(names), min(n, len(names))))


@dataclass(frozen=True)
class Equivalent:
    change: str
    reason: str


def equivalents(text: str) -> dict[str, Equivalent]:
    """The list items ``- `name` `mutated code`: reason`` of docs/mutation.md."""
    out = {}
    for ln in text.splitlines():
        if m := _EQUIVALENT.match(ln):
            out[m["name"]] = Equivalent(m["change"], m["reason"])
    return out


@dataclass
class Report:
    mutants: int = 0
    excluded: Counter[str] = field(default_factory=Counter)
    status: Counter[str] = field(default_factory=Counter)
    equivalent: int = 0
    survivors: dict[str, str] = field(default_factory=dict)  # name -> change
    stale: list[str] = field(default_factory=list)  # listed equivalents that do not apply
    seconds: float = 0.0  # the time mutmut spent on the tested mutants

    @property
    def tested(self) -> int:
        return sum(self.status.values())

    @property
    def detected(self) -> int:
        return sum(v for k, v in self.status.items() if k in DETECTED)

    @property
    def score(self) -> float:
        judged = self.tested - self.equivalent
        return 100.0 * self.detected / judged if judged else 100.0


def tally(
    report: Report,
    results: dict[str, str],
    diffs: dict[str, str],
    equiv: dict[str, Equivalent],
    durations: dict[str, float] | None = None,
) -> None:
    """Count mutmut's verdicts of the tested mutants; a survivor listed as equivalent (with
    the same mutated code) counts as equivalent, a listed one that was killed is stale."""
    for name, status in sorted(results.items()):
        e = equiv.get(name)
        applies = e is not None and e.change in change(diffs[name])
        if e is not None and (not applies or status in DETECTED):
            report.stale.append(name + renumbered(name, e, results, diffs))
        report.status[status] += 1
        report.seconds += (durations or {}).get(name, 0.0)
        if status == "survived" and applies:
            report.equivalent += 1
        elif status not in DETECTED:
            report.survivors[name] = f"{status}: {change(diffs[name])}"


def renumbered(name: str, e: Equivalent, results: dict[str, str], diffs: dict[str, str]) -> str:
    """A hint for a stale entry: the other survivors of its function with the same change
    (mutmut numbers a function's mutants in order, so an edit above renumbers them)."""
    func = name.rpartition("__mutmut_")[0] + "__mutmut_"
    same = [
        n
        for n, status in sorted(results.items())
        if n != name and n.startswith(func) and status == "survived"
        and change(diffs[n]) == e.change
    ]  # fmt: skip
    return f"  (same change now: {', '.join(same)})" if same else ""


def render(report: Report, title: str, seconds: float) -> str:
    """One module's figures (``seconds``: mutmut's time on its mutants), its survivors and
    its stale equivalent entries."""
    s = report.status
    other = report.tested - s["killed"] - s["timeout"] - s["survived"]
    lines = [
        title,
        f"  mutants in the module      {report.mutants}",
        f"  left out by the filter     {sum(report.excluded.values())}  "
        + ", ".join(f"{k} {v}" for k, v in sorted(report.excluded.items())),
        f"  tested                     {report.tested}",
        f"  killed                     {s['killed']}",
        f"  timeout                    {s['timeout']}",
        f"  survived                   {s['survived']}  (of which equivalent {report.equivalent})",
        f"  other (no tests, ...)      {other}",
        f"  score                      {report.score:.1f} %  "
        "(killed + timeout) / (tested - equivalent)",
        f"  run time                   {seconds / 60:.1f} min  (mutmut's time on these mutants)",
    ]
    if report.survivors:
        lines.append("not killed:")
        lines += [f"  {n}  {c}" for n, c in sorted(report.survivors.items())]
    if report.stale:
        lines.append(f"stale entries in {EQUIVALENTS} (killed, or the mutant changed):")
        lines += [f"  {n}" for n in report.stale]
    return "\n".join(lines)


# --- the mutmut side -----------------------------------------------------------------------------


def generate(modules: list[str]) -> dict[str, str]:
    """mutmut's own first step (copy the tree to mutants/, write the mutants), then the diff of
    each mutant of ``modules`` as ``mutmut show`` prints it."""
    # imported here: mutmut.__main__ sets the process's multiprocessing start method
    from mutmut.__main__ import create_mutants
    from mutmut.mutation.diff_apply import get_diff_for_mutant
    from mutmut.utils.file_utils import copy_also_copy_files, copy_src_dir, setup_source_paths

    with contextlib.redirect_stdout(io.StringIO()):  # it prints every file it copies
        copy_src_dir()
        copy_also_copy_files()
        setup_source_paths()
        create_mutants(1)
    diffs = {}
    for path in modules:
        meta = json.loads(Path("mutants", path + ".meta").read_text())
        for name in meta["exit_code_by_key"]:
            diffs[name] = get_diff_for_mutant(name, path=path)
    return diffs


def mutmut(*args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("mutmut")
    return subprocess.run([str(exe), *args], text=True, capture_output=True, check=False)


def durations(modules: list[str]) -> dict[str, float]:
    """How long mutmut ran the tests against each mutant (seconds), from its .meta files."""
    out: dict[str, float] = {}
    for path in modules:
        meta = Path("mutants", path + ".meta")
        if meta.exists():
            out.update(json.loads(meta.read_text()).get("durations_by_key", {}))
    return out


def results() -> dict[str, str]:
    out = mutmut("results", "--all", "true").stdout
    return dict(ln.strip().split(": ", 1) for ln in out.splitlines() if ": " in ln)


def run(names: list[str]) -> None:
    exe = Path(sys.executable).with_name("mutmut")
    with LOG.open("w") as log:
        rc = subprocess.call([str(exe), "run", "--max-children", "1", *names], stdout=log, stderr=log)
    if rc != 0:
        sys.exit(f"mutmut run failed (exit {rc}); see {LOG}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sample", type=int, metavar="N", help="test N mutants drawn with --seed")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--report", action="store_true", help="report the last run, run nothing")
    ap.add_argument("--fail-under", type=float, metavar="PCT", help="exit 1 below this score")
    a = ap.parse_args(argv)

    os.chdir(ROOT)  # mutmut works in the current directory
    t0 = time.monotonic()
    files = modules(Path("pyproject.toml"))
    if a.report:
        saved = json.loads(REPORT.read_text())
        diffs, chosen, title = saved["diffs"], saved["chosen"], saved["title"]
        seconds = saved["seconds"]
    else:
        shutil.rmtree("mutants", ignore_errors=True)  # a fresh run: tests and source as they are
        diffs = generate(files)
        mods = tuple(module_of(m) + "." for m in files)
        diffs = {n: d for n, d in diffs.items() if n.startswith(mods)}
        candidates = [n for n, d in diffs.items() if excluded(n, d) is None]
        chosen = sample(candidates, a.sample, a.seed) if a.sample else sorted(candidates)
        title = f"mutation testing of {', '.join(files)}: " + (
            f"a sample of {len(chosen)}, seed {a.seed}" if a.sample else "every mutant"
        )
        print(f"{title}: {len(chosen)} to test (mutmut's log: {LOG})", flush=True)
        run(chosen)
        seconds = time.monotonic() - t0
        REPORT.parent.mkdir(exist_ok=True)
        saved = {"title": title, "diffs": diffs, "chosen": chosen, "seconds": seconds}
        REPORT.write_text(json.dumps(saved))

    verdicts = results()
    times = durations(files)
    equiv = equivalents(EQUIVALENTS.read_text())
    print(f"{title}: {seconds / 60:.1f} min of wall-clock time")
    failed = []
    for path in files:
        prefix = module_of(path) + "."
        report = Report(mutants=sum(1 for n in diffs if n.startswith(prefix)))
        for n, d in diffs.items():
            if n.startswith(prefix) and (why := excluded(n, d)) is not None:
                report.excluded[why] += 1
        mine = {n: verdicts.get(n, "not checked") for n in chosen if n.startswith(prefix)}
        tally(report, mine, diffs, equiv, times)
        print(render(report, path, report.seconds))
        if a.fail_under is not None and report.score < a.fail_under:
            failed.append(f"{path} {report.score:.1f} %")
    if failed:
        print(f"below {a.fail_under} %: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
