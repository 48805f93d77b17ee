"""``pacing targets get ID | list | set ID --file def.json | delete ID``: the REST API for people.

Talks to any worker's API (``--url``, default the configured ``api`` address on this machine), with a
bearer token from ``--token`` or ``$PACING_API_TOKEN`` (the environment keeps it out of ``ps``).
Output is a few readable lines, or with ``--json`` the API's own JSON (``list`` pages through
every target and prints them as one ``{"items": […]}``). An error prints the API's problem detail
on stderr and exits 1; the API cannot be reached: exit 1 too, saying where it tried.
"""

from __future__ import annotations

import json
import os
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO


class ApiError(Exception):
    """The API answered an error, or could not be reached; the message says which."""


@dataclass
class ApiClient:
    """A few blocking calls to one worker's API."""

    url: str
    token: str | None = None
    cafile: str | None = None
    timeout_s: float = 10.0

    def call(self, method: str, path: str, body: bytes | None = None) -> tuple[int, Any]:
        """One request; the status and the decoded JSON answer. Raises :class:`ApiError` for an error."""
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if body is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(self.url.rstrip("/") + path, data=body, method=method, headers=headers)
        context = ssl.create_default_context(cafile=self.cafile) if self.url.startswith("https:") else None
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s, context=context) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            raise ApiError(_problem_text(error.code, error.read())) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise ApiError(f"cannot reach the API at {self.url}: {reason}") from None

    def target(self, target_id: str) -> dict[str, Any]:
        return self.call("GET", f"/v1/targets/{_quote(target_id)}")[1]

    def targets(self, prefix: str = "", limit: int | None = None) -> list[dict[str, Any]]:
        """Every target (or the first ``limit``) whose id starts with ``prefix``, page after page."""
        items: list[dict[str, Any]] = []
        cursor = None
        while limit is None or len(items) < limit:
            query = {"prefix": prefix, "limit": str(min(1000, limit - len(items)) if limit else 1000)}
            if cursor:
                query["cursor"] = cursor
            page = self.call("GET", "/v1/targets?" + urllib.parse.urlencode(query))[1]
            items += page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        return items

    def put_definition(self, target_id: str, body: bytes) -> dict[str, Any]:
        return self.call("PUT", f"/v1/targets/{_quote(target_id)}/definition", body)[1]

    def delete_definition(self, target_id: str) -> dict[str, Any]:
        return self.call("DELETE", f"/v1/targets/{_quote(target_id)}/definition")[1]


def _quote(target_id: str) -> str:
    return urllib.parse.quote(target_id, safe="")


def _problem_text(status: int, body: bytes) -> str:
    try:
        problem = json.loads(body)
        text = f"{status} {problem.get('title', '')}: {problem.get('detail', '')}"
        for error in problem.get("errors") or []:
            text += f"\n  {error.get('field')}: {error.get('reason')}"
        return text
    except (ValueError, AttributeError):
        return f"{status}: {body[:200].decode(errors='replace')}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:g}%"


def describe(view: dict[str, Any]) -> str:
    """A target's view as a few lines for a person."""
    lines = [f"target {view['target_id']}"]
    decision = view.get("decision")
    if decision is None:
        lines.append("  no decision yet")
    else:
        lines += [
            f"  {decision['name']}: {decision['state']}, {decision['allowed_offers']} offers allowed, "
            f"reactive admission {decision['reactive_admission']:.2f}, {decision['algorithm']}",
            f"  agents: {decision['ready_agents']} ready, {decision['busy_agents']} busy, "
            f"{decision['logged_in_agents']} logged in; {decision['waiting_interactions']} waiting, "
            f"{decision['outstanding_offers']} offers out",
            f"  measured: acceptance {100 * decision['acceptance_rate']:.0f}%, abandonment "
            f"{_pct(decision['abandonment_pct'])}, service level {_pct(decision['service_level_pct'])}",
            f"  decided by {decision['node']} (partition {decision['partition']}) {decision['age_s']:.1f} s ago",
        ]
    definition = view.get("definition")
    if definition is None:
        lines.append("  definition: none (the [targets] defaults apply)")
    else:
        shown = {k: v for k, v in definition.items() if v not in (None, "") and k not in ("tenant", "target_id")}
        lines.append("  definition: " + ", ".join(f"{k}={v}" for k, v in shown.items()))
    return "\n".join(lines)


def table(items: list[dict[str, Any]]) -> str:
    """Targets as one line each."""
    rows = [("TARGET", "STATE", "OFFERS", "ADMIT", "READY", "WAIT", "NODE", "AGE_S", "DEFINED")]
    for view in items:
        decision = view.get("decision") or {}
        rows.append((view["target_id"], decision.get("state", "-"), str(decision.get("allowed_offers", "-")),
                     f"{decision['reactive_admission']:.2f}" if decision else "-",
                     str(decision.get("ready_agents", "-")), str(decision.get("waiting_interactions", "-")),
                     decision.get("node", "-"), f"{decision['age_s']:.1f}" if decision else "-",
                     "yes" if view.get("definition") else "no"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
                     for row in rows)


def run_targets(action: str, target_id: str | None, *, url: str, token: str | None, as_json: bool,
                file: str | None = None, prefix: str = "", limit: int | None = None, cafile: str | None = None,
                out: TextIO = sys.stdout) -> int:
    """One ``pacing targets`` command; the exit status."""
    client = ApiClient(url, token or os.environ.get("PACING_API_TOKEN") or None, cafile)
    if action == "get":
        view = client.target(target_id or "")
        print(json.dumps(view, indent=2) if as_json else describe(view), file=out)
    elif action == "list":
        items = client.targets(prefix, limit)
        print(json.dumps({"items": items}, indent=2) if as_json else table(items), file=out)
    elif action == "set":
        body = sys.stdin.buffer.read() if file == "-" else Path(file or "").read_bytes()
        answer = client.put_definition(target_id or "", body)
        print(json.dumps(answer) if as_json else f"definition of {target_id} written to {answer['topic']}; "
              "every worker applies it within a second", file=out)
    else:
        answer = client.delete_definition(target_id or "")
        print(json.dumps(answer) if as_json else f"definition of {target_id} deleted (tombstone on "
              f"{answer['topic']}); the [targets] defaults apply", file=out)
    return 0
