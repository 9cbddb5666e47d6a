"""Sequencer logic in memory: tracks, gaps, splits, reordering, end of stream."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from nodes.messages import Faces
from nodes.sequencer import SequencerNode
from zdg.testing import NodeHarness

DIM = 16
RNG = np.random.default_rng(0)
PEOPLE = np.linalg.qr(RNG.normal(size=(DIM, DIM)))[0][:3]  # orthonormal identities


def frame(seq: int, people: list[tuple[int, float]]) -> Faces:
    """A frame with one face per (identity, x position)."""
    n = len(people)
    boxes = np.array([[x, 100, x + 80, 200] for _, x in people], np.float32).reshape(n, 4)
    emb = np.array([PEOPLE[p] + RNG.normal(scale=0.05, size=DIM) for p, _ in people], np.float32).reshape(n, DIM)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True).clip(1e-9)
    return Faces(video="v", video_path="", frame=seq * 2, seq=seq, ts=seq / 12, boxes_xyxy=boxes,
                 kps=np.zeros((n, 5, 2), np.float32), scores=np.full(n, 0.9, np.float32),
                 quality=np.full(n, 0.5, np.float32), crops=np.zeros((n, 112, 112, 3), np.uint8), embeddings=emb, model="mfn128")


def run(frames: list[Faces], **params) -> list[dict]:
    with NodeHarness(SequencerNode, **params) as node:
        node.feed(*frames)
        return [{"size": s.size, "frames": s.frames.tolist()} for s in node.typed("out", finish=True)]


def test_two_people_moving_are_two_sequences():
    frames = [frame(i, [(0, 100 + 5 * i), (1, 600 - 5 * i)]) for i in range(20)]
    seqs = run(frames)
    assert sorted(s["size"] for s in seqs) == [20, 20]


def test_occlusion_shorter_than_max_gap_keeps_one_sequence_longer_splits():
    frames = [frame(i, [(0, 100)] if not 5 <= i < 9 else []) for i in range(15)]
    assert [s["size"] for s in run(frames, max_gap=6)] == [11]
    assert sorted(s["size"] for s in run(frames, max_gap=2)) == [5, 6]


def test_identity_jump_at_the_same_place_splits():
    frames = [frame(i, [(0 if i < 10 else 2, 100)]) for i in range(20)]
    assert sorted(s["size"] for s in run(frames)) == [10, 10]


def test_a_cut_ends_every_sequence_even_where_a_lookalike_takes_the_same_place():
    first = [frame(i, [(0, 100)]) for i in range(10)]
    lookalike = [frame(i, [(0, 100)]) for i in range(10, 20)]  # someone whose face is cosine 0.7 from the first's
    lookalike = [replace(f, embeddings=(f.embeddings + PEOPLE[2]) / np.linalg.norm(f.embeddings + PEOPLE[2]))
                 for f in lookalike]
    assert [s["size"] for s in run(first + lookalike)] == [20], "in one shot, the face alone does not split them"
    after_cut = [replace(f, shot=1) for f in lookalike]
    assert sorted(s["size"] for s in run(first + after_cut)) == [10, 10]


def test_out_of_order_frames_are_reordered():
    frames = [frame(i, [(0, 100 + 3 * i)]) for i in range(30)]
    shuffled = frames[:]
    for i in range(0, 30, 4):
        shuffled[i:i + 4] = reversed(shuffled[i:i + 4])
    seqs = run(shuffled)
    assert len(seqs) == 1 and seqs[0]["frames"] == [f.frame for f in frames]


def test_short_sequences_are_dropped_and_open_ones_closed_at_end():
    frames = [frame(0, [(0, 100)]), frame(1, [(0, 100)])] + [frame(i, [(1, 500)]) for i in range(10, 14)]
    seqs = run(frames, min_length=3, max_gap=3)
    assert [s["size"] for s in seqs] == [4]


def test_each_sequence_says_where_a_rerun_must_resume_to_rebuild_what_is_still_open():
    # person 0 throughout; person 1 from frame 10 to 19, then person 2 from 30: sequences close while others are open
    frames = [frame(i, [(0, 100)] + ([(1, 500)] if 5 <= i < 10 else []) + ([(2, 900)] if i >= 15 else []))
              for i in range(30)]
    with NodeHarness(SequencerNode, max_gap=2) as node:
        node.feed(*frames)
        emitted = node.typed("out", finish=True)
    assert len(emitted) == 3
    for i, seq in enumerate(emitted):
        later = [s.first_frame for s in emitted[i + 1:]]
        assert seq.resume_frame <= min(later, default=seq.resume_frame), "a rerun from here rebuilds every later one"
    first_closed = emitted[0]  # person 1, closed while person 0 (open since frame 0) was still on screen
    assert first_closed.first_frame == 10 and first_closed.resume_frame == 0
    assert emitted[-1].resume_frame == frames[-1].frame + 1, "at the end of the file everything is durable"


def test_an_interrupted_stream_leaves_open_sequences_for_the_rerun():
    frames = [frame(i, [(0, 100)]) for i in range(10)]
    with NodeHarness(SequencerNode) as node:
        node.feed(*frames)
        node.context.stream_complete = False  # the source was stopped (Ctrl-C) before its end
        assert node.typed("out", finish=True) == []
        assert node.context.counters["open_sequences_left_for_resume"] == 1


def test_link_and_split_cosines_come_from_the_embedding_models_calibration():
    from dataclasses import replace

    import pytest

    from zdg.node import FatalNodeError

    frames = [frame(i, [(0, 100)]) for i in range(6)]
    with NodeHarness(SequencerNode) as node:
        node.feed(*frames)
        rule = node.node.rules["mfn128"]
    from nodes.matching.thresholds import load_thresholds

    shipped = load_thresholds("mfn128")
    assert (rule.min_cosine, rule.split_cosine) == (shipped.link_cosine, shipped.split_cosine)
    with NodeHarness(SequencerNode, split_cosine=0.9) as node:
        node.feed(*frames)
        assert node.node.rules["mfn128"].split_cosine == 0.9, "a graph's own value wins"
    with NodeHarness(SequencerNode) as node, pytest.raises(FatalNodeError, match="no calibration for embedding model 'x'"):
        node.feed(replace(frames[0], model="x"))


def test_a_long_open_sequence_is_sent_on_update_every_few_seconds_for_a_provisional_decision():
    frames = [frame(i, [(0, 100 + i)]) for i in range(60)]  # 5 s at 12 fps
    with NodeHarness(SequencerNode, update_after_s=2.0) as node:
        node.feed(*frames)
        updates = node.typed("update")
        closed = node.typed("out", finish=True)
    assert [(u.closed, u.last_ts) for u in updates] == [(False, 2.0), (False, 4.0)], "every 2 s of the sequence"
    assert all(u.sequence_id == closed[0].sequence_id for u in updates), "the same key as its final decision"
    with NodeHarness(SequencerNode) as node:
        node.feed(*frames)
        assert node.typed("update") == [], "off by default"


def test_a_long_sequence_is_emitted_in_linked_parts_and_no_face_is_lost():
    frames = [frame(i, [(0, 100 + i), (1, 400 + i)]) for i in range(60)]
    with NodeHarness(SequencerNode, max_faces=25) as node:
        node.feed(*frames)
        parts = node.typed("out", finish=True)
    for person_x in (100, 400):
        mine = [p for p in parts if p.boxes_xyxy[0, 0] - p.frames[0] // 2 == person_x]
        assert [p.size for p in mine] == [25, 25, 10]
        assert [p.continues for p in mine] == [None, mine[0].sequence_id, mine[1].sequence_id], "each part names the one before"
        assert np.concatenate([p.frames for p in mine]).tolist() == [i * 2 for i in range(60)], "every face, once"


def test_a_missing_frame_is_skipped_after_the_reorder_window_or_waited_for_while_the_graph_recovers():
    frames = [frame(i, [(0, 100 + i)]) for i in range(30)]
    without_5 = frames[:5] + frames[6:]
    with NodeHarness(SequencerNode, reorder_window=8, max_gap=1) as node:
        node.feed(*without_5)
        assert node.context.counters["missing_frames"] == 1, "a lone graph does not stall on a lost frame"
        assert [s.size for s in node.typed("out")] == [5], "the sequence was cut at the lost frame"
        assert [s.size for s in node.typed("out", finish=True)] == [5, 24]
    with NodeHarness(SequencerNode, reorder_window=8, max_gap=1) as node:
        node.context.graph_recovery = True
        node.feed(*without_5)
        assert node.context.counters["missing_frames"] == 0 and node.context.counters["waits_for_missing_frames"] == 1
        node.feed(frames[5])  # the graph rewound and it came after all
        assert node.typed("out") == [], "nothing decided while it was missing"
        assert [s.size for s in node.typed("out", finish=True)] == [30]
    with NodeHarness(SequencerNode, reorder_window=8, max_gap=1, missing_wait_s=0) as node:
        node.context.graph_recovery = True
        node.feed(*without_5)
        assert node.context.counters["missing_frames"] == 1, "the wait is bounded"


def test_a_source_that_falls_silent_has_its_open_sequences_closed():
    from dataclasses import replace

    crashed = [replace(frame(i, [(0, 100 + i)]), video="cam@1", video_path="rtsp://cam") for i in range(10)]  # died here
    after = [replace(frame(i, [(1, 500 + i)]), video="cam@2", video_path="rtsp://cam") for i in range(10)]  # its restart
    with NodeHarness(SequencerNode, idle_close_s=0.2) as node:
        node.feed(*crashed)
        node.feed(after[0])
        assert node.typed("out") == [], "not silent long enough yet"
        time.sleep(0.3)
        node.feed(*after[1:])
        closed = node.typed("out")
        assert [(s.video, s.size, s.resume_frame) for s in closed] == [("cam@1", 10, 19)], "closed whole, durable"
        assert node.context.counters["idle_sources_closed"] == 1
        assert [(s.video, s.size) for s in node.typed("out", finish=True)[1:]] == [("cam@2", 10)]
    with NodeHarness(SequencerNode, idle_close_s=0.2) as node:
        node.feed(*crashed)
        time.sleep(0.3)
        node.node.idle()  # nothing else flows: the worker calls idle() while no input arrives
        assert node.context.counters["idle_sources_closed"] == 1
    with NodeHarness(SequencerNode, idle_close_s=0.2) as node:
        node.feed(*[frame(i, [(0, 100 + i)]) for i in range(10)])  # a file's frames (video_path "")
        time.sleep(0.3)
        node.node.idle()
        assert not node.context.counters["idle_sources_closed"], "a file ends with its end of stream, however slow"
