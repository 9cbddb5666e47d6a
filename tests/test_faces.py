"""Face path on the real models and real clips in ../shared (skipped only where shared/ is absent)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from sklearn.metrics import silhouette_score

from tests.conftest import REPO, shared_path, zdg

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def model_root(monkeypatch):
    root = os.environ.get("ZDG_MODEL_ROOT") or str(shared_path("models"))
    monkeypatch.setenv("ZDG_MODEL_ROOT", root)
    return root


def run_sequences(run_dir: Path, out: Path, *sets: str) -> tuple[int, list[dict], str]:
    args = ["run", str(REPO / "graphs/video_sequences.yaml"), "--run-dir", str(run_dir), "--no-progress",
            "--set", f"jsonl.path={out / 'seq.jsonl'}", "--set", "jsonl.include_embeddings=true",
            "--set", f"gallery.out_dir={out / 'gallery'}"]
    for item in sets:
        args += ["--set", item]
    proc = zdg(*args, timeout=300)
    path = out / "seq.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return proc.returncode, rows, proc.stderr


def test_detector_finds_the_faces_on_a_known_frame(model_root):
    from nodes.detector import DetectorNode
    from nodes.messages import Frame
    from zdg.testing import NodeHarness

    cap = cv2.VideoCapture(str(shared_path("data", "videos", "friends_poker.mp4")))
    ok, frame = cap.read()
    assert ok
    with NodeHarness(DetectorNode, pack="buffalo_sc") as harness:
        faces = harness.node.detect(Frame(video="v", video_path="", frame=0, seq=0, ts=0.0, image=frame))
    # Frame 0 shows two people (Phoebe left, Ross right), both well inside the frame.
    assert len(faces) == 2
    centres = sorted(((b[0] + b[2]) / 2, (b[1] + b[3]) / 2) for b in faces.boxes_xyxy)
    assert abs(centres[0][0] - 432) < 30 and abs(centres[1][0] - 887) < 30
    assert faces.crops.shape == (2, 112, 112, 3)
    assert (faces.scores > 0.8).all()


def test_one_person_across_consecutive_frames_is_one_sequence(run_dir, tmp_path):
    # The first 4 s of friends_poker is one shot of two people who stay on screen.
    code, rows, err = run_sequences(run_dir, tmp_path, "source.path=" + str(shared_path("data/videos/friends_poker.mp4")),
                                    "source.end_s=4")
    assert code == 0, err
    assert len(rows) == 2, [(r["first_frame"], r["last_frame"]) for r in rows]
    for row in rows:
        assert row["first_frame"] == 0 and row["last_frame"] >= 90
        assert row["size"] >= 45  # nearly every emitted frame (stride 2) of the shot


def test_friends_sequences_are_well_separated_and_eos_closes_them(run_dir, tmp_path):
    clip = shared_path("data/videos/friends_poker.mp4")
    code, rows, err = run_sequences(run_dir, tmp_path, f"source.path={clip}")
    assert code == 0, err
    assert len(rows) >= 8
    vectors = np.concatenate([np.asarray(r["embeddings"], np.float32) for r in rows])
    labels = np.concatenate([[i] * r["size"] for i, r in enumerate(rows)])
    assert vectors.shape[1] == 128  # from the model, not assumed
    score = silhouette_score(vectors, labels, metric="cosine")
    print(f"silhouette of {len(rows)} friends_poker sequences: {score:.3f}")
    assert score > 0.15
    last_emitted = (int(cv2.VideoCapture(str(clip)).get(cv2.CAP_PROP_FRAME_COUNT)) - 1) // 2 * 2
    assert any(r["last_frame"] == last_emitted for r in rows), "sequences open at end of stream must be closed"
    annotated = tmp_path / "gallery" / "friends_poker_annotated.mp4"
    with av.open(str(annotated)) as video:  # H.264: the codec browsers play (MPEG-4 Part 2 they refuse)
        stream = video.streams.video[0]
        assert (stream.codec_context.name, stream.frames) == ("h264", last_emitted + 2)  # every frame of the clip
    assert len(list((tmp_path / "gallery" / "friends_poker").glob("*.png"))) == len(rows)


@pytest.mark.parametrize(("content", "message"), [
    (b"\x00\x01 not a video at all" * 100, "corrupt or unsupported"),
    (None, "no such file or folder"),
])
def test_bad_video_is_one_clear_error_and_exit_code(run_dir, tmp_path, content, message):
    clip = tmp_path / "broken.mp4"
    if content is not None:
        clip.write_bytes(content)
    code, rows, err = run_sequences(run_dir, tmp_path, f"source.path={clip}")
    assert code == 3
    assert f"{clip}" in err and message in err
    assert "Traceback" not in err


def test_video_that_breaks_off_is_processed_up_to_the_break_and_fails_the_run(run_dir, tmp_path):
    data = bytearray(shared_path("data/videos/friends_poker.mp4").read_bytes())
    for i in range(len(data) // 3, len(data) // 3 + 20_000, 7):  # a damaged stretch a third of the way in
        data[i] = 0
    clip = tmp_path / "damaged.mp4"
    clip.write_bytes(bytes(data))
    code, rows, err = run_sequences(run_dir, tmp_path, f"source.path={clip}")
    assert code == 4, err
    stopped = re.search(r"decoding stopped at frame (\d+) of 632", err)
    assert stopped, err
    assert 100 < int(stopped.group(1)) < 600
    assert rows and max(r["last_frame"] for r in rows) < int(stopped.group(1)), "what was decoded is processed"
    assert "Traceback" not in err


def test_detector_input_follows_the_frame_and_finds_what_the_square_input_finds(model_root):
    from nodes.detector import DetectorNode, detector_input
    from nodes.messages import Frame
    from zdg.testing import NodeHarness

    assert detector_input((720, 1280, 3), 640, "aspect") == (640, 384)  # 16:9: 360 rounded up to SCRFD's stride
    assert detector_input((1280, 720, 3), 640, "aspect") == (384, 640)
    assert detector_input((480, 640, 3), 640, "aspect") == (640, 480)
    assert detector_input((720, 1280, 3), 640, "square") == (640, 640)
    cap = cv2.VideoCapture(str(shared_path("data", "videos", "friends_poker.mp4")))
    found = {"aspect": [], "square": []}
    with NodeHarness(DetectorNode, input_shape="aspect") as aspect, NodeHarness(DetectorNode, input_shape="square") as square:
        for index in range(0, 300, 30):
            cap.set(cv2.CAP_PROP_POS_FRAMES, index)
            frame = Frame(video="v", video_path="", frame=index, seq=index, ts=0.0, image=cap.read()[1])
            for shape, harness in (("aspect", aspect), ("square", square)):
                found[shape].append(harness.node.detect(frame).boxes_xyxy)
    pairs = list(zip(found["aspect"], found["square"], strict=True))
    assert sum(len(square) for _, square in pairs) >= 15
    for aspect, square in pairs:  # the same faces, no more and no fewer, at the same places
        assert len(aspect) == len(square)
        np.testing.assert_allclose(np.sort(aspect, axis=0), np.sort(square, axis=0), atol=2)


def test_strided_frames_are_the_same_frames_whether_or_not_the_others_become_images():
    from nodes.vision.video_reader import frames_from_video

    clip = str(shared_path("data", "videos", "short_hamilton_clip.mp4"))
    read = lambda **kw: list(frames_from_video(clip, 0, None, 1, lambda *a: None, lambda *a: None, **kw))  # noqa: E731
    every = {index: (ts, image) for index, ts, image in read()}
    strided = read(wanted=lambda index: index % 3 == 0)
    assert [index for index, _, _ in strided] == list(range(0, max(every) + 1, 3))
    for index, ts, image in strided:
        assert ts == every[index][0] and np.array_equal(image, every[index][1])


def test_an_int8_recogniser_pack_gives_nearly_the_same_embeddings_and_is_a_model_of_its_own(model_root, tmp_path):
    from nodes.detector import DetectorNode
    from nodes.embedder import EmbedderNode
    from nodes.messages import Frame
    from zdg.testing import NodeHarness

    clip = str(shared_path("data", "videos", "friends_poker.mp4"))
    done = zdg("models", "quantize", "mfn128", "--clip", clip, "--frames", "8", "--root", str(tmp_path), timeout=300)
    assert done.returncode == 0, done.stderr
    pack = tmp_path / "mfn128_int8"
    assert "calibrated on" in (pack / "SOURCES.md").read_text() and (pack / "mobilefacenet_128.onnx").is_file()
    cap = cv2.VideoCapture(str(shared_path("data", "videos", "short_hamilton_clip.mp4")))  # not the calibration clip
    with NodeHarness(DetectorNode) as detector:
        faces = detector.node.detect(Frame(video="v", video_path="", frame=0, seq=0, ts=0.0, image=cap.read()[1]))
    assert len(faces)
    with (NodeHarness(EmbedderNode, pack="mfn128") as fp32_harness,
          NodeHarness(EmbedderNode, pack="mfn128_int8", model_root=str(tmp_path)) as int8_harness):
        fp32, int8 = fp32_harness.node, int8_harness.node
        a, b = fp32.embed(list(faces.crops)), int8.embed(list(faces.crops))
    assert ((a * b).sum(axis=1) > 0.9).all()
    assert int8.recogniser.name == "mfn128_int8" != fp32.recogniser.name  # a store keeps one model: never mixed
    missing = zdg("models", "quantize", "no_such_pack", "--clip", clip)
    assert missing.returncode != 0 and "model pack 'no_such_pack': no *.onnx found" in missing.stderr
    assert "Traceback" not in missing.stderr


@pytest.mark.parametrize(("backend", "pack"), [("insightface", "mfn128"), ("dlib", "mfn128")])
def test_embedder_backends_tell_the_two_people_apart_across_frames(model_root, backend, pack):
    from nodes.detector import DetectorNode
    from nodes.embedder import EmbedderNode
    from nodes.messages import Frame
    from zdg.testing import NodeHarness

    cap = cv2.VideoCapture(str(shared_path("data", "videos", "friends_poker.mp4")))
    frames = []
    with NodeHarness(DetectorNode) as detector, NodeHarness(EmbedderNode, backend=backend, pack=pack) as harness:
        embedder = harness.node
        for index in range(61):
            ok, image = cap.read()
            if index in (0, 60):  # the same two people, two and a half seconds apart
                frame = Frame(video="v", video_path="", frame=index, seq=index, ts=0.0, image=image)
                frames.append(detector.node.detect(frame))
        first, later = embedder.process_batch(frames)
    assert first.embeddings.shape == later.embeddings.shape == (2, embedder.recogniser.dim)
    np.testing.assert_allclose(np.linalg.norm(first.embeddings, axis=1), 1, atol=1e-5)
    order = lambda f: np.argsort(f.boxes_xyxy[:, 0])  # noqa: E731 - left person first
    a, b = first.embeddings[order(first)], later.embeddings[order(later)]
    sim = a @ b.T
    assert sim[0, 0] > sim[0, 1] and sim[1, 1] > sim[1, 0], sim


def test_folder_of_photos_is_a_source(tmp_path):
    from nodes.video_source import VideoSourceNode
    from zdg.testing import NodeHarness

    photos = sorted(shared_path("data", "faces", "ageitgey_knn").rglob("*.jp*g"))
    for i, photo in enumerate(photos):
        (tmp_path / f"{i:02d}{photo.suffix}").write_bytes(photo.read_bytes())
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "zz_broken.jpg").write_bytes(b"not a jpeg")
    with NodeHarness(VideoSourceNode, path=str(tmp_path), stride=2) as node:
        frames = node.generate()
    assert [m.fields["frame"] for m in frames] == list(range(0, len(photos), 2))
    assert [m.fields["seq"] for m in frames] == list(range(len(frames)))
    assert frames[0].arrays["image"].ndim == 3 and frames[0].fields["video"] == tmp_path.name
    assert node.context.counters["unreadable_images"] == 1


def test_the_source_numbers_the_shots_of_a_clip_at_its_cuts_and_only_there():
    from nodes.video_source import VideoSourceNode
    from zdg.testing import NodeHarness

    def cuts(clip: str, **params) -> list[int]:
        with NodeHarness(VideoSourceNode, path=str(shared_path("data", "videos", clip)), stride=2, **params) as node:
            frames = node.generate()
        shots = [m.fields["shot"] for m in frames]
        assert shots == sorted(shots) and len(frames) > 50
        return [m.fields["frame"] for m, before in zip(frames[1:], shots, strict=False) if m.fields["shot"] != before]

    assert cuts("friends_poker.mp4") == [104, 270, 402, 452, 554]  # where the camera changes (truth file's shots)
    assert cuts("facenet_pytorch_crowd.mp4") == []  # one moving shot
    assert cuts("friends_poker.mp4", cut_distance=0) == []


def tight_crops(folder: Path) -> Path:
    """The friends_ref photos cut to 150x150 face crops, where the 640 detector alone finds nothing."""
    from nodes.detector import DetectorNode
    from nodes.messages import Frame
    from zdg.testing import NodeHarness

    with NodeHarness(DetectorNode, pack="buffalo_sc") as harness:
        for photo in sorted(shared_path("data", "faces", "friends_ref").glob("*/*.png")):
            image = cv2.imread(str(photo))
            frame = Frame(video="p", video_path="", frame=0, seq=0, ts=0.0, image=image)
            x1, y1, x2, y2 = harness.node.detect(frame).boxes_xyxy[0].astype(int)
            (folder / photo.parent.name).mkdir(parents=True)
            cv2.imwrite(str(folder / photo.parent.name / photo.name), cv2.resize(image[y1:y2, x1:x2], (150, 150)))
    return folder


def eval_faces(*args: str) -> tuple[dict[str, list[str]], str]:
    proc = zdg("eval", "faces", *args, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return {line[:26].strip(): line[26:].split() for line in proc.stdout.splitlines()[1:]}, proc.stderr


def test_eval_faces_uses_every_photo_and_gives_closed_and_open_set_figures():
    rows, _ = eval_faces(str(shared_path("data", "faces")), "--downscale", "4", "--blur", "1")
    assert set(rows) == {"clean", "downscale 4x, blur 1"}
    identities, probes, no_face, single, set_top1, tar, threshold = rows["clean"]
    assert int(identities) == 11 and int(no_face) == 0
    assert int(probes) == 8, "every photo whose identity has another photo is a probe (ageitgey_knn: 4 x 2 photos)"
    assert float(single) >= 0.9 and float(set_top1) >= 0.9 and float(tar) >= 0.75 and 0 < float(threshold) < 2


def test_tight_face_crops_are_found_and_enrolled_and_a_photo_without_a_face_stores_nothing(tmp_path, store_dsn):
    crops = tight_crops(tmp_path / "crops")
    rows, misses = eval_faces(str(crops))
    assert rows["clean"][0] == "6" and rows["clean"][2] == "0", misses
    env = {**os.environ, "ZDG_DSN": store_dsn}
    graph = str(REPO / "graphs/video_reid.yaml")
    done = zdg("enroll", "--name", "Joey", str(crops / "Joey"), "--graph", graph, env=env, timeout=120)
    assert done.returncode == 0 and "1 photo(s) enrolled" in done.stdout, done.stderr
    cv2.imwrite(str(tmp_path / "wall.png"), np.full((150, 150, 3), 90, np.uint8))
    refused = zdg("enroll", "--name", "Nobody", str(tmp_path / "wall.png"), "--graph", graph, env=env, timeout=120)
    assert refused.returncode == 1 and "nothing stored" in refused.stderr
    listed = zdg("identities", "list", "--graph", graph, env=env, timeout=60).stdout
    assert "Joey" in listed and "Nobody" not in listed


def test_stream_source_reconnects_after_the_stream_drops():
    """A local MJPEG-over-HTTP stream that hangs up after a few frames, twice: the source reconnects."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from nodes.video_source import VideoSourceNode
    from zdg.testing import NodeHarness

    cap = cv2.VideoCapture(str(shared_path("data", "videos", "short_hamilton_clip.mp4")))
    jpegs = [cv2.imencode(".jpg", cap.read()[1])[1].tobytes() for _ in range(10)]
    connections = []

    class Mjpeg(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            connections.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.end_headers()
            for jpeg in jpegs:  # then the connection closes: the stream "drops"
                self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                 + str(len(jpeg)).encode() + b"\r\n\r\n" + jpeg + b"\r\n")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Mjpeg)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/stream.mjpg"
        with NodeHarness(VideoSourceNode, path=url, reconnect_s=0.1) as node:
            frames = node.generate(limit=25)
    finally:
        server.shutdown()
    assert len(connections) >= 3 and node.context.counters["reconnects"] >= 2
    assert frames[0].arrays["image"].shape == (360, 640, 3)
    assert [m.fields["seq"] for m in frames] == list(range(25))
    visit = frames[0].fields["video"]
    assert visit.startswith("http:__127.0.0.1") and re.search(r"@\d{8}T\d{6}\.\d{3}Z$", visit), visit
    assert {m.fields["video"] for m in frames} == {visit}, "a reconnect stays in the same visit (frames keep counting)"
    assert [m.fields["frame"] for m in frames] == list(range(25)), "frame numbers never restart within a visit"


