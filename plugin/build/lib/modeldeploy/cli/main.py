"""``kubectl modeldeploy``: look at and steer a ModelDeployment's rollout.

    kubectl modeldeploy get NAME [-w]                     # live view: versions, step, share, pods, checks
    kubectl modeldeploy status NAME [--watch] [--timeout 10m]   # exit 0 Ready, 1 failed, 2 timed out
    kubectl modeldeploy list [-A]                         # one line per resource
    kubectl modeldeploy history NAME
    kubectl modeldeploy undo NAME [--to-version N]        # sets spec.model.version back
    kubectl modeldeploy promote|abort|retry NAME          # one-shot annotations
    kubectl modeldeploy pause|resume NAME                 # spec.rollout.paused

Every command takes -n/--namespace (default: the context's namespace), --context and
--kubeconfig, as kubectl does.

One-shot actions write a fresh timestamp into their annotation: the operator acts once per new
value and leaves the annotation in place, so a GitOps tool that does not own it sees no drift.
Pause, resume and undo change the spec, as a GitOps repository would: where a repository owns
spec.model.version, change it there too, or the next sync sets it back.

Built on click (already kopf's) and rich (the live view and tables).
"""

from __future__ import annotations

import datetime
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

import click
import kubernetes
from rich.console import Console
from rich.live import Live

from ..api.names import ACTION_ANNOTATIONS, GROUP, PLURAL, VERSION
from ..api.times import parse_duration
from .connection import Connection, connect
from .follow import DeletedError, follow, pods_of, read
from .outcomes import Outcome, UndoError, rollout_outcome, undo_target
from .views import headline, history_table, list_table, rollout_view, status_text

Command = TypeVar("Command", bound=Callable[..., Any])
# Off a terminal (a pipe, CI logs) rich would wrap tables at 80 columns: lines stay whole.
PIPE_WIDTH = 400


def _console() -> Console:
    return Console(width=None if sys.stdout.isatty() else PIPE_WIDTH, highlight=False, soft_wrap=False)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def target_options(command: Command) -> Command:
    """-n, --context and --kubeconfig on every command, so they may follow the name."""
    for option in (
        click.option("-n", "--namespace", default=None, help="Default: the context's namespace."),
        click.option("--context", default=None, help="The kubeconfig context to use."),
        click.option("--kubeconfig", default=None, help="Default: $KUBECONFIG, else ~/.kube/config."),
    ):
        command = option(command)
    return command


def _connect(namespace: str | None, context: str | None, kubeconfig: str | None) -> Connection:
    return connect(kubeconfig, context, namespace)


def _patch(conn: Connection, name: str, body: dict[str, Any]) -> None:
    conn.custom.patch_namespaced_custom_object(GROUP, VERSION, conn.namespace, PLURAL, name, body)


# \b keeps click from rewrapping the usage block.
@click.group(
    context_settings={"help_option_names": ["-h", "--help"]},
    help=(__doc__ or "").replace("\n\n    kubectl", "\n\n\b\n    kubectl", 1),
)
def cli() -> None:
    pass


@cli.command()
@click.argument("name")
@click.option("-w", "--watch", is_flag=True, help="Keep the view up to date until interrupted.")
@target_options
def get(name: str, watch: bool, namespace: str | None, context: str | None, kubeconfig: str | None) -> int:
    """The rollout of NAME: versions, step, weight and actual share, pause left, checks, pods."""
    conn = _connect(namespace, context, kubeconfig)
    console = _console()
    if not watch:
        console.print(rollout_view(read(conn, name), pods_of(conn, name), _now()))
        return 0
    if console.is_terminal:
        with Live(console=console, auto_refresh=False) as live:
            for md, _ in follow(conn, name):  # redrawn every tick: the pause counts down
                live.update(rollout_view(md, pods_of(conn, name), _now()), refresh=True)
        return 0
    # Off a terminal: a new view only when the resource or a pod changed, as kubectl get -w.
    shown: tuple[str, ...] = ()
    for md, _ in follow(conn, name):
        pods = pods_of(conn, name)
        seen = (md["metadata"]["resourceVersion"], *(p["metadata"]["resourceVersion"] for p in pods))
        if seen != shown:
            shown = seen
            console.rule(_now().strftime("%H:%M:%S"))
            console.print(rollout_view(md, pods, _now()))
            console.file.flush()
    return 0


def _summary(md: dict[str, Any]) -> str:
    status = md.get("status") or {}
    canary = status.get("canary")
    step = (
        f", canary version {canary['version']} step {canary.get('step', 0) + 1} at {canary.get('weight', 0)}%"
        if canary
        else ""
    )
    return f"{status.get('phase', 'Pending')}{step}: {headline(md)}"


