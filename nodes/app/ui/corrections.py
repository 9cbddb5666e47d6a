"""Corrections from the workbench's forms: rename, merge, mark different, delete, split, move; each answered with a
redirect that says what happened (or why it was not done)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from starlette.responses import RedirectResponse

from nodes.app.forget import remove_files_of
from nodes.store.clusters import KeptApart

if TYPE_CHECKING:
    from nodes.app.ui.app import Workbench


def back_to(path: str, message: str) -> RedirectResponse:
    return RedirectResponse(f"{path}?msg={quote(message)}", status_code=303)


def form_ids(form: Any, name: str) -> list[int]:
    """The ids a form field holds (ValueError naming the field when one is not a number)."""
    values = form.getlist(name)
    if not all(isinstance(v, str) and v.isdigit() and len(v) <= 18 for v in values):
        raise ValueError(f"{name}: expected identity or sequence numbers")
    return [int(v) for v in values]


def form_id(form: Any, name: str) -> int:
    """The one id a form field holds (ValueError naming the field when it is missing or not a number)."""
    found = form_ids(form, name)
    if len(found) != 1:
        raise ValueError(f"{name}: expected one number")
    return found[0]


@dataclass(frozen=True)
class Outcome:
    """What a correction did: the identity to look at next (None: it is gone) and a sentence saying so."""

    identity: int | None
    message: str


ACTIONS = ("rename", "merge", "different", "delete", "split", "move")


def perform(wb: Workbench, action: str, cluster_id: int, form: Any, who: str) -> Outcome:
    """One correction (`action` one of ACTIONS) with its fields from `form` (get/getlist, as a form's); raises
    LookupError, ValueError or KeptApart when it is not done."""
    if action == "rename":
        name = str(form.get("name") or "").strip()
        if not name:
            raise ValueError("a name must not be empty")
        wb.store.rename(cluster_id, name, who)
        return Outcome(cluster_id, f"renamed to {name}")
    if action == "merge":
        target = form_id(form, "into")
        wb.store.merge(cluster_id, target, who)
        return Outcome(wb.store.resolve(target), f"identity {cluster_id} merged into this one")
    if action == "different":
        other = form_id(form, "other")
        wb.store.mark_different(cluster_id, other, who)
        return Outcome(cluster_id, f"marked as a different person than identity {other}")
    if action == "delete":
        gone = wb.store.delete(cluster_id, who)
        strips, _ = remove_files_of(gone, wb.videos_dir, wb.report_dir)
        return Outcome(None, f"identity {cluster_id} deleted with its {gone.faces} faces and {strips} crop strips")
    if action == "split":
        new_id = wb.store.split(cluster_id, form_ids(form, "sequence"), who)
        return Outcome(new_id, f"split from identity {cluster_id}: marked as a different person")
    if action == "move":
        sequence_id, target = form_id(form, "sequence"), form_id(form, "into")
        target = wb.store.move_sequence(sequence_id, target, who)
        return Outcome(target, f"sequence {sequence_id} moved here from identity {cluster_id}")
    raise KeyError(action)


def apply_correction(wb: Workbench, action: str, cluster_id: int, form: Any, who: str) -> RedirectResponse | None:
    """One correction from a form, in a worker thread; where to go next with what happened (None: no such action)."""
    if action not in ACTIONS:
        return None
    try:
        done = perform(wb, action, cluster_id, form, who)
    except (LookupError, ValueError, KeptApart) as exc:
        return back_to(f"/identity/{cluster_id}", f"not done: {exc}")
    return back_to("/" if done.identity is None else f"/identity/{done.identity}", done.message)
