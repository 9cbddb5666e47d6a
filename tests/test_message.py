"""Wire format: msgpack header plus raw array frames; bad input raises DecodeError, never crashes."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest

from zdg.message import DecodeError, Message, decode, encode


def test_roundtrip_keeps_fields_arrays_and_eos():
    frame = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    msg = Message(fields={"video": "a.mp4", "idx": 7, "nested": {"k": [1, 2]}},
                  arrays={"frame": frame, "boxes": np.zeros((0, 4), np.float32)})
    topic, back = decode(encode(msg, "faces"))
    assert topic == "faces"
    assert back.fields == msg.fields
    np.testing.assert_array_equal(back.arrays["frame"], frame)
    assert back.arrays["boxes"].shape == (0, 4) and back.arrays["boxes"].dtype == np.float32
    assert not back.eos
    assert decode(encode(Message(eos=True)))[1].eos


def test_arrays_travel_as_separate_frames_without_copy():
    frame = np.ones((1080, 1920, 3), np.uint8)
    frames = encode(Message(arrays={"frame": frame}))
    assert len(frames) == 3
    assert np.shares_memory(np.frombuffer(frames[2], np.uint8), frame)


def test_object_arrays_are_refused():
    with pytest.raises(TypeError, match="cannot travel"):
        encode(Message(arrays={"x": np.array([object()])}))


@pytest.mark.parametrize(
    "frames",
    [
        [b"t"],
        [b"t", b"\xc1"],
        [b"t", msgpack.packb({"v": 99})],
        [b"t", msgpack.packb({"v": 1, "arrays": [["a", "float32", [2]]]})],
        [b"t", msgpack.packb({"v": 1, "arrays": [["a", "float32", [2]]]}), b"1234567"],
        [b"t", msgpack.packb({"v": 1, "arrays": [["a", "object", [1]]]}), b"12345678"],
        [b"t", msgpack.packb({"v": 1, "arrays": [["a"]]}), b""],
        [b"t", msgpack.packb({"v": 1, "fields": {(1, 2): 1}})],  # a map key that is a list
        [b"t", msgpack.packb({"v": 1, "fields": {1: 2}})],
        [b"t", msgpack.packb({"v": 1, "arrays": [[["a"], "float32", [1]]]}), b"1234"],  # an array name that is a list
        [b"t", msgpack.packb({"v": 1, "arrays": [["a", "float32", [2**32, 2**32]]]}), b""],  # 2**64 items: not 0
        [b"t", msgpack.packb({"v": 1, "arrays": [["a", "float32", [-1, -4]]]}), b"1234"],
        [b"t", msgpack.packb({"v": 1, "arrays": [["a", "uint8", [1]], ["a", "uint8", [1]]]}), b"1", b"2"],
    ],
)
def test_malformed_frames_raise_decode_error(frames):
    with pytest.raises(DecodeError):
        decode(frames)
