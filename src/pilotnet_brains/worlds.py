"""Gazebo 11 worlds generated from the circuit files (the same geometry and colours as f1_sim).

For a circuit ``<c>`` this writes:

- ``worlds/<c>.world`` (``<c>_reverse.world`` for the circuit driven the other way): an SDF 1.6
  world, self-contained but for two meshes: physics at 1 ms steps, Gazebo's default sun and
  ambient light (what the renderer lights with), the sky colour as background, and two models:

  - ``pilotnet_<c>_circuit`` (static): the grass (a plane in the ground colour, with collision),
    the asphalt and the red line as flat triangle strips 1 and 2 mm above it (exact
    trapezoids between cross-sections of the centerline, in the road's and line's widths), and
    the walls: ``wall_height`` m tall, ``WALL_THICKNESS`` m thick boxes along both sides, their
    inner face at ``wall_offset`` m from the line (the asphalt edge), in the wall colour, each box
    both collision and visual geometry. Cross-sections are as far apart (at most ``SEGMENT_MAX``
    m) as the chords stay within ``LINE_TOLERANCE`` of the line's edges and ``WALL_TOLERANCE``
    of the walls' faces; the asphalt's edges are the walls' inner faces' chords (no gap, no
    overlap).
  - ``f1_renault``: a car like JdeRobot CustomRobots' f1_renault (measured from its model.sdf):
    a 1.0 x 0.36 x 0.21 m body whose origin (the odometry pose) is 0.37 m ahead of the rear axle,
    so it spans 0.543 m behind to 0.457 m ahead of the origin; at the circuit's start pose.
    ``libgazebo_ros_planar_move`` (``/F1ROS/cmd_vel`` in, ``/F1ROS/odom`` 20 Hz out, frames
    ``odom`` -> ``xf1``) and the camera ``cam_f1_left`` at (0.45, 0.04, camera_height) m in the
    car frame, no tilt: 640x480 R8G8B8, hfov 1.57 rad, clip 0.1-15 m, 20 Hz, with
    ``libgazebo_ros_camera`` (``/F1ROS/cameraL/image_raw`` and ``camera_info``).
- ``worlds/models/pilotnet_<c>_road/``: ``model.config``, ``model.sdf`` (the road and line as a
  model of their own) and ``meshes/road.stl``, ``meshes/line.stl`` (binary STL, world
  coordinates, facing up), found through ``model://`` (sim.launch puts ``worlds/models`` on
  GAZEBO_MODEL_PATH).

The renderer draws the same things (flat ground, red line, walls at the asphalt edge, sky beyond
the far clip); the asphalt here is flat-coloured (its mean colour), where f1_sim adds a fine
gravel texture.
"""
from __future__ import annotations

import math
import os
import struct
from typing import Sequence
from xml.sax.saxutils import escape

import numpy as np

from pilotnet_brains import topics
from pilotnet_brains.circuits import Circuit
from pilotnet_brains.sim.render import AMBIENT, DIFFUSE, SUN_DIRECTION, CameraConfig
from pilotnet_brains.sim.walls import FOOTPRINT_BACK, FOOTPRINT_FRONT, FOOTPRINT_HALF_WIDTH
from pilotnet_brains.util import atomic_write_bytes, atomic_write_text

#: Wall boxes: thickness (m, behind the inner face; the Gazebo F1 walls are 0.10-0.13 m boxes).
WALL_THICKNESS = 0.10
#: Longest box / strip segment (m) and the largest distance (m) a chord may stray from the curve
#: it replaces: the red line's and the road's edges (the meshes), the walls' faces (the boxes;
#: the Gazebo F1 walls themselves stray tens of cm from their nominal offset).
SEGMENT_MAX = 2.0
LINE_TOLERANCE = 0.003
WALL_TOLERANCE = 0.01
#: Height (m) of the asphalt and of the red line above the grass plane (z-order without z-fighting).
ROAD_Z = 0.001
LINE_Z = 0.002
#: f1_renault: body (m, length x width x height); the footprint matches f1_sim's wall contact.
BODY = (FOOTPRINT_FRONT + FOOTPRINT_BACK, 2 * FOOTPRINT_HALF_WIDTH, 0.21)
#: Collision box of the body starts this high (m), so it touches walls but never the ground
#: (planar move sets the velocity; ground friction would fight it).
BODY_CLEARANCE = 0.03
BODY_MASS = 10.0
#: Grass plane margin (m) around the road.
GROUND_MARGIN = 30.0
#: Camera sensor name of f1_renault and the frame_id of its images (as f1_sim publishes them).
CAMERA_SENSOR = "cam_f1_left"
CAMERA_FRAME = "cameraL"
CAR_MODEL = "f1_renault"


