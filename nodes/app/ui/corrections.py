"""Corrections from the workbench's forms (nodes.app.corrections does them), each answered with a redirect that says
what happened (or why it was not done)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from starlette.responses import RedirectResponse

from nodes.app.corrections import ACTIONS, Outcome, perform
from nodes.store.clusters import KeptApart

if TYPE_CHECKING:
    from nodes.app.ui.app import Workbench


def back_to(path: str, message: str) -> RedirectResponse:
    return RedirectResponse(f"{path}?msg={quote(message)}", status_code=303)


def correct(wb: Workbench, action: str, cluster_id: int, form: Any, who: str) -> Outcome:
    """One correction on the workbench's store, with its gallery and report folders."""
    return perform(wb.store, action, cluster_id, form, who, wb.videos_dir, wb.report_dir)


def apply_correction(wb: Workbench, action: str, cluster_id: int, form: Any, who: str) -> RedirectResponse | None:
    """One correction from a form, in a worker thread; where to go next with what happened (None: no such action)."""
    if action not in ACTIONS:
        return None
    try:
        done = correct(wb, action, cluster_id, form, who)
    except (LookupError, ValueError, KeptApart) as exc:
        return back_to(f"/identity/{cluster_id}", f"not done: {exc}")
    return back_to("/" if done.identity is None else f"/identity/{done.identity}", done.message)
