"""The operator's command: ``kopf run`` with ``modeldeploy.control.handlers``, in a process
that never imports the ``kubernetes`` package.

kopf imports ``kubernetes.client`` whenever the package is installed (to recognise its
model objects, which this operator never hands it); that is 865 modules and about
45 MiB of every operator replica's memory (issue #19). The package stays installed for
the kubectl plugin, so it is hidden here: a ``None`` in ``sys.modules`` makes an import
raise ImportError, the case kopf handles as "not installed". The operator's own requests
and kopf's login both use control/credentials.py instead.

Usage: ``python -m modeldeploy.control [kopf run options]``, e.g. ``--standalone
--all-namespaces --liveness=http://0.0.0.0:8080/healthz``.
"""

from __future__ import annotations

import sys

HANDLERS = "modeldeploy.control.handlers"


def main() -> None:
    sys.modules.setdefault("kubernetes", None)  # type: ignore[arg-type]
    from kopf.cli import main as kopf_main

    kopf_main(args=["run", *sys.argv[1:], "-m", HANDLERS], prog_name="modeldeploy-operator")


if __name__ == "__main__":
    main()
