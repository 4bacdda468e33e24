"""The results table: one row per workload, one column per system/client.

Every cell holds a number, ``n/a: reason`` (the client cannot run that
workload) or ``error [En]`` (the message is listed under the table).  Next
to each number: how many times in-process DuckDB's cost it is, measured in
the same run (time / in-process time, or in-process rate / rate, so >1 is
slower).  Under the table, the issue's targets with the measured ratio and
whether each is met.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from workloads import Workload


@dataclass(frozen=True)
class Column:
    key: str
    label: str


COLUMNS = [
    Column("inproc", "in-process DuckDB"),
    Column("bare", "bare Flight DoGet (pyarrow client)"),
    Column("min_adbc", "minimal Flight SQL (ADBC)"),
    Column("quack", "DuckDB quack (ADBC)"),
    Column("this_adbc", "this server (ADBC)"),
    Column("min_lean", "minimal Flight SQL (pyarrow client)"),
    Column("this_lean", "this server (pyarrow client)"),
]
BASE = "inproc"


@dataclass(frozen=True)
class Target:
    """``column``'s figure against ``factor`` x ``versus``'s figure."""

    text: str
    workload: str
    column: str
    versus: str
    factor: float


TARGETS = [
    Target("`SELECT 1` p50 through ADBC at or below quack's", "select1", "this_adbc", "quack", 1.0),
    Target("`SELECT 1` p50 through the lean client within 1.10x of the minimal Flight SQL server",
           "select1", "this_lean", "min_lean", 1.10),
    Target("pull `lineitem` through ADBC within 1.05x of bare Flight", "pull", "this_adbc",
           "bare", 1.05),
    Target("pull `lineitem` through ADBC within 1.15x of in-process", "pull", "this_adbc",
           "inproc", 1.15),
    Target("ingest within 1.05x of in-process CREATE TABLE AS from the same Arrow table",
           "ingest", "this_adbc", "inproc", 1.05),
    Target("8-connection Q1/Q6 at 0.97x of in-process or better", "qps", "this_adbc", "inproc",
           0.97),
    Target("small writes: transactions/s at least quack's", "writes", "this_adbc", "quack", 1.0),
    Target("small writes, prepared: transactions/s at least quack's", "writes_prepared",
           "this_adbc", "quack", 1.0),
    Target("connect + `SELECT 1` + close at or below quack's", "connect", "this_adbc", "quack",
           1.0),
]


@dataclass
class Results:
    workloads: list[Workload]
    cells: dict[tuple[str, str], float | str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def error_ref(self, message: str) -> str:
        """Register an error message once; return its short cell label."""
        if message not in self.errors:
            self.errors.append(message)
        return f"error [E{self.errors.index(message) + 1}]"

    def value(self, workload: str, column: str) -> float | None:
        v = self.cells.get((workload, column))
        return v if isinstance(v, float) else None

    def slowdown(self, w: Workload, column: str, versus: str = BASE) -> float | None:
        """How many times ``versus``'s cost ``column`` has (>1: slower)."""
        a, b = self.value(w.key, column), self.value(w.key, versus)
        if not a or not b:
            return None
        return b / a if w.higher_is_better else a / b

    def _cell(self, w: Workload, column: str) -> str:
        v = self.cells.get((w.key, column))
        if v is None:
            return "—"
        if isinstance(v, str):
            return v
        text = w.fmt.format(v)
        r = self.slowdown(w, column)
        return text if column == BASE or r is None else f"{text} ({r:.2f}x)"

    def table(self) -> str:
        head = "| workload | unit | " + " | ".join(c.label for c in COLUMNS) + " |"
        lines = [head, "|---|---|" + "---:|" * len(COLUMNS)]
        for w in self.workloads:
            cells = " | ".join(self._cell(w, c.key) for c in COLUMNS)
            lines.append(f"| {w.label} | {w.unit} | {cells} |")
        return "\n".join(lines)

    def targets(self) -> str:
        by_key = {w.key: w for w in self.workloads}
        lines = ["| target | measured | met? |", "|---|---:|:---:|"]
        for t in TARGETS:
            w = by_key[t.workload]
            a, b = self.value(w.key, t.column), self.value(w.key, t.versus)
            if a is None or b is None:
                lines.append(f"| {t.text} | not measured | — |")
                continue
            ratio = a / b
            met = ratio >= t.factor if w.higher_is_better else ratio <= t.factor
            lines.append(f"| {t.text} | {ratio:.2f}x | {'yes' if met else '**no**'} |")
        return "\n".join(lines)

    def to_markdown(self) -> str:
        parts = [self.table(), "",
                 "(Nx) = N times in-process DuckDB's cost, measured in the same run "
                 "(time / in-process time; in-process rate / rate): >1 is slower.", "",
                 "Targets (measured = this server's figure / the other's):", "", self.targets()]
        if self.notes or self.errors:
            parts.append("")
            parts.extend(f"- {n}" for n in self.notes)
            parts.extend(f"- E{i}: {e}" for i, e in enumerate(self.errors, 1))
        return "\n".join(parts)


def short_error(exc: BaseException, limit: int = 300) -> str:
    """One-line, table-safe description of an exception."""
    text = f"{type(exc).__name__}: {exc}".replace("\n", " ").replace("|", "/")
    return text if len(text) <= limit else text[: limit - 1] + "…"