def test_a_files_creation_time_tag_is_its_wall_clock_start_and_no_tag_is_unknown(tmp_path):
    from nodes.vision.video_reader import creation_time

    tagged = tmp_path / "tagged.mp4"
    with av.open(str(tagged), "w") as video:
        video.metadata["creation_time"] = "2026-11-20T08:00:00.000000Z"
        stream = video.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for _ in range(3):
            video.mux(stream.encode(av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="bgr24")))
        video.mux(stream.encode())
    assert creation_time(str(tagged)) == 1795161600.0
    assert creation_time(str(shared_path("data/videos/friends_poker.mp4"))) == 0.0
    assert creation_time(str(tmp_path / "missing.mp4")) == 0.0


def test_a_camera_password_is_kept_out_of_what_is_shown_and_stored():
    from nodes.vision.source_paths import redacted

    assert redacted("rtsp://admin:hunter2@10.0.0.5:554/stream1") == "rtsp://admin@10.0.0.5:554/stream1"
    assert redacted("rtsp://10.0.0.5/live?x=1") == "rtsp://10.0.0.5/live?x=1"
    assert redacted("rtsp://u:p%40ss@[fe80::1]:8554/s") == "rtsp://u@[fe80::1]:8554/s"
    assert redacted("/videos/door.mp4") == "/videos/door.mp4"