def _rgba(c: Sequence[int]) -> str:
    return " ".join(f"{v / 255.0:.3f}" for v in c) + " 1"


def _fmt(v: float, nd: int = 4) -> str:
    s = f"{v:.{nd}f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


# ---------------------------------------------------------------------------------- geometry
def _normals(circuit: Circuit) -> np.ndarray:
    """Unit left normals (M,2) of the centerline polyline's points."""
    h = circuit.heading_at(np.arange(len(circuit.polyline)) * circuit.spacing)
    return np.stack([-np.sin(h), np.cos(h)], axis=1)


def line_offsets(circuit: Circuit) -> list[float]:
    """Lateral offsets (m, left positive) of the red line's edges."""
    lh = circuit.line_width / 2
    return [lh, -lh]


def wall_offsets(circuit: Circuit) -> list[float]:
    """Lateral offsets (m) of the walls' inner faces (the road edges) and outer faces."""
    o = circuit.wall_offset
    return [o, -o, o + WALL_THICKNESS, -(o + WALL_THICKNESS)]


def sections(circuit: Circuit, offsets: Sequence[float], tolerance: float, max_len: float = SEGMENT_MAX
             ) -> np.ndarray:
    """Indices (K+1,) into ``circuit.polyline`` of cross-sections, in driving order; the last is
    ``len(polyline)`` (= index 0 again: the loop closes). Greedy: each section is the farthest
    point (at most ``max_len`` m on) such that on every curve ``offsets`` m left of the
    centerline the chord from the previous section stays within ``tolerance`` m of the points in
    between."""
    p = circuit.polyline
    n = _normals(circuit)
    m = len(p)
    curves = [np.vstack([p + o * n, (p + o * n)[:1]]) for o in offsets]
    window = max(2, int(max_len / circuit.spacing))
    out = [0]
    i = 0
    while i < m:
        best = i + 1
        for j in range(i + 2, min(i + window, m) + 1):
            ok = True
            for q in curves:
                a, d, mid = q[i], q[j] - q[i], q[i + 1:j]
                err = np.abs(d[0] * (mid[:, 1] - a[1]) - d[1] * (mid[:, 0] - a[0])) / math.hypot(d[0], d[1])
                if err.max() > tolerance:
                    ok = False
                    break
            if not ok:
                break
            best = j
        i = best
        out.append(i)
    return np.asarray(out)


def edge(circuit: Circuit, idx: np.ndarray, offset: float) -> np.ndarray:
    """Points (K+1,2) at ``offset`` m left of the centerline at the sections ``idx`` (closed: the
    last repeats the first)."""
    p, n = circuit.polyline, _normals(circuit)
    i = idx % len(p)
    return p[i] + offset * n[i]


def strip_triangles(left: np.ndarray, right: np.ndarray, z: float) -> np.ndarray:
    """Triangles (2K,3,3) of the strip between two edges (K+1,2), counter-clockwise seen from
    above (normals up) when ``left`` lies left of the driving direction."""
    a, b = right[:-1], right[1:]
    c, d = left[1:], left[:-1]
    tri = np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)], axis=0)
    return np.concatenate([tri, np.full(tri.shape[:2] + (1,), z)], axis=2)


