"""f1_sim's camera message: a numpy frame serializes to the bytes a plain sensor_msgs/Image makes."""
from __future__ import annotations

import io

import numpy as np
import pytest

pytestmark = pytest.mark.ros   # the simulator node imports rospy and the message classes


def test_frame_image_serializes_like_an_image_of_the_frame_bytes():
    from sensor_msgs.msg import Image

    from pilotnet_brains.ros.sim_node import _FrameImage

    frame = np.random.default_rng(0).integers(0, 256, (480, 640, 3), np.uint8)
    fields = dict(height=480, width=640, encoding="rgb8", is_bigendian=0, step=640 * 3)
    ours, plain = _FrameImage(data=frame, **fields), Image(data=frame.tobytes(), **fields)
    for m in (ours, plain):
        m.header.stamp.secs, m.header.stamp.nsecs, m.header.frame_id = 12, 50_000_000, "cameraL"
    a, b = io.BytesIO(), io.BytesIO()
    a.write(b"prefix")   # rospy serializes after the 4-byte packet length
    b.write(b"prefix")
    ours.serialize(a)
    plain.serialize(b)
    assert a.getvalue() == b.getvalue()
    assert ours.data is frame   # the frame stays the message's data, for the next render
    back = Image().deserialize(a.getvalue()[6:])
    assert np.array_equal(np.frombuffer(back.data, np.uint8).reshape(480, 640, 3), frame)
