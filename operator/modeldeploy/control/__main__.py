"""The operator's command: ``kopf run`` with ``modeldeploy.control.handlers``, in a process
that never imports the ``kubernetes`` package.

kopf imports ``kubernetes.client`` whenever the package is installed (to recognise its
model objects, which this operator never hands it); why the operator does without it is
in ``modeldeploy.kube``. The package stays installed for the kubectl plugin, so it is
hidden here: a ``None`` in ``sys.modules`` makes an import raise ImportError, the case
kopf handles as "not installed".

Usage: ``python -m modeldeploy.control [kopf run options]``, e.g. ``--standalone
--all-namespaces --liveness=http://0.0.0.0:8080/healthz``.
"""

from __future__ import annotations

import ctypes
import os
import sys

HANDLERS = "modeldeploy.control.handlers"
# glibc's mallopt parameter for the number of malloc arenas (malloc.h).
M_ARENA_MAX = -8
MALLOC_ARENAS = 2


def limit_malloc_arenas() -> None:
    """Two malloc arenas instead of glibc's eight per core.

    Every reconcile worker thread decodes API answers; with an arena per thread each one
    keeps its own high-water mark of freed memory. MALLOC_ARENA_MAX set by the admin wins;
    elsewhere than glibc this does nothing.
    """
    if "MALLOC_ARENA_MAX" in os.environ:
        return
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(M_ARENA_MAX, MALLOC_ARENAS)
    except (OSError, AttributeError):
        pass


def main() -> None:
    limit_malloc_arenas()
    sys.modules.setdefault("kubernetes", None)  # type: ignore[arg-type]
    from kopf.cli import main as kopf_main

    kopf_main(args=["run", *sys.argv[1:], "-m", HANDLERS], prog_name="modeldeploy-operator")


if __name__ == "__main__":
    main()
