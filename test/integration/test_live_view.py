"""The live view in a real run: headless:=false opens its window on an X display (Xvfb here, from the
setup's Debian packages), and the same picture is published on /live_view/debug_image. The
screenshot of the display is written to .build/live_view_screenshot.png (docs/live_view.png is one)."""
from __future__ import annotations

import os
import subprocess
import time

import numpy as np
import pytest
from conftest import ROOT

CROP = (0, 220, 255)


@pytest.fixture
def xvfb(monkeypatch):
    """An X server on a free display number; DISPLAY set for the nodes this test launches."""
    r, w = os.pipe()
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(w), "-screen", "0", "1600x800x24", "-nolisten", "tcp"],
                            pass_fds=(w,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(w)
    with os.fdopen(r) as f:
        display = ":" + f.readline().strip()
    monkeypatch.setenv("DISPLAY", display)
    yield display
    proc.terminate()
    proc.wait(10)


def _crop_pixels(img: np.ndarray) -> int:
    return int((np.abs(img.astype(int) - np.array(CROP)).sum(axis=-1) < 30).sum())


def test_live_view_window_and_debug_image(ros_master, roslaunch_files, xvfb, tmp_path):
    import rospy
    from PIL import ImageGrab
    from sensor_msgs.msg import Image

    got = []
    sub = rospy.Subscriber("/live_view/debug_image", Image, got.append, queue_size=1, buff_size=2 ** 24)
    roslaunch_files("launch/circuit.launch", brain="explicit", headless="false", results_dir=str(tmp_path),
                    run_id="live", wait_for_stats_subscriber=0)
    deadline = time.monotonic() + 120
    shot = None
    while time.monotonic() < deadline:
        time.sleep(1.0)
        if not got:
            continue
        msg = got[-1]
        view = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.width, 3)
        if msg.header.stamp.to_sec() == 0 or view[:480, :640].std() < 5:      # no camera frame yet
            continue
        shot = np.asarray(ImageGrab.grab(xdisplay=xvfb).convert("RGB"))
        if _crop_pixels(shot) > 1000:
            break
    sub.unregister()
    assert got, "nothing on /live_view/debug_image"
    assert view.shape == (680, view.shape[1], 3) and view.shape[1] > 640 + 500
    assert _crop_pixels(view) > 1000, "the debug image has no crop outline"
    assert shot is not None and _crop_pixels(shot) > 1000, "no live view window on the X display"
    # the screenshot, cut to the window (the rest of the X screen is black)
    from PIL import Image as PILImage

    ys, xs = np.nonzero(shot.sum(axis=-1) > 0)
    os.makedirs(os.path.join(ROOT, ".build"), exist_ok=True)
    PILImage.fromarray(shot[ys.min():ys.max() + 1, xs.min():xs.max() + 1]).save(
        os.path.join(ROOT, ".build", "live_view_screenshot.png"))
