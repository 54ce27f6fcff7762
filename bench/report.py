"""The benchmark's output: one table per database, and the JSON of the whole run.

Each row is one measurement: taskq's number, the references beside it (the original
django-taskq and the bare SQL loop, measured in the same run), the ratios, the target
from DESIGN.md and whether it is met. A measurement that failed shows its error.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.databases import LABELS

HEADER = (
    "measurement",
    "taskq",
    "original",
    "bare SQL",
    "taskq/orig",
    "taskq/bare",
    "target",
    "met",
)
Row = tuple[str, str, str, str, str, str, str, str]


def _rate(result: dict[str, Any] | None) -> str:
    if not result:
        return "-"
    if "error" in result:
        return "error"
    return f"{result['rate']:,.0f}/s"


def _ratio(a: dict[str, Any] | None, b: dict[str, Any] | None, key: str = "rate") -> float | None:
    if not a or not b or "error" in a or "error" in b or not b.get(key):
        return None
    return a[key] / b[key]


def _fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _met(ok: bool | None) -> str:
    return "-" if ok is None else ("yes" if ok else "NO")


def _clean(result: dict[str, Any] | None) -> bool:
    return bool(result) and not any(
        result.get(k) for k in ("duplicates", "missing", "dead_workers", "left")
    )  # type: ignore[union-attr]


def _faults(result: dict[str, Any] | None) -> str:
    if not result or "error" in result:
        return "-"
    text = f"{result['duplicates']}/{result['missing']}/{result['dead_workers']}"
    if result.get("locked_messages"):
        text += f" ({result['locked_messages']}x locked)"
    if result.get("left"):
        text += f", {result['left']} left"
    if "written" in result and result["written"] != result["executions"]:
        text += f", {result['written']} rows written"
    return text


def _ms(result: dict[str, Any] | None, *keys: str) -> str:
    if not result:
        return "-"
    if "error" in result:
        return "error"
    return " / ".join(f"{result[key]:.1f}" for key in keys)


def _drain_rows(
    label: str,
    mine: dict[str, Any] | None,
    orig: dict[str, Any] | None,
    bare: dict[str, Any] | None,
) -> list[Row]:
    """Return a drain's row (beside the original and the bare loop), its faults row and,
    if sampled, the most connections a worker held."""
    to_bare = _ratio(mine, bare)
    ok = None if to_bare is None else to_bare >= 0.75 and _clean(mine)
    out: list[Row] = [
        (
            label,
            _rate(mine),
            _rate(orig),
            _rate(bare),
            _fmt_ratio(_ratio(mine, orig)),
            _fmt_ratio(to_bare),
            ">= 0.75x bare",
            _met(ok),
        ),
        (
            "  dup/missing/dead",
            _faults(mine),
            _faults(orig),
            "-",
            "-",
            "-",
            "0/0/0",
            _met(None if not mine or "error" in mine else _clean(mine)),
        ),
    ]
    held = (mine or {}).get("connections_per_worker_max")
    if held is not None:
        out.append(
            ("  connections/worker, max", str(held), "-", "-", "-", "-", "<= 2", _met(held <= 2))
        )
    return out


def _pressure_rows(result: dict[str, Any]) -> list[Row]:
    """Per phase of the pressure cell: throughput, claim p50/p99, dead rows, backlog."""
    if "error" in result:
        return [("pressure", "error", "-", "-", "-", "-", "", "")]
    out: list[Row] = []
    hold = result["hold_seconds"]
    for name, phase in result["phases"].items():
        label = f"pressure {name}" + (f" ({hold:g}s open)" if name == "during" else "")
        rate = f"{phase['rate']:,.0f}/s" if "rate" in phase else "-"
        claim = _ms(phase, "claim_p50_ms", "claim_p99_ms") if "claim_p50_ms" in phase else "-"
        dead = f"dead {phase.get('dead_start', '?')}->{phase.get('dead_end', '?')}"
        backlog = f"backlog max {phase.get('backlog_max', '?')}"
        out.append((label, rate, "-", "-", "-", "-", f"claim ms {claim}", f"{dead}, {backlog}"))
    recovery = result.get("recovery_seconds")
    out.append(
        (
            "  recovery after the transaction ends",
            "-" if recovery is None else f"{recovery:.1f} s",
            "-",
            "-",
            "-",
            "-",
            f"asked {result['rate_asked']:g}/s, {result['workers']} workers",
            f"{result.get('duplicates', '?')} dup / {result.get('missing', '?')} missing",
        )
    )
    return out


def rows(vendor: str, results: dict[str, Any]) -> list[Row]:
    out: list[Row] = []
    get: Callable[[str], Any] = results.get

    delay, orig_delay = get("delay"), get("original_delay")
    ratio = _ratio(delay, orig_delay)
    if delay or orig_delay:
        out.append(
            (
                "enqueue: delay()",
                _rate(delay),
                _rate(orig_delay),
                "-",
                _fmt_ratio(ratio),
                "-",
                ">= original",
                _met(None if ratio is None else ratio >= 1),
            )
        )
    bulk = get("bulk")
    if bulk:
        ok = None if "error" in bulk else bulk["rate"] >= 50_000
        out.append(
            ("enqueue: enqueue_many()", _rate(bulk), "-", "-", "-", "-", ">= 50,000/s", _met(ok))
        )

    for workers in (1, 2, 4):
        plural = "s" if workers > 1 else ""
        mine, orig, bare = (
            get(f"drain_{workers}"),
            get(f"original_drain_{workers}"),
            get(f"bare_{workers}"),
        )
        if mine or orig or bare:
            out += _drain_rows(f"drain: {workers} worker{plural}", mine, orig, bare)
        info = get("drain_1_info") if workers == 1 else None
        if info:
            out.append(
                (
                    "  -l INFO (the default), 2 lines a task",
                    _rate(info),
                    "-",
                    "-",
                    "-",
                    _fmt_ratio(_ratio(info, bare)),
                    f"{_fmt_ratio(_ratio(info, mine))} of WARNING; 0/0/0",
                    _met(None if "error" in info else _clean(info)),
                )
            )
    body = get("body")
    if body and "error" not in body:
        out.append(
            (
                "write task's body alone: Django / driver",
                f"{body['rate']:,.0f}/s",
                "-",
                f"{body['driver_rate']:,.0f}/s",
                "-",
                f"{body['rate'] / body['driver_rate']:.2f}x",
                f"CPU {body['cpu_us']:.0f} / {body['driver_cpu_us']:.0f} us"
                + (f", ORM {body['orm_cpu_us']:.0f}" if "orm_cpu_us" in body else ""),
                "-",
            )
        )
    for workers in (1, 2, 4):
        plural = "s" if workers > 1 else ""
        kept, age0, bare = (
            get(f"drain_write_{workers}"),
            get(f"drain_write_{workers}_age0"),
            get(f"bare_write_{workers}"),
        )
        if kept or bare:
            out += _drain_rows(f"drain, write: {workers} worker{plural}", kept, None, bare)
        django = get(f"bare_write_{workers}_django")
        if django:
            out.append(
                (
                    "  bare, INSERT through Django's cursor",
                    "-",
                    "-",
                    _rate(django),
                    "-",
                    _fmt_ratio(_ratio(kept, django)),
                    f"{_fmt_ratio(_ratio(django, bare))} of bare (Django's share)",
                    "-",
                )
            )
        one_commit = get(f"bare_write_{workers}_one_commit")
        if one_commit:
            out.append(
                (
                    "  bare, INSERT in the claim's commit",
                    "-",
                    "-",
                    _rate(one_commit),
                    "-",
                    _fmt_ratio(_ratio(kept, one_commit)),
                    "(not a floor)",
                    "-",
                )
            )
        if age0:
            label = f"drain, write: {workers} worker{plural}, CONN_MAX_AGE=0"
            out += _drain_rows(label, age0, None, bare)
            to_kept = _ratio(age0, kept)
            ok = None if to_kept is None else to_kept >= 0.90
            out.append(
                (
                    "  age 0 / age None",
                    _fmt_ratio(to_kept),
                    "-",
                    "-",
                    "-",
                    "-",
                    ">= 0.90x",
                    _met(ok),
                )
            )

    limit = 5.0 if vendor == "postgresql" else 100.0
    for label, pickup, orig_pickup in (
        ("pickup ms p50 / p95", get("pickup"), get("original_pickup")),
        ("pickup ms p50 / p95, CONN_MAX_AGE=0", get("pickup_age0"), None),
    ):
        if not (pickup or orig_pickup):
            continue
        ok = None if not pickup or "error" in pickup else pickup["p50_ms"] <= limit
        out.append(
            (
                label,
                _ms(pickup, "p50_ms", "p95_ms"),
                _ms(orig_pickup, "p50_ms", "p95_ms"),
                "-",
                _fmt_ratio(_ratio(pickup, orig_pickup, "p50_ms")),
                "-",
                f"p50 <= {limit:g} ms",
                _met(ok),
            )
        )
    eta = get("eta")
    if eta:
        ok = None if "error" in eta else eta["p50_ms"] <= 100 and eta["early"] == 0
        text = _ms(eta, "p50_ms", "p95_ms", "min_ms")
        out.append(
            ("ETA late ms p50/p95/min", text, "-", "-", "-", "-", "p50 <= 100, min >= 0", _met(ok))
        )

    depth = get("depth")
    if depth:
        if "error" in depth:
            out.append(("claim at depth", "error", "-", "-", "-", "-", "p99 <= 2x empty", "-"))
        else:
            out.append(
                (
                    "claim ms p50/p99, empty",
                    _ms(depth["empty"], "p50_ms", "p99_ms"),
                    "-",
                    "-",
                    "-",
                    "-",
                    "",
                    "",
                )
            )
            label = f"claim ms p50/p99, {depth['due'] + depth['future'] + depth['failed']:,} rows"
            out.append(
                (
                    label,
                    _ms(depth["deep"], "p50_ms", "p99_ms"),
                    "-",
                    "-",
                    "-",
                    "-",
                    "p99 <= 2x empty",
                    _met(depth["p99_ratio"] <= 2) + f" ({depth['p99_ratio']:.2f}x)",
                )
            )

    limits = get("limits")
    if limits:
        if "error" in limits:
            out.append(("claim with limits", "error", "-", "-", "-", "-", "", "-"))
        else:
            for case in (
                "no_pause_test",
                "unlimited",
                "paused_other",
                "concurrency",
                "rate",
                "both",
            ):
                ratio = limits["p50_ratio_vs_unlimited"][case]
                out.append(
                    (
                        f"claim ms p50/p99, {case}",
                        _ms(limits[case], "p50_ms", "p99_ms"),
                        "-",
                        "-",
                        "-",
                        "-",
                        "unlimited: no slower" if case == "no_pause_test" else "",
                        f"{ratio:.2f}x unlimited",
                    )
                )

    pages = (depth or {}).get("admin_pages")
    if pages:
        for name, seconds in pages["seconds"].items():
            out.append(
                (
                    f"admin page: {name}",
                    f"{seconds:.3f} s",
                    "-",
                    "-",
                    "-",
                    "-",
                    "< 1 s",
                    _met(seconds < 1),
                )
            )

    for workers in (8, 16):
        mine, bare = get(f"many_{workers}"), get(f"bare_many_{workers}")
        if mine or bare:
            out += _drain_rows(f"drain, write: {workers} workers", mine, None, bare)
    pressure = get("pressure")
    if pressure and "skipped" not in pressure:
        out += _pressure_rows(pressure)

    memory = get("memory")
    if memory:
        if "error" in memory:
            out.append(("worker RSS", "error", "-", "-", "-", "-", "+-10 %", "-"))
        else:
            text = f"{memory['start_mib']} -> {memory['end_mib']} MiB ({memory['growth']:+.1%})"
            label = f"worker RSS, {memory['tasks']:,} tasks, DEBUG"
            out.append(
                (label, text, "-", "-", "-", "-", "+-10 %", _met(abs(memory["growth"]) <= 0.10))
            )
    return out


def table(vendor: str, version: str, results: dict[str, Any]) -> str:
    body = rows(vendor, results)
    widths = [max(len(row[i]) for row in [HEADER, *body]) for i in range(len(HEADER))]

    def line(row: tuple[str, ...]) -> str:
        return "  ".join(
            cell.ljust(width) for cell, width in zip(row, widths, strict=True)
        ).rstrip()

    title = f"{LABELS[vendor]} {version}"
    rule = "-" * len(line(HEADER))
    errors = [
        f"  {name}: {r['error'].strip().splitlines()[-1]}"
        for name, r in results.items()
        if isinstance(r, dict) and "error" in r
    ]
    return "\n".join([title, rule, line(HEADER), rule, *map(line, body), rule, *errors])


def write_json(run: dict[str, Any], path: Path | None) -> Path:
    if path is None:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        path = Path("bench-results") / f"{stamp}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(run, indent=2, default=str) + "\n")
    return path
