"""``kubectl modeldeploy``: look at and steer a ModelDeployment's rollout.

    kubectl modeldeploy status NAME [-n NS]
    kubectl modeldeploy promote|abort|retry NAME [-n NS]   # one-shot annotations
    kubectl modeldeploy pause|resume NAME [-n NS]          # spec.rollout.paused

One-shot actions write a fresh timestamp into their annotation: the operator
acts once per new value, and leaves the annotation in place, so a GitOps tool
that does not own it sees no drift. Pause and resume change the spec, as a
GitOps repository would.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from typing import Any

import kubernetes

from ..api.names import ACTION_ANNOTATIONS, GROUP, PLURAL, VERSION


def _api(kubeconfig: str | None) -> kubernetes.client.CustomObjectsApi:
    if kubeconfig:
        return kubernetes.client.CustomObjectsApi(
            kubernetes.config.new_client_from_config(config_file=kubeconfig)
        )
    try:
        kubernetes.config.load_kube_config()
    except kubernetes.config.ConfigException:
        kubernetes.config.load_incluster_config()
    return kubernetes.client.CustomObjectsApi()


def _patch(api: Any, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = api.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, body)
    return result


def _pre_traffic_lines(pre: dict[str, Any] | None) -> list[str]:
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


def render_status(md: dict[str, Any]) -> str:
    """A person's view of status: versions, canary progress, conditions, recent history."""
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
        lines += _pre_traffic_lines(canary.get("preTraffic"))
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kubectl modeldeploy", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["status", *ACTION_ANNOTATIONS, "pause", "resume"])
    parser.add_argument("name")
    parser.add_argument("-n", "--namespace", default="default")
    parser.add_argument("--kubeconfig", default=None)
    args = parser.parse_args(argv)
    api = _api(args.kubeconfig)
    try:
        if args.command == "status":
            md = api.get_namespaced_custom_object(GROUP, VERSION, args.namespace, PLURAL, args.name)
            print(render_status(md))
        elif args.command in ACTION_ANNOTATIONS:
            token = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            _patch(
                api,
                args.namespace,
                args.name,
                {"metadata": {"annotations": {ACTION_ANNOTATIONS[args.command]: token}}},
            )
            print(f"{args.command} requested for {args.namespace}/{args.name} ({token})")
        else:
            _patch(api, args.namespace, args.name, {"spec": {"rollout": {"paused": args.command == "pause"}}})
            print(f"{args.namespace}/{args.name} {'paused' if args.command == 'pause' else 'resumed'}")
    except kubernetes.client.exceptions.ApiException as exc:
        print(f"error: {exc.status} {exc.reason}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
