"""What the plugin shows, as pure functions of the objects it read (dicts, as the API server
sends them): the live view of ``get``, the text of ``status``, the tables of ``list`` and
``history``, and the documents of ``-o json|yaml``. Pure, so unit tests check them without a cluster."""

from __future__ import annotations

import datetime
import json
from typing import Any

import yaml
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from ..api.names import CONDITION_MODEL_AVAILABLE, LABEL_VERSION
from ..api.spec import RolloutSpec
from ..api.times import parse_duration, parse_time
from .webhook_view import webhook_rows

Body = dict[str, Any]


def _plain_row(table: Table, *cells: str) -> None:
    """Add a row whose cells are shown as written: rich would read server text (a status
    message, a reason, a pod name) as markup, so ``[/]`` would crash the view and
    ``[link=...]`` would put a hyperlink of the tenant's choosing on the admin's terminal."""
    table.add_row(*(Text(cell) for cell in cells))


def age(since: str | None, now: datetime.datetime) -> str:
    """kubectl's short age: 45s, 12m, 3h, 2d."""
    if not since:
        return "-"
    seconds = max(0, int((now - parse_time(since)).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def condition(md: Body, type_: str) -> Body:
    found: Body = next(
        (c for c in (md.get("status") or {}).get("conditions") or [] if c["type"] == type_), {}
    )
    return found


def headline(md: Body) -> str:
    """The one message that says most: what is wrong, else what is happening, else Ready's."""
    for type_ in ("Degraded", "Progressing"):
        cond = condition(md, type_)
        if cond.get("status") == "True":
            return f"{cond.get('reason', '')}: {cond.get('message', '')}"
    ready = condition(md, "Ready")
    return f"{ready.get('reason', '')}: {ready.get('message', '')}" if ready else ""


def pause_left(md: Body, now: datetime.datetime) -> float | None:
    """Seconds until the canary's current step may pass (its pause less the time served)."""
    canary = (md.get("status") or {}).get("canary") or {}
    started = canary.get("stepStartedAt")
    if not started:
        return None
    steps = RolloutSpec.model_validate((md.get("spec") or {}).get("rollout") or {}).effective_steps()
    step = canary.get("step", 0)
    if step >= len(steps) or steps[step].manual:
        return None
    served = (now - parse_time(started)).total_seconds()
    return max(0.0, parse_duration(steps[step].pause) - served)


def _share(canary: Body) -> str:
    share = canary.get("trafficShare")
    return f"{share:.0%}" if share is not None else "-"


def _serving(track: Body) -> str:
    return f"version {track['version']}, {track.get('readyReplicas', 0)}/{track.get('replicas', 0)} serving"


def _pod_rows(md: Body, pods: list[Body], now: datetime.datetime) -> Table:
    status = md.get("status") or {}
    tracks = {
        (status.get("stable") or {}).get("version"): "stable",
        (status.get("canary") or {}).get("version"): "canary",
    }
    table = Table(
        "POD", "VERSION", "TRACK", "STATUS", "READY", "MODEL GATE", "IP", "AGE", box=None, pad_edge=False
    )
    for pod in sorted(
        pods, key=lambda p: (p["metadata"].get("labels", {}).get(LABEL_VERSION, ""), p["metadata"]["name"])
    ):
        meta, pod_status = pod["metadata"], pod.get("status") or {}
        conditions = {c["type"]: c["status"] for c in pod_status.get("conditions") or []}
        version = (meta.get("labels") or {}).get(LABEL_VERSION, "?")
        track = tracks.get(int(version), "old") if version.isdigit() else "?"
        # A deleted pod's conditions still say Ready and open until it is gone, but its
        # endpoints are already withdrawn: it serves nothing.
        terminating = bool(meta.get("deletionTimestamp"))
        gate = {"True": "open", "False": "shut"}.get(conditions.get(CONDITION_MODEL_AVAILABLE, ""), "-")
        _plain_row(
            table,
            meta["name"],
            version,
            track,
            "Terminating" if terminating else pod_status.get("phase", "-"),
            "no" if terminating or conditions.get("Ready") != "True" else "yes",
            "-" if terminating else gate,
            pod_status.get("podIP") or "-",
            age(meta.get("creationTimestamp"), now),
        )
    return table


def rollout_view(md: Body, pods: list[Body], now: datetime.datetime) -> RenderableType:
    """``get``'s view: versions, step, weight and actual share, pause left, last check, pods."""
    meta, spec, status = md["metadata"], md.get("spec") or {}, md.get("status") or {}
    rollout = spec.get("rollout") or {}
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    stale = status.get("observedGeneration") != meta.get("generation")
    _plain_row(head, "Name", f"{meta['namespace']}/{meta['name']}")
    _plain_row(
        head,
        "Phase",
        f"{status.get('phase', '-')}" + (" (status not yet at the latest spec)" if stale else ""),
    )
    _plain_row(head, "Message", headline(md))
    _plain_row(
        head,
        "Strategy",
        f"{rollout.get('strategy', 'Canary')}" + (", paused" if rollout.get("paused") else ""),
    )
    _plain_row(head, "Requested", f"version {(spec.get('model') or {}).get('version')}")
    if status.get("shard") is not None:  # several operator replicas share the work
        _plain_row(head, "Shard", f"{status['shard']}, held by {status.get('shardHolder') or '-'}")
    stable = status.get("stable")
    if stable:
        _plain_row(head, "Stable", _serving(stable))
    canary = status.get("canary")
    if canary:
        steps = RolloutSpec.model_validate(rollout).effective_steps()
        left = pause_left(md, now)
        _plain_row(head, "Canary", _serving(canary))
        _plain_row(
            head,
            "Step",
            f"{canary.get('step', 0) + 1}/{len(steps)}, weight {canary.get('weight', 0)}%, "
            f"actual share {_share(canary)}, "
            + (
                "waiting for promote"
                if canary.get("waitingForPromote")
                else f"pause left {left:.0f}s"
                if left is not None
                else "waiting for its pods to serve"
            )
            + (", waiting for traffic" if canary.get("waitingForTraffic") else ""),
        )
        analysis = canary.get("analysis") or {}
        _plain_row(
            head,
            "Analysis",
            f"{analysis.get('passed', 0)} passed, {analysis.get('failed', 0)} failed, "
            f"{analysis.get('inconclusive', 0)} inconclusive",
        )
        last = analysis.get("lastCheck")
        if last:
            _plain_row(
                head, "Last check", f"{last.get('verdict')} at {last.get('at')}: {last.get('message', '')}"
            )
            if last.get("metrics"):
                _plain_row(head, "Metrics", metrics_summary(last["metrics"]))
            if last.get("relative"):
                _plain_row(head, "Vs stable", relative_line(last["relative"]))
    for label, text in webhook_rows((canary or {}).get("analysis") or {}):
        _plain_row(head, label, text)
    conditions = Table("CONDITION", "STATUS", "REASON", "MESSAGE", box=None, pad_edge=False)
    for cond in status.get("conditions") or []:
        _plain_row(conditions, cond["type"], cond["status"], cond.get("reason", ""), cond.get("message", ""))
    return Group(head, Text(""), _pod_rows(md, pods, now), Text(""), conditions)


def relative_line(relative: Body) -> str:
    """The relative check's figures: both versions' success rates and p99s, the p-values."""
    parts = [str(relative.get("result", "Inconclusive"))]
    rates = relative.get("canarySuccessRate"), relative.get("stableSuccessRate")
    if None not in rates:
        parts.append(f"success canary {rates[0]:.2%} vs stable {rates[1]:.2%}" + _p(relative.get("pValue")))
    p99s = relative.get("canaryLatencyP99Ms"), relative.get("stableLatencyP99Ms")
    if None not in p99s:
        parts.append(f"p99 canary {p99s[0]:g}ms vs stable {p99s[1]:g}ms" + _p(relative.get("latencyPValue")))
    return ", ".join(parts)


def _p(p_value: float | None) -> str:
    if p_value is None:
        return ""
    return " (p < 0.001)" if p_value < 0.001 else f" (p = {p_value:.3f})"


def list_table(items: list[Body], now: datetime.datetime, all_namespaces: bool) -> Table:
    """``list``: one line per resource."""
    columns = ["NAME", "PHASE", "VERSION", "STABLE", "CANARY", "WEIGHT", "SHARE", "READY", "AGE", "MESSAGE"]
    table = Table(*(["NAMESPACE", *columns] if all_namespaces else columns), box=None, pad_edge=False)
    for md in sorted(items, key=lambda m: (m["metadata"]["namespace"], m["metadata"]["name"])):
        meta, status = md["metadata"], md.get("status") or {}
        canary = status.get("canary") or {}
        row = [
            meta["name"],
            status.get("phase", "-"),
            str(((md.get("spec") or {}).get("model") or {}).get("version", "-")),
            str((status.get("stable") or {}).get("version", "-")),
            str(canary.get("version", "-")),
            f"{canary['weight']}%" if canary else "-",
            _share(canary),
            status.get("ready") or "-",
            age(meta.get("creationTimestamp"), now),
            headline(md),
        ]
        _plain_row(table, *([meta["namespace"], *row] if all_namespaces else row))
    return table


def history_table(md: Body) -> Table:
    """``history``: every version change the status remembers, oldest first."""
    table = Table("WHEN", "VERSION", "RESULT", "REASON", box=None, pad_edge=False)
    for entry in (md.get("status") or {}).get("history") or []:
        _plain_row(table, entry["at"], str(entry["version"]), entry["result"], entry.get("reason", ""))
    return table


def metrics_summary(metrics: list[Body]) -> str:
    """The custom metrics of a check: each one's value (and the stable's) and verdict."""

    def one(metric: Body) -> str:
        value, stable = metric.get("value"), metric.get("stableValue")
        shown = "no data" if value is None else f"{value:.4g}"
        against = "" if stable is None else f" vs stable {stable:.4g}"
        return f"{metric.get('name')} {shown}{against} {metric.get('result')}"

    return ", ".join(one(metric) for metric in metrics)


def _pre_traffic_lines(pre: Body | None) -> list[str]:
    """The canary's checks before it took traffic (rollout.preTraffic)."""
    if not pre:
        return []
    parts = []
    signature = pre.get("signature")
    if signature:
        diffs = "; ".join(signature.get("diffs") or [])
        parts.append(f"signature {signature.get('result')}" + (f" ({diffs})" if diffs else ""))
    golden = pre.get("golden")
    if golden:
        agreement = golden.get("agreement")
        parts.append(
            f"golden {golden.get('passed', 0)}/{golden.get('requests', 0)} passed"
            + (f", agreement {agreement:g}" if agreement is not None else "")
            + (f", first mismatch: {golden['firstMismatch']}" if golden.get("firstMismatch") else "")
        )
    if pre.get("warmedUp"):
        parts.append("warmed up")
    return [f"    pre-traffic: {', '.join(parts)}"] if parts else []


def status_text(md: Body) -> str:
    """``status``: versions, canary progress, conditions, recent history, as plain lines."""
    status = md.get("status") or {}
    spec = md.get("spec") or {}
    lines = [
        f"{md['metadata']['namespace']}/{md['metadata']['name']}: phase {status.get('phase', '-')}, "
        f"requested version {spec.get('model', {}).get('version')}, "
        f"strategy {spec.get('rollout', {}).get('strategy', 'Canary')}"
        + (" (paused)" if spec.get("rollout", {}).get("paused") else ""),
    ]
    stable = status.get("stable")
    if stable:
        lines.append(
            f"  stable: version {stable['version']}, {stable.get('readyReplicas', 0)}/"
            f"{stable.get('replicas', 0)} serving" + (f", {stable['digest']}" if stable.get("digest") else "")
        )
    canary = status.get("canary")
    if canary:
        analysis = canary.get("analysis") or {}
        lines.append(
            f"  canary: version {canary['version']}, step {canary.get('step', 0) + 1}, "
            f"weight {canary.get('weight', 0)}%"
            + (f" (gets {canary['trafficShare']:.0%})" if canary.get("trafficShare") is not None else "")
            + ", "
            f"{canary.get('readyReplicas', 0)}/{canary.get('replicas', 0)} serving; analysis "
            f"{analysis.get('passed', 0)} passed, {analysis.get('failed', 0)} failed, "
            f"{analysis.get('inconclusive', 0)} inconclusive"
        )
        last = analysis.get("lastCheck")
        if last:
            lines.append(f"    last check {last.get('at')}: {last.get('verdict')}: {last.get('message', '')}")
            if last.get("metrics"):
                lines.append(f"    metrics: {metrics_summary(last['metrics'])}")
            if last.get("relative"):
                lines.append(f"    vs stable: {relative_line(last['relative'])}")
        lines += _pre_traffic_lines(canary.get("preTraffic"))
        lines += [f"    {label.lower()}: {text}" for label, text in webhook_rows(analysis)]
    for cond in status.get("conditions") or []:
        lines.append(
            f"  {cond['type']:<14} {cond['status']:<6} {cond.get('reason', '')}: {cond.get('message', '')}"
        )
    for entry in (status.get("history") or [])[-5:]:
        lines.append(
            f"  history: {entry['at']} version {entry['version']} {entry['result']}: "
            f"{entry.get('reason', '')}"
        )
    if status.get("failedVersions"):
        lines.append(f"  failed versions (not rolled again without retry): {status['failedVersions']}")
    return "\n".join(lines)


def document(body: Any, output: str) -> str:
    """``-o json`` or ``-o yaml``: the objects as the API server sent them, for scripts."""
    if output == "json":
        return json.dumps(body, indent=4)
    return "---\n" + yaml.safe_dump(body, sort_keys=False, default_flow_style=False).rstrip("\n")


def list_document(items: list[Body]) -> Body:
    """``list -o``: kubectl's List, sorted as the table is."""
    ordered = sorted(items, key=lambda m: (m["metadata"]["namespace"], m["metadata"]["name"]))
    return {"apiVersion": "v1", "kind": "List", "items": ordered}
