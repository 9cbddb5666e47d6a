"""The six corrections of identities, done one way for `zdg identities`, the workbench's forms and its JSON API:
rename, merge, mark different, delete, split, move. Each says what it did in one sentence."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nodes.store.face_store import FaceStore

ACTIONS = ("rename", "merge", "different", "delete", "split", "move")


class Fields(dict):
    """A correction's fields as a form holds them (each a list of strings): what the CLI builds from its arguments."""

    def __init__(self, **values: str | Iterable[str]) -> None:
        super().__init__({k: [v] if isinstance(v, str) else list(v) for k, v in values.items()})

    def get(self, name: str, default: Any = None) -> Any:
        found = super().get(name)
        return found[0] if found else default

    def getlist(self, name: str) -> list[str]:
        return list(super().get(name, []))


def form_ids(form: Any, name: str) -> list[int]:
    """The ids a field holds (ValueError naming the field when one is not a number)."""
    values = form.getlist(name)
    if not all(isinstance(v, str) and v.isdigit() and len(v) <= 18 for v in values):
        raise ValueError(f"{name}: expected identity or sequence numbers")
    return [int(v) for v in values]


def form_id(form: Any, name: str) -> int:
    """The one id a field holds (ValueError naming the field when it is missing or not a number)."""
    found = form_ids(form, name)
    if len(found) != 1:
        raise ValueError(f"{name}: expected one number")
    return found[0]


@dataclass(frozen=True)
class Outcome:
    """What a correction did: the identity to look at next (None: it is gone) and a sentence saying so."""

    identity: int | None
    message: str


def perform(store: FaceStore, action: str, cluster_id: int, form: Any, who: str, videos_dir: Path,
            report_dir: Path | None = None) -> Outcome:
    """One correction (`action` one of ACTIONS) of identity `cluster_id`, its fields from `form` (get/getlist, as a
    form's), recorded in the store's history as `who`'s; a delete also removes the files that show the identity
    (`videos_dir`: the gallery's crop strips; `report_dir`: the report). Raises LookupError, ValueError or KeptApart
    when it is not done."""
    if action == "rename":
        name = str(form.get("name") or "").strip()
        if not name:
            raise ValueError("a name must not be empty")
        store.rename(cluster_id, name, who)
        return Outcome(cluster_id, f"renamed to {name}")
    if action == "merge":
        target = form_id(form, "into")
        store.merge(cluster_id, target, who)
        return Outcome(store.resolve(target), f"identity {cluster_id} merged into this one")
    if action == "different":
        other = form_id(form, "other")
        store.mark_different(cluster_id, other, who)
        return Outcome(cluster_id, f"marked as a different person than identity {other}")
    if action == "delete":
        from nodes.app.forget import remove_files_of  # the store and OpenCV: only a delete needs them

        gone = store.delete(cluster_id, who)
        strips, report = remove_files_of(gone, videos_dir, report_dir)
        return Outcome(None, f"identity {cluster_id} deleted with its {gone.faces} faces, {len(gone.sequences)} "
                       f"sequences and {strips} crop strips" + (f"; removed the report in {report_dir} (it showed "
                                                                 "them; `zdg report` writes it again)" if report else ""))
    if action == "split":
        new_id = store.split(cluster_id, form_ids(form, "sequence"), who)
        return Outcome(new_id, f"split from identity {cluster_id}: marked as a different person")
    if action == "move":
        sequence_id, target = form_id(form, "sequence"), form_id(form, "into")
        target = store.move_sequence(sequence_id, target, who)
        return Outcome(target, f"sequence {sequence_id} moved into identity {target}")
    raise KeyError(action)