@cli.command()
@click.argument("name")
@click.option("-w", "--watch", is_flag=True, help="Wait until the rollout ends: exit 0 Ready, 1 failed.")
@click.option("--timeout", default=None, help="With --watch: give up after this long (30s, 10m), exit 2.")
@target_options
def status(
    name: str,
    watch: bool,
    timeout: str | None,
    namespace: str | None,
    context: str | None,
    kubeconfig: str | None,
) -> int:
    """The status of NAME; with --watch, follow it until Ready (exit 0), rolled back, aborted,
    failed or degraded (exit 1), or the timeout (exit 2)."""
    conn = _connect(namespace, context, kubeconfig)
    if not watch and timeout is None:
        click.echo(status_text(read(conn, name)))
        return 0
    limit = parse_duration(timeout) if timeout else None
    deadline = None if limit is None else time.monotonic() + limit
    last = ""
    for md, _ in follow(conn, name):
        line = _summary(md)
        if line != last:
            click.echo(f"{_now().strftime('%H:%M:%S')} {line}")
            last = line
        outcome = rollout_outcome(md)
        if outcome is not None:
            return int(outcome)
        if deadline is not None and time.monotonic() >= deadline:
            click.echo(f"timed out after {timeout} waiting for {conn.namespace}/{name}", err=True)
            return int(Outcome.TIMED_OUT)
    return int(Outcome.FAILED)  # follow() ends only by raising


@cli.command("list")
@click.option("-A", "--all-namespaces", is_flag=True, help="Every namespace.")
@target_options
def list_(all_namespaces: bool, namespace: str | None, context: str | None, kubeconfig: str | None) -> int:
    """Every ModelDeployment in the namespace, one line each."""
    conn = _connect(namespace, context, kubeconfig)
    if all_namespaces:
        found = conn.custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)
    else:
        found = conn.custom.list_namespaced_custom_object(GROUP, VERSION, conn.namespace, PLURAL)
    if not found["items"]:
        click.echo(
            "No ModelDeployments found" + ("." if all_namespaces else f" in {conn.namespace}."), err=True
        )
        return 0
    _console().print(list_table(found["items"], _now(), all_namespaces))
    return 0


@cli.command()
@click.argument("name")
@target_options
def history(name: str, namespace: str | None, context: str | None, kubeconfig: str | None) -> int:
    """The version changes of NAME: promoted, rolled back, aborted."""
    conn = _connect(namespace, context, kubeconfig)
    _console().print(history_table(read(conn, name)))
    return 0


@cli.command()
@click.argument("name")
@click.option("--to-version", type=click.IntRange(min=1), default=None, help="The version to go back to.")
@target_options
def undo(
    name: str, to_version: int | None, namespace: str | None, context: str | None, kubeconfig: str | None
) -> int:
    """Set spec.model.version back: to the stable version during a canary or after a rollback,
    else to the version the stable one replaced, or to --to-version."""
    conn = _connect(namespace, context, kubeconfig)
    md = read(conn, name)
    target = undo_target(md, to_version)
    _patch(
        conn,
        name,
        {
            "metadata": {"resourceVersion": md["metadata"]["resourceVersion"]},  # refused if it moved
            "spec": {"model": {"version": target}},
        },
    )
    click.echo(f"{conn.namespace}/{name}: spec.model.version {md['spec']['model']['version']} -> {target}")
    return 0


def _one_shot(action: str) -> click.Command:
    @target_options
    def run(name: str, namespace: str | None, context: str | None, kubeconfig: str | None) -> int:
        conn = _connect(namespace, context, kubeconfig)
        token = _now().strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        _patch(conn, name, {"metadata": {"annotations": {ACTION_ANNOTATIONS[action]: token}}})
        click.echo(f"{action} requested for {conn.namespace}/{name} ({token})")
        return 0

    return click.command(action, help=f"Ask the operator to {action} NAME's rollout, once.")(
        click.argument("name")(run)
    )


def _pause_or_resume(pause: bool) -> click.Command:
    @target_options
    def run(name: str, namespace: str | None, context: str | None, kubeconfig: str | None) -> int:
        conn = _connect(namespace, context, kubeconfig)
        _patch(conn, name, {"spec": {"rollout": {"paused": pause}}})
        click.echo(f"{conn.namespace}/{name} {'paused' if pause else 'resumed'}")
        return 0

    verb = "pause" if pause else "resume"
    return click.command(verb, help=f"{verb.capitalize()} NAME's canary (spec.rollout.paused).")(
        click.argument("name")(run)
    )


for _action in ACTION_ANNOTATIONS:
    cli.add_command(_one_shot(_action))
cli.add_command(_pause_or_resume(True))
cli.add_command(_pause_or_resume(False))


def main(argv: list[str] | None = None) -> int:
    try:
        result = cli.main(args=argv, prog_name="kubectl modeldeploy", standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except (click.exceptions.Abort, KeyboardInterrupt):
        return 130
    except kubernetes.client.exceptions.ApiException as exc:
        click.echo(f"error: {exc.status} {exc.reason}", err=True)
        return 1
    except (kubernetes.config.ConfigException, DeletedError, UndoError, ValueError) as exc:
        click.echo(f"error: {exc}", err=True)
        return 1
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