def wall_boxes(circuit: Circuit, idx: np.ndarray | None = None) -> list[tuple[float, float, float, float]]:
    """The wall boxes as (x, y, yaw, length) (m, rad: centre and direction in the world;
    thickness WALL_THICKNESS, height wall_height), left wall first, then right. Each box's inner
    face is the chord between two sections' asphalt-edge points; at a bend, boxes are lengthened
    by the mitre (thickness x tan(half the turn)) so their backs close up, which moves the inner
    face's ends by under a millimetre."""
    if circuit.wall_height <= 0:
        return []
    idx = sections(circuit, wall_offsets(circuit), WALL_TOLERANCE) if idx is None else idx
    out = []
    for side in (1.0, -1.0):
        f = edge(circuit, idx, side * circuit.wall_offset)
        d = np.diff(f, axis=0)
        length = np.hypot(d[:, 0], d[:, 1])
        u = d / length[:, None]
        away = side * np.stack([-u[:, 1], u[:, 0]], axis=1)     # unit normal away from the road
        yaw = np.arctan2(u[:, 1], u[:, 0])
        turn = np.abs((np.roll(yaw, -1) - yaw + math.pi) % (2 * math.pi) - math.pi)  # at each box's end
        ext_end = np.minimum(WALL_THICKNESS * np.tan(turn / 2), WALL_THICKNESS)
        ext_start = np.roll(ext_end, 1)
        centre = (f[:-1] + f[1:]) / 2 + away * (WALL_THICKNESS / 2) + u * ((ext_end - ext_start) / 2)[:, None]
        for k in range(len(d)):
            out.append((float(centre[k, 0]), float(centre[k, 1]), float(yaw[k]),
                        float(length[k] + ext_start[k] + ext_end[k])))
    return out


# ---------------------------------------------------------------------------------- STL
def stl_bytes(triangles: np.ndarray, name: str) -> bytes:
    """Binary STL of triangles (N,3,3) (the header never starts with "solid": Gazebo would read
    it as ASCII)."""
    tri = np.asarray(triangles, np.float64)
    nrm = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    nrm /= np.maximum(np.linalg.norm(nrm, axis=1, keepdims=True), 1e-12)
    rec = np.zeros(len(tri), dtype=[("n", "<f4", 3), ("v", "<f4", (3, 3)), ("attr", "<u2")])
    rec["n"], rec["v"] = nrm, tri
    header = f"pilotnet_brains {name}"[:80].ljust(80).encode("ascii")
    return header + struct.pack("<I", len(tri)) + rec.tobytes()


def read_stl(path: str) -> np.ndarray:
    """Triangles (N,3,3) float32 of a binary STL file."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack_from("<I", data, 80)
    rec = np.frombuffer(data, dtype=[("n", "<f4", 3), ("v", "<f4", (3, 3)), ("attr", "<u2")], count=n, offset=84)
    return rec["v"].copy()


def road_meshes(circuit: Circuit) -> dict[str, np.ndarray]:
    """{"road": triangles of the asphalt, "line": triangles of the red line} (N,3,3) m. The road's
    edges are the walls' inner faces (the same sections), the line follows its curve closer."""
    o, lh = circuit.wall_offset, circuit.line_width / 2
    road = sections(circuit, wall_offsets(circuit), WALL_TOLERANCE)
    line = sections(circuit, line_offsets(circuit), LINE_TOLERANCE)
    return {"road": strip_triangles(edge(circuit, road, o), edge(circuit, road, -o), ROAD_Z),
            "line": strip_triangles(edge(circuit, line, lh), edge(circuit, line, -lh), LINE_Z)}


# ---------------------------------------------------------------------------------- SDF
def world_name(circuit: Circuit) -> str:
    """The world's (and its file's) name: the circuit's, + "_reverse" when driven the other way
    (the launch files' ``circuit:=montreal_reverse`` then finds ``worlds/montreal_reverse.world``)."""
    from pilotnet_brains.circuits import REVERSE_SUFFIX

    return circuit.name + (REVERSE_SUFFIX if circuit.reversed else "")


def road_model_name(circuit: Circuit) -> str:
    return f"pilotnet_{world_name(circuit)}_road"


def circuit_model_name(circuit: Circuit) -> str:
    return f"pilotnet_{world_name(circuit)}_circuit"


