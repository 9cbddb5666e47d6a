"""Re-identification node: each stored sequence joins its best face cluster or starts a new one; junk joins none."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from pydantic import Field

from nodes.environment import StoreParams
from nodes.matching.decision import ReidSettings, for_model
from nodes.messages import CROP_SIZE, ReidDecision, Sequence
from zdg.node import Deploy, Node

if TYPE_CHECKING:
    from nodes.matching.decision import Candidate
    from nodes.store.face_store import FaceStore

FINISHED = 2**31 - 1  # a checkpoint past any end frame: the source was read to its end and all of it is durable


class ReidParams(StoreParams, ReidSettings):
    maintain_every: int = Field(50, ge=0, description="decisions between maintenance passes (0: only at the end of "
                                "the stream); a pass looks at the clusters changed since the last one")


class ReidNode(Node):
    """Stored sequences (with `sequence_db_id`) in; one ReidDecision per sequence out. Each decision also
    advances the sequence's source checkpoint (same transaction), so a rerun resumes after what is durable.
    When maintenance merges clusters, every sequence it moved is published again with status `merged`.
    Sequences still open (port `open`, from the sequencer's `update`) get a `provisional` decision: the same
    rule on what is on screen so far, nothing stored."""

    TYPE = "reid"
    Params = ReidParams
    inputs = {"in": Sequence, "open": Sequence}
    outputs = {"out": ReidDecision}
    deploy = Deploy(image="zdg-faces", store=True)
    preload = ("nodes.store.handle", "nodes.store.pg")

    def setup(self) -> None:
        from nodes.store.handle import StoreClient

        self.client = StoreClient(self.params, self.context.env, self.log, self.context.count)
        self.decisions = 0
        self.sources: set[str] = set()
        self.settings: dict[str, ReidSettings] = {}
        self.model = ""

    def settings_for(self, model: str) -> ReidSettings:
        if model not in self.settings:
            self.settings[model] = for_model(self.params, model)
        self.model = model
        return self.settings[model]

    def process(self, seq: Sequence) -> list[ReidDecision]:
        from nodes.matching.quality import junk_reason
        from nodes.store.reid import Query

        if not seq.closed:
            return self.provisional(seq)
        if seq.sequence_db_id is None:
            raise ValueError(f"sequence {seq.sequence_id} has no sequence_db_id: reid takes sequences from a db_writer")
        settings = self.settings_for(seq.model)
        dim = seq.embeddings.shape[1]
        checkpoint = (seq.video, seq.resume_frame) if seq.resume_frame is not None else None
        query = Query(seq.sequence_db_id, seq.embeddings, seq.quality, junk_reason(seq, settings), seq.continues)
        decision = self.client.call(dim, lambda store: store.decide(query, settings, checkpoint))
        self.context.count(decision.status)
        self.decisions += 1
        self.sources.add(seq.video)
        out = [ReidDecision(
            sequence_id=seq.sequence_id, sequence_db_id=seq.sequence_db_id, video=seq.video, video_path=seq.video_path,
            first_frame=seq.first_frame, last_frame=seq.last_frame, cluster_id=decision.cluster_id,
            status=decision.status, distance=decision.distance, silhouette=decision.silhouette, name=decision.name,
            frames=seq.frames, boxes_xyxy=seq.boxes_xyxy, crops=seq.crops, crop_frames=seq.crop_frames)]
        if self.params.maintain_every and self.decisions % self.params.maintain_every == 0:
            out += self.maintain(dim)
        return out

    def provisional(self, seq: Sequence) -> list[ReidDecision]:
        """The cluster an open sequence would join now (None: nobody yet); none for one that looks like junk."""
        from dataclasses import replace

        from nodes.matching.decision import choose
        from nodes.matching.quality import junk_reason

        settings = self.settings_for(seq.model)
        if junk_reason(seq, settings):
            self.context.count("provisional_junk_skipped")
            return []

        def ask(store: FaceStore) -> tuple[list[Candidate], ReidSettings]:
            apart = store.clusters_on_screen(seq.video, seq.first_frame, seq.last_frame)
            found = [replace(c, co_occurs=c.cluster_id in apart) for c in store.candidates(seq.embeddings, settings, None)]
            return found, store.for_source(seq.video, settings)

        found, local = self.client.call(seq.embeddings.shape[1], ask)
        choice = choose(seq.embeddings, found, local, seq.quality)
        self.context.count("provisional")
        return [ReidDecision(
            sequence_id=seq.sequence_id, sequence_db_id=None, video=seq.video, video_path=seq.video_path,
            first_frame=seq.first_frame, last_frame=seq.last_frame, cluster_id=choice.cluster_id, status="provisional",
            distance=choice.distance, silhouette=choice.silhouette,
            name=next((c.name for c in found if c.cluster_id == choice.cluster_id), None),
            frames=seq.frames, boxes_xyxy=seq.boxes_xyxy, crops=seq.crops, crop_frames=seq.crop_frames)]

    def maintain(self, dim: int) -> list[ReidDecision]:
        """One maintenance pass; a `merged` decision for each sequence it moved to another cluster."""
        report = self.client.call(dim, lambda store: store.maintain(self.settings_for(self.model)))
        self.context.count("merged", len(report.moved))
        for statement in report.reindexed:
            self.log.info("centroid index rebuilt for the store's size: %s", statement)
        empty = np.zeros(0, np.int32)
        return [ReidDecision(
            sequence_id=m.sequence_key, sequence_db_id=m.sequence_db_id, video=m.source, video_path="",
            first_frame=m.first_frame, last_frame=m.last_frame, cluster_id=m.cluster_id, status="merged",
            distance=None, silhouette=None, name=m.name, frames=empty, boxes_xyxy=np.zeros((0, 4), np.float32),
            crops=np.zeros((0, CROP_SIZE, CROP_SIZE, 3), np.uint8), crop_frames=empty, merged_from=m.merged_from)
            for m in report.moved]

    def finish(self) -> list[ReidDecision]:
        out = self.maintain(self.client.store.dim) if self.decisions and self.client.store is not None else []
        if self.context.stream_complete:  # every frame was read and every sequence is decided
            for source in sorted(self.sources):
                self.client.call(None, lambda store, source=source: store.advance_checkpoint(source, FINISHED))
        return out

    def teardown(self) -> None:
        self.client.close()
