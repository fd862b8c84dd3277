"""Every fixed name the operator shares with users, manifests, tests and the plugin:
the API group, labels and annotations on children, child names, container names, ports.

One module, so the cache, the builders, the plugin and the tests never spell one twice.
"""

from __future__ import annotations

GROUP = "serving.modeldeploy.dev"
VERSION = "v1alpha1"
KIND = "ModelDeployment"
PLURAL = "modeldeployments"
SINGULAR = "modeldeployment"
SHORT_NAMES = ("md", "mdep")
API_VERSION = f"{GROUP}/{VERSION}"

# ----- labels on every child -----
MANAGED_BY = "modeldeploy"
LABEL_NAME = "app.kubernetes.io/name"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_VERSION = f"{GROUP}/version"
LABEL_TRACK = f"{GROUP}/track"
# The shard of the child's ModelDeployment, set only with more than one shard: each replica
# watches only the children of the shards it holds. Never in a selector (immutable).
LABEL_SHARD = f"{GROUP}/shard"
# The hash of the manifest the operator last applied to a child (``control.apply``). A label,
# not an annotation: a Deployment's generation moves with its annotations (they are copied
# to its ReplicaSets), so a changed annotation would make a promoted canary, whose relabelling
# changes nothing else, "not rolled out" until the controller caught up.
LABEL_APPLIED_HASH = f"{GROUP}/applied-hash"
# Set on a pod by the operator once TF Serving reports its version AVAILABLE.
LABEL_MODEL_AVAILABLE = f"{GROUP}/model-available"
# The same news as a pod condition, named in the pod's readinessGates: the pod is Ready (and
# counts as available to its Deployment's rolling update) only once its model is.
CONDITION_MODEL_AVAILABLE = f"{GROUP}/model-available"

TRACK_STABLE = "stable"
TRACK_CANARY = "canary"

# ----- annotations -----
ANNOTATION_CONFIG_HASH = f"{GROUP}/config-hash"
# Where operators before LABEL_APPLIED_HASH kept the hash: still read, so an upgrade
# rewrites no unchanged child.
ANNOTATION_APPLIED_HASH = f"{GROUP}/applied-hash"
# One-shot actions on the ModelDeployment: acted on once per new value.
ANNOTATION_PROMOTE = f"{GROUP}/promote"
ANNOTATION_ABORT = f"{GROUP}/abort"
ANNOTATION_RETRY = f"{GROUP}/retry"
ACTION_ANNOTATIONS = {"promote": ANNOTATION_PROMOTE, "abort": ANNOTATION_ABORT, "retry": ANNOTATION_RETRY}
# The promote annotation's value says how far to go: ``step:<token>`` passes the current step
# only, ``full:<token>`` every remaining one. A bare token (no prefix: what the Argo CD action
# and older plugins write) means full. The token makes each request new (``api.actions``).
PROMOTE_STEP_PREFIX = "step:"
PROMOTE_FULL_PREFIX = "full:"

# ----- field managers (server-side apply) -----
FIELD_MANAGER = "modeldeploy"
# Applies only a Deployment's replica count when an HPA is to own it: the field
# keeps an owner while the main manager lets go of it, so it is never reset to 1.
HANDOVER_FIELD_MANAGER = "modeldeploy-handover"

# ----- containers and ports of the serving pods -----
SERVING_CONTAINER = "tensorflow-serving"
FETCHER_CONTAINER = "fetch-model"
SERVING_UID = 1000
GRPC_PORT = 8500
REST_PORT = 8501
METRICS_PATH = "/monitoring/prometheus/metrics"


# ----- child names: fixed (never generateName), so retries never make a second child -----
# What a ModelDeployment's name must be (the CRD's rules refuse any other): a DNS-1035 label,
# since it names a Service (a dot or a leading digit passes a resource name, not a Service's);
RESOURCE_NAME_PATTERN = "^[a-z]([-a-z0-9]*[a-z0-9])?$"
# and not ending like a version's children, so <a>-v<n> never names two resources' children
# (a resource "fraud" at version 2 and a resource "fraud-v2" would share Service fraud-v2).
VERSION_SUFFIX_PATTERN = "-v[0-9]+$"


def deployment_name(md_name: str, version: int) -> str:
    return f"{md_name}-v{version}"


def version_in_child_name(md_name: str, child_name: str) -> int | None:
    """The version a child's name (``<md_name>-v<version>``) says, if it is one: unlike
    its version label, a name cannot be edited."""
    prefix = f"{md_name}-v"
    digits = child_name[len(prefix) :] if child_name.startswith(prefix) else ""
    if not digits.isdigit() or not digits.isascii() or (digits.startswith("0") and digits != "0"):
        return None
    return int(digits)


def config_map_name(md_name: str, version: int) -> str:
    return f"{md_name}-v{version}-config"


def version_service_name(md_name: str, version: int) -> str:
    return f"{md_name}-v{version}"