def _material(rgb: Sequence[int]) -> str:
    c = " ".join(_fmt(v / 255.0, 3) for v in rgb) + " 1"
    return f"<material><ambient>{c}</ambient><diffuse>{c}</diffuse></material>"   # specular: SDF's default, none


def _road_visuals(circuit: Circuit, indent: str) -> str:
    uri = f"model://{road_model_name(circuit)}/meshes"
    out = []
    for part in ("road", "line"):
        out.append(f"""{indent}<visual name="{part}">
{indent}  <cast_shadows>false</cast_shadows>
{indent}  <geometry><mesh><uri>{uri}/{part}.stl</uri></mesh></geometry>
{indent}  {_material(circuit.style[part])}
{indent}</visual>""")
    return "\n".join(out)


def road_model_sdf(circuit: Circuit) -> str:
    """model.sdf of ``pilotnet_<c>_road``: the asphalt and the red line (visual only)."""
    return f"""<?xml version="1.0"?>
<sdf version="1.6">
  <model name="{road_model_name(circuit)}">
    <static>true</static>
    <link name="road">
{_road_visuals(circuit, "      ")}
    </link>
  </model>
</sdf>
"""


def circuit_model_sdf(circuit: Circuit) -> str:
    """The static circuit: grass plane, road and line meshes, wall boxes."""
    x0, y0, x1, y1 = circuit.bounds(margin=GROUND_MARGIN)
    cx, cy, sx, sy = (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0
    plane = f"<geometry><plane><normal>0 0 1</normal><size>{sx:.1f} {sy:.1f}</size></plane></geometry>"
    parts = [f"""    <model name="{circuit_model_name(circuit)}">
      <static>true</static>
      <link name="ground">
        <collision name="ground">
          <pose>{cx:.3f} {cy:.3f} 0 0 0 0</pose>
          {plane}
        </collision>
        <visual name="grass">
          <pose>{cx:.3f} {cy:.3f} 0 0 0 0</pose>
          <cast_shadows>false</cast_shadows>
          {plane}
          {_material(circuit.style["ground"])}
        </visual>
{_road_visuals(circuit, "        ")}
      </link>"""]
    boxes = wall_boxes(circuit)
    if boxes:
        h, t = circuit.wall_height, WALL_THICKNESS
        mat = _material(circuit.style["wall"])
        n_left = len(boxes) // 2
        for side, chunk in (("left", boxes[:n_left]), ("right", boxes[n_left:])):
            lines = [f'      <link name="wall_{side}">']
            for k, (x, y, yaw, length) in enumerate(chunk):
                pose = f"<pose>{x:.3f} {y:.3f} {_fmt(h / 2)} 0 0 {yaw:.4f}</pose>"
                geom = f"<geometry><box><size>{length:.3f} {_fmt(t)} {_fmt(h)}</size></box></geometry>"
                lines.append(f'        <collision name="c{k}">{pose}{geom}</collision>')
                lines.append(f'        <visual name="v{k}">{pose}{geom}{mat}</visual>')
            lines.append("      </link>")
            parts.append("\n".join(lines))
    parts.append("    </model>\n")
    return "\n".join(parts)


def car_model_sdf(circuit: Circuit, camera: CameraConfig | None = None) -> str:
    """f1_renault at the circuit's start pose: body, planar-move kinematics, the camera."""
    camera = camera or CameraConfig.for_circuit(circuit)
    x, y, yaw = circuit.start_pose
    ns = topics.CMD_VEL.rsplit("/", 1)[0].lstrip("/")           # "F1ROS"
    cam_ns = topics.CAMERA_IMAGE.rsplit("/", 1)[0].lstrip("/")  # "F1ROS/cameraL"
    image_topic, info_topic = topics.CAMERA_IMAGE.rsplit("/", 1)[1], topics.CAMERA_INFO.rsplit("/", 1)[1]
    cmd_topic, odom_topic = topics.CMD_VEL.rsplit("/", 1)[1], topics.ODOM.rsplit("/", 1)[1]
    bl, bw, bh = BODY
    body_x = (FOOTPRINT_FRONT - FOOTPRINT_BACK) / 2
    m = BODY_MASS
    ch = bh - BODY_CLEARANCE
    ixx, iyy, izz = m / 12 * (bw ** 2 + bh ** 2), m / 12 * (bl ** 2 + bh ** 2), m / 12 * (bl ** 2 + bw ** 2)
    return f"""    <model name="{CAR_MODEL}">
      <pose>{x} {y} 0 0 0 {yaw}</pose>
      <static>false</static>
      <link name="{topics.BASE_FRAME}">
        <gravity>false</gravity>  <!-- planar move holds the height -->
        <inertial>
          <pose>{body_x:.4f} 0 {bh / 2:.4f} 0 0 0</pose>
          <mass>{m}</mass>
          <inertia><ixx>{ixx:.5f}</ixx><iyy>{iyy:.5f}</iyy><izz>{izz:.5f}</izz><ixy>0</ixy><ixz>0</ixz><iyz>0</iyz></inertia>
        </inertial>
        <collision name="body_collision">
          <pose>{body_x:.4f} 0 {BODY_CLEARANCE + ch / 2:.4f} 0 0 0</pose>
          <geometry><box><size>{_fmt(bl)} {_fmt(bw)} {_fmt(ch)}</size></box></geometry>
        </collision>
        <visual name="body_visual">
          <pose>{body_x:.4f} 0 {bh / 2:.4f} 0 0 0</pose>
          <geometry><box><size>{_fmt(bl)} {_fmt(bw)} {_fmt(bh)}</size></box></geometry>
          {_material((30, 60, 200))}
        </visual>
        <sensor name="{CAMERA_SENSOR}" type="camera">
          <pose>{_fmt(camera.mount_forward)} {_fmt(camera.mount_left)} {_fmt(camera.mount_height)} 0 0 0</pose>
          <always_on>true</always_on>
          <update_rate>20</update_rate>
          <visualize>false</visualize>
          <camera name="{CAMERA_SENSOR}">
            <horizontal_fov>{camera.hfov}</horizontal_fov>
            <image><width>{camera.width}</width><height>{camera.height}</height><format>R8G8B8</format></image>
            <clip><near>{camera.near_clip}</near><far>{camera.far_clip}</far></clip>
          </camera>
          <plugin name="f1_camera" filename="libgazebo_ros_camera.so">
            <alwaysOn>true</alwaysOn>
            <updateRate>0.0</updateRate>
            <cameraName>{cam_ns}</cameraName>
            <imageTopicName>{image_topic}</imageTopicName>
            <cameraInfoTopicName>{info_topic}</cameraInfoTopicName>
            <frameName>{CAMERA_FRAME}</frameName>
            <hackBaseline>0.0</hackBaseline>
            <distortionK1>0.0</distortionK1>
            <distortionK2>0.0</distortionK2>
            <distortionK3>0.0</distortionK3>
            <distortionT1>0.0</distortionT1>
            <distortionT2>0.0</distortionT2>
          </plugin>
        </sensor>
      </link>
      <plugin name="f1_planar_move" filename="libgazebo_ros_planar_move.so">
        <robotNamespace>/{ns}</robotNamespace>
        <commandTopic>{cmd_topic}</commandTopic>
        <odometryTopic>{odom_topic}</odometryTopic>
        <odometryFrame>{topics.ODOM_FRAME}</odometryFrame>
        <odometryRate>20.0</odometryRate>
        <robotBaseFrame>{topics.BASE_FRAME}</robotBaseFrame>
        <cmdTimeout>-1</cmdTimeout>  <!-- hold the last command forever, like f1_sim -->
      </plugin>
    </model>
"""


def world_sdf(circuit: Circuit) -> str:
    """The whole world file of a circuit."""
    s = circuit.style
    sx, sy, sz = SUN_DIRECTION
    a, d = AMBIENT, DIFFUSE
    return f"""<?xml version="1.0"?>
<!-- Circuit {escape(world_name(circuit))}: generated by scripts/make_worlds from {escape(os.path.basename(circuit.source))}
     (lap {circuit.length:.1f} m, road {circuit.road_width} m, red line {circuit.line_width} m, walls {circuit.wall_height} m).
     Do not edit: regenerate. The road and line meshes are model://{road_model_name(circuit)}: needs worlds/models
     on GAZEBO_MODEL_PATH (launch/include/sim.launch sets it). -->
<sdf version="1.6">
  <world name="{escape(world_name(circuit))}">
    <physics name="default_physics" default="true" type="ode">
      <max_step_size>0.001</max_step_size>
      <real_time_factor>1</real_time_factor>
      <real_time_update_rate>1000</real_time_update_rate>
    </physics>
    <gravity>0 0 -9.8</gravity>
    <scene>
      <ambient>{a} {a} {a} 1</ambient>
      <background>{_rgba(s["sky"])}</background>
      <shadows>false</shadows>
      <grid>false</grid>
    </scene>
    <light name="sun" type="directional">
      <cast_shadows>false</cast_shadows>
      <pose>0 0 100 0 0 0</pose>
      <diffuse>{d} {d} {d} 1</diffuse>
      <specular>0.1 0.1 0.1 1</specular>
      <direction>{sx} {sy} {sz}</direction>
    </light>
{circuit_model_sdf(circuit)}{car_model_sdf(circuit)}  </world>
</sdf>
"""


def write_world(circuit: Circuit, out_dir: str) -> dict[str, object]:
    """Write ``<out_dir>/<c>.world`` and ``<out_dir>/models/pilotnet_<c>_road/``; returns a summary."""
    model = road_model_name(circuit)
    mdir = os.path.join(out_dir, "models", model)
    meshes = road_meshes(circuit)
    for part, tri in meshes.items():
        atomic_write_bytes(os.path.join(mdir, "meshes", f"{part}.stl"), stl_bytes(tri, f"{world_name(circuit)} {part}"))
    atomic_write_text(os.path.join(mdir, "model.config"), f"""<?xml version="1.0"?>
<model>
  <name>{model}</name>
  <version>1.0</version>
  <sdf version="1.6">model.sdf</sdf>
  <description>Asphalt and red line of circuit {escape(world_name(circuit))} (generated by pilotnet_brains scripts/make_worlds).</description>
</model>
""")
    atomic_write_text(os.path.join(mdir, "model.sdf"), road_model_sdf(circuit))
    world = os.path.join(out_dir, f"{world_name(circuit)}.world")
    atomic_write_text(world, world_sdf(circuit))
    return {"world": world, "triangles": sum(len(t) for t in meshes.values()), "wall_boxes": len(wall_boxes(circuit)),
            "model_dir": mdir}


def write_docs_pictures(circuit: Circuit, out_dir: str) -> list:
    """<circuit>_top.png (top view, start pose arrow) and <circuit>_camera.png (the camera frame 12 m
    before the tightest corner, car on the red line, the brain's crop rows 240:480 outlined)."""
    import cv2

    from pilotnet_brains.sim import Renderer, render_top_view

    os.makedirs(out_dir, exist_ok=True)
    x0, y0, x1, y1 = circuit.bounds(margin=circuit.road_width)
    top = render_top_view(circuit, px_per_m=float(min(3.0, 1600.0 / max(x1 - x0, y1 - y0))))
    s = np.arange(0.0, circuit.length, 1.0)
    s_corner = float(s[np.argmax(np.abs(circuit.curvature_at(s)))]) - 12.0
    (x, y), yaw = circuit.point_at(s_corner)[0], float(circuit.heading_at(s_corner)[0])
    cam = Renderer(circuit).render((x, y, yaw))
    cv2.rectangle(cam, (0, 240), (639, 479), (255, 255, 0), 1)
    paths = []
    for suffix, img in (("top", top), ("camera", cam)):
        ok, buf = cv2.imencode(".png", img[:, :, ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 9])
        path = os.path.join(out_dir, f"{circuit.name}_{suffix}.png")
        atomic_write_bytes(path, buf.tobytes())
        paths.append(path)
    return paths
