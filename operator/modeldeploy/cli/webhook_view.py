"""How ``get`` and ``status`` show a canary's webhook gates: each gate's latest answer."""

from __future__ import annotations

from typing import Any

Body = dict[str, Any]


def webhook_rows(analysis: Body) -> list[tuple[str, str]]:
    """(label, text) per gate asked in this canary, e.g. ("Webhook load-test", "Failed before
    step 2 at 12:00:03Z: HTTP 500: p99 900ms")."""
    rows = []
    for record in analysis.get("webhooks") or []:
        where = _where(record.get("at", ""), int(record.get("step", 0)))
        said = f": {record['message']}" if record.get("message") else ""
        rows.append(
            (
                f"Webhook {record.get('name')}",
                f"{record.get('result')} {where} at {record.get('checkedAt')}{said}",
            )
        )
    return rows


def _where(at: str, step: int) -> str:
    if at == "Step":
        return f"before step {step + 1}"
    return "before any traffic" if at == "PreTraffic" else "before promotion"
