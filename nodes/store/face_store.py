"""The one interface to the face store; nodes and commands use it, never SQL (`PgFaceStore` implements it)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from nodes.matching.decision import Candidate, ReidSettings
    from nodes.matching.truth import Truth
    from nodes.messages import Sequence
    from nodes.store.browse import DecidedSequence, Event, SequenceRow
    from nodes.store.clusters import Deleted, Identity
    from nodes.store.maintain import MaintenanceReport
    from nodes.store.reid import Decision, Query


class FaceStore(Protocol):
    dim: int  # the embedding dimension, fixed when the store was created

    def write_sequences(self, batch: list[Sequence]) -> list[tuple[int, bool]]:
        """Store closed sequences in one transaction: (store id, newly written) each; a replay writes nothing."""

    def candidates(self, embeddings: np.ndarray, settings: ReidSettings, exclude_sequence: int | None) -> list[Candidate]:
        """Clusters worth scoring for a sequence, with the stored embeddings they are scored on."""

    def clusters_on_screen(self, source: str, first_frame: int, last_frame: int) -> set[int]:
        """Clusters with a stored sequence of the source in that frame range: not who a sequence then is."""

    def for_source(self, source: str, settings: ReidSettings) -> ReidSettings:
        """The settings a decision on this source uses: its thresholds tightened by its own different-person
        distances (nodes/store/apart.py)."""

    def source_thresholds(self, settings: ReidSettings) -> list[dict]:
        """Per source: its different-person distances and the join threshold its decisions use."""

    def decide(self, query: Query, settings: ReidSettings, checkpoint: tuple[str, int] | None = None) -> Decision:
        """Put a stored sequence into its cluster (the rule in nodes.matching.decision; junk: none) and record why; with
        (source, resume frame), advance that source's checkpoint in the same transaction."""

    def checkpoint(self, source: str) -> tuple[int, int | None]:
        """(frame a rerun resumes from, end frame once the source was read to its end, else None)."""

    def mark_end(self, source: str, end_frame: int) -> None: ...

    def advance_checkpoint(self, source: str, resume_frame: int) -> None: ...

    def maintain(self, settings: ReidSettings, max_vectors: int = 500, full: bool = False) -> MaintenanceReport:
        """Merge weak clusters, forget vectors beyond a cap, refresh silhouettes: of the clusters changed since the
        last pass and their neighbours, or (`full`, and the first pass) of all."""

    def enroll(self, name: str, faces: list[tuple[str, str, np.ndarray, np.ndarray, np.ndarray, float]], model: str = "") -> int:
        """Add photos' faces (photo, path, embedding, box, keypoints, score), embedded by `model`, to the named
        identity; its id."""

    def resolve(self, cluster_id: int) -> int:
        """The cluster an id names now (a merged-away id names the cluster it went into)."""

    def merge(self, source: int, target: int, actor: str | None = None) -> None:
        """Join two identities (KeptApart if they were marked as different people); `actor`: who, for the history."""

    def rename(self, cluster_id: int, name: str, actor: str | None = None) -> None: ...

    def delete(self, cluster_id: int, actor: str | None = None) -> Deleted:
        """Remove an identity and everything about it; what was removed (faces, sequences)."""

    def erase(self) -> list[str]:
        """Rewrite the tables that held faces (VACUUM FULL) so deleted rows leave the data files; what was rewritten.
        The server's write-ahead log and any backups keep them until they are recycled."""

    def split(self, cluster_id: int, sequence_ids: list[int], actor: str | None = None) -> int:
        """Move the chosen sequences into a new identity, marked as a different person; its id."""

    def move_sequence(self, sequence_id: int, target: int, actor: str | None = None) -> int:
        """Put one sequence into another identity; that identity's id."""

    def mark_different(self, a: int, b: int, actor: str | None = None) -> None:
        """A cannot-link: no merge, by maintenance or by hand, joins the two."""

    def identities(self, ids: list[int] | None = None, after: int = 0, limit: int | None = None) -> list[Identity]:
        """The identities of `ids`, or a page of every one: those after id `after`, up to `limit`, by id."""

    def identity_count(self) -> int: ...

    def likely_targets(self, cluster_id: int, k: int = 30) -> list[int]:
        """The identities nearest this one, and named ones: what a merge or a 'not the same' picks from."""

    def sequences(self, cluster_id: int) -> list[SequenceRow]:
        """An identity's sequences with source, frames, times and their crops' frames."""

    def recent_sequences(self, before: int | None = None, limit: int = 50) -> list[DecidedSequence]:
        """The newest stored sequences (ids below `before`), newest first, with their identity and its name."""

    def crop(self, sequence_id: int, frame: int | None = None) -> bytes | None: ...

    def events(self, cluster_id: int | None = None, limit: int = 50) -> list[Event]:
        """The newest changes to the store's identities, newest first."""

    def summary(self) -> dict[str, int]: ...

    def sampled_vectors(self) -> tuple[np.ndarray, np.ndarray, dict[int, str | None]]:
        """Some embeddings of every cluster, their cluster ids, and the clusters' names."""

    def report_clusters(self) -> list[tuple]: ...

    def appearances(self, cluster_id: int) -> list[tuple]: ...

    def crops(self, cluster_id: int, limit: int) -> list[tuple[bytes, int]]: ...

    def export(self) -> Iterator[dict]:
        """One row per sequence, as they are read: source, key, frames, times, faces, cluster id and name, distance."""

    def evaluate_video(self, truth: Truth, video: str, first_visit: str | None = None, *, torso_apart: float) -> dict:
        """A visit's clusters scored against positional truth (nodes.store.evaluation)."""

    def close(self) -> None: ...
