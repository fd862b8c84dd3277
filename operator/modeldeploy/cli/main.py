"""``kubectl modeldeploy``: look at and steer a ModelDeployment's rollout.

    kubectl modeldeploy get NAME [-w] [-o json|yaml]      # live view: versions, step, share, pods, checks
    kubectl modeldeploy status NAME [--watch] [--timeout 10m] [-o json|yaml]   # exit code: see below
    kubectl modeldeploy list [-A] [-o json|yaml]          # one line per resource
    kubectl modeldeploy history NAME [-o json|yaml]
    kubectl modeldeploy set version NAME N [--watch]      # sets spec.model.version, if nobody else did
    kubectl modeldeploy undo NAME [--to-version N]        # sets spec.model.version back
    kubectl modeldeploy promote NAME [--full]             # the next step; --full: every remaining one
    kubectl modeldeploy abort|retry NAME                  # one-shot annotations
    kubectl modeldeploy pause|resume NAME                 # spec.rollout.paused
    kubectl modeldeploy version [--client]                # the plugin's and the operator's versions
    kubectl modeldeploy completion bash|zsh               # source <(kubectl modeldeploy completion bash)

Every command takes -n/--namespace (default: the context's namespace), --context and
--kubeconfig, as kubectl does, and --debug (a traceback with an error).

Exit codes, each meaning one thing:

    0  success; for status, set version --watch: the rollout is Ready
    1  the rollout failed: rolled back, aborted, failed to load, or degraded
    2  timed out: the rollout had not ended by --timeout (status without --watch: not ended yet)
    3  API or connection error: server unreachable, kubeconfig missing or broken, credentials
       refused, forbidden, not found, or changed by someone else (a conflict)
    4  usage error: a bad command line, or a request that cannot apply (nothing to undo)
    130  interrupted (Ctrl-C)

Errors are one line, ``error: ...``, with the API server's own message.

One-shot actions write a fresh value into their annotation: the operator acts once per new
value and leaves the annotation in place, so a GitOps tool that does not own it sees no drift.
Set version, pause, resume and undo change the spec, as a GitOps repository would: where a
repository owns spec.model.version, change it there too, or the next sync sets it back.

Built on click (already kopf's) and rich (the live view and tables).
"""

from __future__ import annotations

import datetime
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import Any, TypeVar

import click
from click.shell_completion import get_completion_class
from rich.console import Console
from rich.live import Live

from ..api.actions import PromoteRequest, format_promote
from ..api.names import ANNOTATION_ABORT, ANNOTATION_PROMOTE, ANNOTATION_RETRY, GROUP, PLURAL, VERSION
from ..api.times import parse_duration
from .connection import Connection, connect
from .errors import describe
from .follow import follow, pods_of, read
from .outcomes import ExitCode, rollout_outcome, undo_target
from .views import (
    document,
    headline,
    history_table,
    list_document,
    list_table,
    rollout_view,
    status_text,
)

Command = TypeVar("Command", bound=Callable[..., Any])
# Off a terminal (a pipe, CI logs) rich would wrap tables at 80 columns: lines stay whole.
PIPE_WIDTH = 400
# The executable kubectl runs, and the variable click's completion scripts set when they call it.
EXECUTABLE = "kubectl-modeldeploy"
COMPLETE_VAR = "_KUBECTL_MODELDEPLOY_COMPLETE"
# The label of the operator's Deployment (manifests/operator.yaml and the chart).
OPERATOR_SELECTOR = "app.kubernetes.io/name=modeldeploy-operator"


@dataclass
class Flags:
    """Set while the command line is parsed; read when an error reaches ``main``."""

    debug: bool = False


FLAGS = Flags()


