"""Thin kopf wiring: kopf's settings, its login, its watch of the ModelDeployments, the
probes, start and stop; everything else is the ``Operator`` that ``runtime`` builds.

Only an event-watching handler is used: kopf's change handlers would store their progress
in annotations and its daemons and timers add finalizers; with event handlers the operator
writes nothing but children, status and Events, and a ModelDeployment deletes even while
the operator is down.

The operator built at start-up lives in kopf's operator-wide ``memo`` (every handler is
given it), so this module holds no state of its own.

Run: ``python -m modeldeploy.control --standalone --all-namespaces`` (``kopf run`` with
these handlers, without the kubernetes package: see ``__main__``).
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Iterable
from typing import Any

import kopf

from ..api.names import KIND
from ..kube import credentials
from ..kube.client import LIST_PAGE
from .kinds import MODEL_DEPLOYMENT
from .runtime import Operator, build_operator
from .settings import Settings
from .sharding import ShardsUnhealthyError

LOG = logging.getLogger(__name__)
# The key of the running operator in kopf's memo.
OPERATOR = "operator"


def running(memo: kopf.Memo) -> Operator:
    """The operator that ``configure`` built and started."""
    operator: Operator = memo[OPERATOR]
    return operator


class NoDiffBase(kopf.DiffBaseStorage):
    """Keeps no "last handled" state: with only event handlers nothing reads a diff.

    kopf's default deep-copies every object of every watch event to diff it against an
    annotation, for a diff no handler uses.
    """

    def build(
        self, *, body: kopf.Body, extra_fields: Iterable[kopf.FieldSpec] | None = None
    ) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return kopf.BodyEssence()

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        pass  # nothing is kept, so nothing is ever written


@kopf.on.login()
def login(**_: Any) -> kopf.ConnectionInfo:
    """kopf's watches log in with the operator's own credentials (kube/credentials.py),
    so watches and writes always go to the same cluster as the same user. kopf calls this
    again after a 401, and before an exec plugin's credential expires."""
    found = credentials.load()
    identity = found.identity()
    expires = identity.expires
    return kopf.ConnectionInfo(
        server=found.server,
        ca_data=found.ca,
        insecure=found.insecure or None,
        token=identity.token,
        certificate_data=identity.certificate,
        private_key_data=identity.key,
        default_namespace=found.namespace,
        expiration=datetime.datetime.fromtimestamp(expires, datetime.UTC) if expires is not None else None,
    )


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.posting.level = logging.WARNING
    settings.persistence.diffbase_storage = NoDiffBase()
    # kopf logs every event handler's success at INFO: thousands of lines an hour.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    settings.watching.server_timeout = 300
    # kopf lists every ModelDeployment in one response by default: with thousands, each
    # replica would hold them all at once, decoded, at every start; in pages as our lists.
    settings.watching.chunk_size = LIST_PAGE
    try:
        ours = Settings.from_env().validate()
    except ValueError as exc:  # a setting no retry can mend: stop, naming it
        raise kopf.PermanentError(str(exc)) from None
    operator = build_operator(ours)
    operator.start()
    memo[OPERATOR] = operator


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    if OPERATOR in memo:
        running(memo).stop()


@kopf.on.probe(id="leader")
async def leader(memo: kopf.Memo, **_: Any) -> str:
    """Who this replica is and whether it leads (or how many shards it holds); unhealthy
    (so /healthz fails) when it leads, or holds shards, but could not renew in time."""
    shards, elector = running(memo).shards, running(memo).elector
    if shards is not None:
        try:
            return shards.health()
        except ShardsUnhealthyError as exc:
            raise kopf.PermanentError(str(exc)) from None
    if elector is None:
        return "no leader election"
    if not elector.healthy():
        # Permanent: a retried probe would hold /healthz open instead of failing it now.
        raise kopf.PermanentError(f"{elector.identity} leads but has not renewed its lease in time")
    return f"{elector.identity}: {'leading' if elector.is_leader() else 'standing by'}"


@kopf.on.probe(id="cachedObjects")
async def cached_objects(memo: kopf.Memo, **_: Any) -> int:
    return len(running(memo).cache)


@kopf.on.probe(id="longestPassSeconds")
async def longest_pass(memo: kopf.Memo, **_: Any) -> float:
    # Every request a pass makes has a timeout: a figure far past them means a stuck worker.
    return round(running(memo).queue.longest_pass_seconds(), 1)


async def on_model_deployment(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    running(memo).on_model_deployment(event["type"], dict(event["object"]))


kopf.on.event(
    group=MODEL_DEPLOYMENT.group,
    version=MODEL_DEPLOYMENT.version,
    plural=MODEL_DEPLOYMENT.plural,
    id=f"{KIND}-event",
)(on_model_deployment)
