"""Re-identification node: each stored sequence joins its best face cluster or starts a new one."""

from __future__ import annotations

from nodes.decision import ReidSettings
from nodes.environment import StoreParams
from nodes.messages import ReidDecision, Sequence
from zdg.node import Deploy, Node

FINISHED = 2**31 - 1  # a checkpoint past any end frame: the source was read to its end and all of it is durable


class ReidParams(StoreParams, ReidSettings):
    maintain_every: int = 50


class ReidNode(Node):
    """Stored sequences (with `sequence_db_id`) in; one ReidDecision per sequence out. Each decision also
    advances the sequence's source checkpoint (same transaction), so a rerun resumes after what is durable."""

    TYPE = "reid"
    Params = ReidParams
    inputs = {"in": Sequence}
    outputs = {"out": ReidDecision}
    deploy = Deploy(image="zdg-faces", store=True)

    def setup(self) -> None:
        from nodes.store_client import StoreClient

        self.client = StoreClient(self.params, self.context.env, self.log, self.context.count)
        self.decisions = 0
        self.sources: set[str] = set()

    def process(self, seq: Sequence) -> ReidDecision:
        if seq.sequence_db_id is None:
            raise ValueError(f"sequence {seq.sequence_id} has no sequence_db_id: reid takes sequences from a db_writer")
        dim = seq.embeddings.shape[1]
        checkpoint = (seq.video, seq.resume_frame) if seq.resume_frame is not None else None
        decision = self.client.call(dim, lambda store: store.decide(seq.sequence_db_id, seq.embeddings, self.params,
                                                                    checkpoint))
        self.context.count(decision.status)
        self.decisions += 1
        self.sources.add(seq.video)
        if self.params.maintain_every and self.decisions % self.params.maintain_every == 0:
            self.client.call(dim, lambda store: store.maintain(self.params))
        return ReidDecision(
            sequence_id=seq.sequence_id, sequence_db_id=seq.sequence_db_id, video=seq.video, video_path=seq.video_path,
            first_frame=seq.first_frame, last_frame=seq.last_frame, cluster_id=decision.cluster_id,
            status=decision.status, distance=decision.distance, silhouette=decision.silhouette, name=decision.name,
            frames=seq.frames, boxes_xyxy=seq.boxes_xyxy, crops=seq.crops, crop_frames=seq.crop_frames)

    def finish(self) -> None:
        if self.decisions and self.client.store is not None:
            self.client.call(self.client.store.dim, lambda store: store.maintain(self.params))
        if self.context.stream_complete:  # every frame was read and every sequence is decided
            for source in sorted(self.sources):
                self.client.call(None, lambda store, source=source: store.advance_checkpoint(source, FINISHED))

    def teardown(self) -> None:
        self.client.close()