def _console() -> Console:
    return Console(width=None if sys.stdout.isatty() else PIPE_WIDTH, highlight=False, soft_wrap=False)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _set_debug(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    FLAGS.debug = FLAGS.debug or value


def target_options(command: Command) -> Command:
    """-n, --context, --kubeconfig and --debug on every command, so they may follow the name."""
    for option in (
        click.option(
            "--debug",
            is_flag=True,
            expose_value=False,
            callback=_set_debug,
            help="Show the traceback of an error.",
        ),
        click.option("-n", "--namespace", default=None, help="Default: the context's namespace."),
        click.option("--context", default=None, help="The kubeconfig context to use."),
        click.option("--kubeconfig", default=None, help="Default: $KUBECONFIG, else ~/.kube/config."),
    ):
        command = option(command)
    return command


def output_option(command: Command) -> Command:
    return click.option(
        "-o",
        "--output",
        type=click.Choice(["json", "yaml"]),
        default=None,
        help="Print the objects as the API server sent them, for scripts.",
    )(command)


class Duration(click.ParamType[float]):
    """A Go-style duration (30s, 10m, 1h30m), in seconds: a bad one is a usage error."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, float):
            return value
        try:
            return parse_duration(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def watch_options(command: Command) -> Command:
    """--watch and --timeout, for the commands that can wait until the rollout ends."""
    command = click.option(
        "--timeout", type=Duration(), default=None, help="Give up after this long (30s, 10m): exit 2."
    )(command)
    return click.option(
        "-w", "--watch", is_flag=True, help="Wait until the rollout ends: exit 0 Ready, 1 failed."
    )(command)


def _connect(namespace: str | None, context: str | None, kubeconfig: str | None) -> Connection:
    return connect(kubeconfig, context, namespace)


def _patch(conn: Connection, name: str, body: dict[str, Any]) -> None:
    conn.custom.patch_namespaced_custom_object(GROUP, VERSION, conn.namespace, PLURAL, name, body)


# \b keeps click from rewrapping the usage block and the exit codes.
@click.group(
    context_settings={"help_option_names": ["-h", "--help"]},
    help=(__doc__ or "").replace("\n\n    ", "\n\n\b\n    "),
)
def cli() -> None:
    pass


@cli.command()
@click.argument("name")
@click.option("-w", "--watch", is_flag=True, help="Keep the view up to date until interrupted.")
@output_option
@target_options
def get(
    name: str,
    watch: bool,
    output: str | None,
    namespace: str | None,
    context: str | None,
    kubeconfig: str | None,
) -> int:
    """The rollout of NAME: versions, step, weight and actual share, pause left, checks, pods."""
    conn = _connect(namespace, context, kubeconfig)
    if output:
        for md, changed in follow(conn, name) if watch else iter([(read(conn, name), True)]):
            if changed:
                click.echo(document(md, output))
        return ExitCode.READY
    console = _console()
    if not watch:
        console.print(rollout_view(read(conn, name), pods_of(conn, name), _now()))
    elif console.is_terminal:
        with Live(console=console, auto_refresh=False) as live:
            for md, _ in follow(conn, name):  # redrawn every tick: the pause counts down
                live.update(rollout_view(md, pods_of(conn, name), _now()), refresh=True)
    else:
        _print_changes(conn, name, console)
    return ExitCode.READY


def _print_changes(conn: Connection, name: str, console: Console) -> None:
    """Off a terminal: a new view only when the resource or a pod changed, as kubectl get -w."""
    shown: tuple[str, ...] = ()
    for md, _ in follow(conn, name):
        pods = pods_of(conn, name)
        seen = (md["metadata"]["resourceVersion"], *(p["metadata"]["resourceVersion"] for p in pods))
        if seen != shown:
            shown = seen
            console.rule(_now().strftime("%H:%M:%S"))
            console.print(rollout_view(md, pods, _now()))
            console.file.flush()


def _summary(md: dict[str, Any]) -> str:
    status = md.get("status") or {}
    canary = status.get("canary")
    step = (
        f", canary version {canary['version']} step {canary.get('step', 0) + 1} at {canary.get('weight', 0)}%"
        if canary
        else ""
    )
    return f"{status.get('phase', 'Pending')}{step}: {headline(md)}"


def _wait_for_end(conn: Connection, name: str, timeout: float | None, output: str | None) -> ExitCode:
    """Follow NAME until its rollout ends at the current generation, or ``timeout`` passes;
    print a line (or, with ``output``, the status) at each change."""
    deadline = None if timeout is None else time.monotonic() + timeout
    last = ""
    for md, changed in follow(conn, name):
        if output:
            if changed:
                click.echo(document(md.get("status") or {}, output))
        else:
            line = _summary(md)
            if line != last:
                click.echo(f"{_now().strftime('%H:%M:%S')} {line}")
                last = line
        outcome = rollout_outcome(md)
        if outcome is not None:
            return outcome
        if deadline is not None and time.monotonic() >= deadline:
            click.echo(f"timed out after {timeout:g}s waiting for {conn.namespace}/{name}", err=True)
            return ExitCode.TIMED_OUT
    return ExitCode.API_ERROR  # follow() ends only by raising


@cli.command()
@click.argument("name")
@watch_options
@output_option
@target_options
def status(
    name: str,
    watch: bool,
    timeout: float | None,
    output: str | None,
    namespace: str | None,
    context: str | None,
    kubeconfig: str | None,
) -> int:
    """The status of NAME, and an exit code by its state: 0 Ready, 1 rolled back, aborted,
    failed or degraded, 2 not ended yet. With --watch (or --timeout), follow it until it ends
    (0 or 1) or the timeout passes (2). -o prints .status."""
    conn = _connect(namespace, context, kubeconfig)
    if watch or timeout is not None:
        return _wait_for_end(conn, name, timeout, output)
    md = read(conn, name)
    click.echo(document(md.get("status") or {}, output) if output else status_text(md))
    outcome = rollout_outcome(md)
    return ExitCode.TIMED_OUT if outcome is None else outcome  # READY is 0: falsy, so no `or`


@cli.command("list")
@click.option("-A", "--all-namespaces", is_flag=True, help="Every namespace.")
@output_option
@target_options
def list_(
    all_namespaces: bool,
    output: str | None,
    namespace: str | None,
    context: str | None,
    kubeconfig: str | None,
) -> int:
    """Every ModelDeployment in the namespace, one line each."""
    conn = _connect(namespace, context, kubeconfig)
    if all_namespaces:
        found = conn.custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)
    else:
        found = conn.custom.list_namespaced_custom_object(GROUP, VERSION, conn.namespace, PLURAL)
    if output:
        click.echo(document(list_document(found["items"]), output))
    elif not found["items"]:
        click.echo(
            "No ModelDeployments found" + ("." if all_namespaces else f" in {conn.namespace}."), err=True
        )
    else:
        _console().print(list_table(found["items"], _now(), all_namespaces))
    return ExitCode.READY


@cli.command()
@click.argument("name")
@output_option
@target_options
def history(
    name: str, output: str | None, namespace: str | None, context: str | None, kubeconfig: str | None
) -> int:
    """The version changes of NAME: promoted, rolled back, aborted. -o prints .status.history."""
    conn = _connect(namespace, context, kubeconfig)
    md = read(conn, name)
    if output:
        click.echo(document((md.get("status") or {}).get("history") or [], output))
    else:
        _console().print(history_table(md))
    return ExitCode.READY


def _set_model_version(conn: Connection, name: str, version: int, resource_version: str) -> None:
    """Set spec.model.version, refused (a conflict) if the object moved past ``resource_version``."""
    _patch(
        conn,
        name,
        {"metadata": {"resourceVersion": resource_version}, "spec": {"model": {"version": version}}},
    )


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
    _set_model_version(conn, name, target, md["metadata"]["resourceVersion"])
    click.echo(f"{conn.namespace}/{name}: spec.model.version {md['spec']['model']['version']} -> {target}")
    return ExitCode.READY


@cli.group("set")
def set_() -> None:
    """Change a field of a ModelDeployment's spec, as a GitOps repository would."""


@set_.command("version")
@click.argument("name")
@click.argument("model_version", metavar="VERSION", type=click.IntRange(min=1))
@click.option(
    "--resource-version",
    default=None,
    help="Change it only if it is still at this resourceVersion (default: the one just read).",
)
@watch_options
@target_options
def set_version(
    name: str,
    model_version: int,
    resource_version: str | None,
    watch: bool,
    timeout: float | None,
    namespace: str | None,
    context: str | None,
    kubeconfig: str | None,
) -> int:
    """Set NAME's spec.model.version to VERSION: a merge patch carrying the resourceVersion, so
    it fails with a conflict (exit 3) if someone changed NAME meanwhile. With --watch, follow
    the rollout as status --watch does."""
    conn = _connect(namespace, context, kubeconfig)
    md = read(conn, name)
    _set_model_version(conn, name, model_version, resource_version or md["metadata"]["resourceVersion"])
    click.echo(
        f"{conn.namespace}/{name}: spec.model.version {md['spec']['model']['version']} -> {model_version}"
    )
    if watch or timeout is not None:
        return _wait_for_end(conn, name, timeout, None)
    return ExitCode.READY


def _request_action(conn: Connection, name: str, annotation: str, value: str) -> None:
    _patch(conn, name, {"metadata": {"annotations": {annotation: value}}})


def _token() -> str:
    return _now().strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@cli.command()
@click.argument("name")
@click.option("--full", is_flag=True, help="Every remaining step, not just the current one.")
@target_options
def promote(name: str, full: bool, namespace: str | None, context: str | None, kubeconfig: str | None) -> int:
    """Ask the operator to pass NAME's current canary step now (--full: every remaining step), once."""
    conn = _connect(namespace, context, kubeconfig)
    value = format_promote(PromoteRequest(full=full, token=_token()))
    _request_action(conn, name, ANNOTATION_PROMOTE, value)
    how = "every remaining step" if full else "the current step"
    click.echo(f"promote ({how}) requested for {conn.namespace}/{name} ({value})")
    return ExitCode.READY


def _one_shot(action: str, annotation: str) -> click.Command:
    @target_options
    def run(name: str, namespace: str | None, context: str | None, kubeconfig: str | None) -> int:
        conn = _connect(namespace, context, kubeconfig)
        token = _token()
        _request_action(conn, name, annotation, token)
        click.echo(f"{action} requested for {conn.namespace}/{name} ({token})")
        return ExitCode.READY

    return click.command(action, help=f"Ask the operator to {action} NAME's rollout, once.")(
        click.argument("name")(run)
    )


def _pause_or_resume(pause: bool) -> click.Command:
    @target_options
    def run(name: str, namespace: str | None, context: str | None, kubeconfig: str | None) -> int:
        conn = _connect(namespace, context, kubeconfig)
        _patch(conn, name, {"spec": {"rollout": {"paused": pause}}})
        click.echo(f"{conn.namespace}/{name} {'paused' if pause else 'resumed'}")
        return ExitCode.READY

    verb = "pause" if pause else "resume"
    return click.command(verb, help=f"{verb.capitalize()} NAME's canary (spec.rollout.paused).")(
        click.argument("name")(run)
    )


cli.add_command(_one_shot("abort", ANNOTATION_ABORT))
cli.add_command(_one_shot("retry", ANNOTATION_RETRY))
cli.add_command(_pause_or_resume(True))
cli.add_command(_pause_or_resume(False))


def plugin_version() -> str:
    try:
        return package_version("modeldeploy")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def _operator_line(deployment: Any) -> str:
    meta = deployment.metadata
    image = deployment.spec.template.spec.containers[0].image
    app_version = (meta.labels or {}).get("app.kubernetes.io/version")
    return f"operator: {meta.namespace}/{meta.name} image {image}" + (
        f" (version {app_version})" if app_version else ""
    )


@cli.command("version")
@click.option("--client", is_flag=True, help="The plugin's version only; no call to the cluster.")
@target_options
def version_(client: bool, namespace: str | None, context: str | None, kubeconfig: str | None) -> int:
    """The plugin's version and the operator's: the image of each Deployment labelled
    app.kubernetes.io/name=modeldeploy-operator, read through the API server."""
    click.echo(f"plugin: {plugin_version()}")
    if client:
        return ExitCode.READY
    conn = _connect(namespace, context, kubeconfig)
    deployments = conn.apps.list_deployment_for_all_namespaces(label_selector=OPERATOR_SELECTOR).items
    for deployment in deployments:
        click.echo(_operator_line(deployment))
    if not deployments:
        click.echo(f"operator: no Deployment labelled {OPERATOR_SELECTOR} in the cluster")
    return ExitCode.READY


@cli.command()
@click.argument("shell", type=click.Choice(["bash", "zsh"]))
def completion(shell: str) -> int:
    """Print the shell completion script for SHELL: source <(kubectl modeldeploy completion bash)
    in ~/.bashrc, or the same with zsh in ~/.zshrc. It completes kubectl-modeldeploy."""
    complete = get_completion_class(shell)
    assert complete is not None  # click ships both
    click.echo(complete(cli, {}, EXECUTABLE, COMPLETE_VAR).source())
    return ExitCode.READY


def main(argv: list[str] | None = None) -> int:
    try:
        result = cli.main(
            args=argv, prog_name="kubectl modeldeploy", complete_var=COMPLETE_VAR, standalone_mode=False
        )
    except click.ClickException as exc:
        exc.show()
        return ExitCode.USAGE_ERROR
    except (click.exceptions.Abort, KeyboardInterrupt):
        return ExitCode.INTERRUPTED
    except Exception as exc:  # every error becomes one line and an exit code
        if FLAGS.debug:
            traceback.print_exc()
        message, code = describe(exc)
        click.echo(f"error: {message}", err=True)
        return code
    return result if isinstance(result, int) else ExitCode.READY


if __name__ == "__main__":
    sys.exit(main())
