"""The gateway benchmark's results as one table, and each chatgate row against the targets."""

from __future__ import annotations

import statistics
from typing import Any


def median_of(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    keys = [k for k, v in rounds[0].items() if isinstance(v, int | float)]
    merged: dict[str, Any] = {k: statistics.median(r[k] for r in rounds) for k in keys}
    merged["errors"] = sum(r["errors"] for r in rounds)
    return merged


def table(results: dict[str, dict[str, Any]], connections: int) -> str:
    direct = results["upstream direct (nginx)"]
    head = (
        "| target | p50 @1 conn | p99 @1 conn | fastest @1 conn | added to p50 "
        f"| req/s @{connections} conns | CPU per request | stream 1st byte p50 "
        "| stream 1st token p50 |"
    )
    lines = [head, "|" + " --- |" * 9]
    for name, r in results.items():
        added = "" if r is direct else f"{r['p50_ms'] - direct['p50_ms']:+.2f} ms"
        cpu = f"{r['cpu_us_per_request']:,.0f} µs" if r["cpu_us_per_request"] else ""
        lines.append(
            f"| {name} | {r['p50_ms']:.2f} ms | {r['p99_ms']:.2f} ms | {r['min_ms']:.2f} ms "
            f"| {added} | {r['rps']:,.0f} | {cpu} | {r['first_byte_p50_ms']:.2f} ms "
            f"| {r['first_token_p50_ms']:.2f} ms |"
        )
    return "\n".join(lines)


def verdicts(results: dict[str, dict[str, Any]]) -> list[str]:
    lines = []
    gateways = [name for name in results if name.startswith("chatgate")]
    for name in gateways:
        prefix = f"{name}: " if len(gateways) > 1 else ""
        lines += [prefix + line for line in _verdicts_of(results, results[name])]
    for name, r in results.items():
        if r["engine_calls_unexplained"] > 0.01 * r["wrk_requests"]:
            lines.append(
                f"NOTE: {name} called the engine {r['engine_calls_per_request']:.2f} times per "
                "request under load (a cache answering, retries, or requests lost?)"
            )
    errors = {n: r["errors"] for n, r in results.items() if r["errors"]}
    if errors:
        lines.append(f"ERRORS during the loads (non-2xx, timeouts, resets): {errors}")
    return lines


def _verdicts_of(results: dict[str, dict[str, Any]], gate: dict[str, Any]) -> list[str]:
    direct = results["upstream direct (nginx)"]
    litellm = next((r for n, r in results.items() if n.startswith("LiteLLM")), None)
    lines = []
    if litellm:
        ratio = gate["rps"] / litellm["rps"]
        cpu_ratio = litellm["cpu_us_per_request"] / gate["cpu_us_per_request"]
        lines.append(
            f"throughput vs LiteLLM: {ratio:.1f}x (target >= 20x): "
            f"{'met' if ratio >= 20 else 'NOT met'}; CPU per request: {cpu_ratio:.1f}x less"
        )
    added = gate["p50_ms"] - direct["p50_ms"]
    fastest = gate["min_ms"] - direct["min_ms"]
    lines.append(
        f"added to the median at 1 connection: {added:.2f} ms (target <= 0.5 ms): "
        f"{'met' if added <= 0.5 else 'NOT met'}; to the fastest request: {fastest:.2f} ms"
    )
    for key, label in (("first_byte_p50_ms", "byte"), ("first_token_p50_ms", "token")):
        delta = gate[key] - direct[key]
        lines.append(
            f"streaming first {label} vs direct: {delta:+.2f} ms (target within 1 ms): "
            f"{'met' if delta <= 1.0 else 'NOT met'}"
        )
    return lines


DIRECT = "upstream direct (nginx)"
# The tool-calling request's target (issue 8, item 6): chatgate's added latency and CPU per
# request within 20 % of the plain request's.
TOOLS_LIMIT = 1.2


def _added(results: dict[str, dict[str, Any]], name: str) -> dict[str, float]:
    """What a target adds to the direct call of the same request, and its own CPU."""
    r, direct = results[name], results[DIRECT]
    return {
        "p50": r["p50_ms"] - direct["p50_ms"],
        "p99": r["p99_ms"] - direct["p99_ms"],
        "cpu": r["cpu_us_per_request"],
        "rps": r["rps"],
        "byte": r["first_byte_p50_ms"] - direct["first_byte_p50_ms"],
        "token": r["first_token_p50_ms"] - direct["first_token_p50_ms"],
        "stream": r["stream_total_p50_ms"] - direct["stream_total_p50_ms"],
    }


def _ratio(tool: float, plain: float) -> str:
    return f"{tool / plain:.2f}x" if plain > 0 else "-"


def tools_table(plain: dict[str, dict[str, Any]], tools: dict[str, dict[str, Any]]) -> str:
    """Each target's added latency and CPU for the plain and the tool-calling request, and the
    ratio of the two (tool / plain)."""
    head = (
        "| target | request | added to p50 @1 conn | added to p99 @1 conn | CPU per request "
        "| req/s | stream: added to 1st byte | to 1st token | to whole stream |"
    )
    lines = [head, "|" + " --- |" * 9]
    for name in plain:
        if name == DIRECT or name not in tools:
            continue
        a, b = _added(plain, name), _added(tools, name)
        for label, x in (("plain text", a), ("tool call", b)):
            lines.append(
                f"| {name if label == 'plain text' else ''} | {label} | {x['p50']:+.2f} ms "
                f"| {x['p99']:+.2f} ms | {x['cpu']:,.0f} µs | {x['rps']:,.0f} "
                f"| {x['byte']:+.2f} ms | {x['token']:+.2f} ms | {x['stream']:+.2f} ms |"
            )
        lines.append(
            f"| | **tool / plain** | **{_ratio(b['p50'], a['p50'])}** "
            f"| {_ratio(b['p99'], a['p99'])} "
            f"| **{_ratio(b['cpu'], a['cpu'])}** | {_ratio(b['rps'], a['rps'])} "
            f"| {_ratio(b['byte'], a['byte'])} | {_ratio(b['token'], a['token'])} "
            f"| **{_ratio(b['stream'], a['stream'])}** |"
        )
    return "\n".join(lines)


def tools_verdicts(plain: dict[str, dict[str, Any]], tools: dict[str, dict[str, Any]]) -> list[str]:
    lines = []
    for name in [n for n in plain if n.startswith("chatgate") and n in tools]:
        a, b = _added(plain, name), _added(tools, name)
        checks = [
            ("CPU per request", b["cpu"], a["cpu"], "µs", 0),
            ("added to p50 @1 conn", b["p50"], a["p50"], "ms", 2),
            ("streamed tool call, added to the whole stream", b["stream"], a["stream"], "ms", 2),
        ]
        for label, tool, base, unit, digits in checks:
            ratio = tool / base if base > 0 else float("inf")
            lines.append(
                f"{name}, tool call vs plain text, {label}: {tool:,.{digits}f} {unit} against "
                f"{base:,.{digits}f} {unit} = {ratio:.2f}x (target <= {TOOLS_LIMIT:g}x): "
                f"{'met' if ratio <= TOOLS_LIMIT else 'NOT met'}"
            )
    return lines
