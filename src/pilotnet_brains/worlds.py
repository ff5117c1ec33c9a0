"""Gazebo 11 worlds generated from the circuit files (the same geometry and colours as f1_sim).

For a circuit ``<c>`` this writes:

- ``worlds/<c>.world``: SDF 1.6 world: physics at 1 ms steps, sun, a ground-coloured base plane,
  the circuit as textured plane tiles (only the tiles the road touches), and the ``f1`` car at the
  start pose: ``libgazebo_ros_planar_move`` (``/F1ROS/cmd_vel`` in, ``/F1ROS/odom`` 20 Hz out,
  frames ``odom`` -> ``xf1``) and a 640x480 camera (hfov 1.57 rad, clip 0.1-15 m, 20 Hz, no tilt,
  mounted like f1_sim's default) with ``libgazebo_ros_camera`` (``/F1ROS/cameraL/image_raw`` and
  ``camera_info``).
- ``worlds/models/pilotnet_<c>_ground/``: ``model.config`` + ``model.sdf`` and the OGRE
  material script and PNG textures of the tiles, found through ``model://`` (sim.launch puts
  ``worlds/models`` on GAZEBO_MODEL_PATH).

Texture pixels are painted with the simulator's distance field and colour table, so the red line,
road and borders are where f1_sim draws them.
"""
from __future__ import annotations

import math
import os
from typing import Sequence
from xml.sax.saxutils import escape

import cv2
import numpy as np

from pilotnet_brains import topics
from pilotnet_brains.circuits import Circuit
from pilotnet_brains.sim.render import LUT_MAX_MM, NG, CameraConfig, Style, colour_lut, distance_field
from pilotnet_brains.util import atomic_write_bytes, atomic_write_text

#: Tile edge (m) and texture size (px): 64 m / 2048 px = 3.1 cm per pixel (the 0.3 m line is 10 px).
TILE_M = 64.0
TILE_PX = 2048
#: Car body (m): behind the camera, so the camera never sees it (f1_sim draws no car either).
BODY = (2.4, 1.2, 0.4)


def _rgb(c: Sequence[int]) -> str:
    return " ".join(f"{v / 255.0:.3f}" for v in c) + " 1"


def tiles_for(circuit: Circuit, tile_m: float = TILE_M) -> list[tuple[int, int]]:
    """(i, j) indices of the tiles (tile (i, j) spans x in [i, i+1)*tile_m, y in [j, j+1)*tile_m)
    that the road (plus a 1 m margin) touches."""
    reach = circuit.road_width / 2 + 1.0
    out = set()
    p = circuit.polyline
    for dx in (-reach, 0.0, reach):
        for dy in (-reach, 0.0, reach):
            ij = np.floor((p + (dx, dy)) / tile_m).astype(int)
            out.update(map(tuple, ij))
    return sorted(out)


def tile_image(circuit: Circuit, i: int, j: int, tile_m: float = TILE_M, tile_px: int = TILE_PX) -> np.ndarray:
    """RGB texture (tile_px x tile_px) of tile (i, j), north up (row 0 = the tile's max y)."""
    field, (x0, y0), texel = distance_field(circuit)
    px = tile_m / tile_px
    xs = i * tile_m + (np.arange(tile_px) + 0.5) * px
    ys = (j + 1) * tile_m - (np.arange(tile_px) + 0.5) * px
    mx, my = np.meshgrid(((xs - x0) / texel).astype(np.float32), ((ys - y0) / texel).astype(np.float32))
    d = cv2.remap(field, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    lut = colour_lut(circuit, Style.of(circuit))
    level = int(np.clip(round(math.log2(max(px * 1000.0, 1.0))), 0, NG - 1))
    return np.ascontiguousarray(lut[np.minimum(d, LUT_MAX_MM), level])


def _material_name(circuit: Circuit, i: int, j: int) -> str:
    return f"pilotnet/{circuit.name}/tile_{i}_{j}"


def _tile_file(circuit: Circuit, i: int, j: int) -> str:
    return f"{circuit.name}_tile_{i}_{j}.png"


def material_script(circuit: Circuit, tiles: Sequence[tuple[int, int]]) -> str:
    blocks = []
    for i, j in tiles:
        blocks.append(f"""material {_material_name(circuit, i, j)}
{{
  technique
  {{
    pass
    {{
      ambient 1 1 1 1
      diffuse 1 1 1 1
      specular 0 0 0 1
      texture_unit
      {{
        texture {_tile_file(circuit, i, j)}
        tex_address_mode clamp
        filtering anisotropic
        max_anisotropy 16
      }}
    }}
  }}
}}
""")
    style = Style.of(circuit)
    blocks.append(f"""material pilotnet/{circuit.name}/ground
{{
  technique
  {{
    pass
    {{
      ambient {_rgb(style.ground)}
      diffuse {_rgb(style.ground)}
      specular 0 0 0 1
    }}
  }}
}}
""")
    return "\n".join(blocks)


def ground_model_name(circuit: Circuit) -> str:
    return f"pilotnet_{circuit.name}_ground"


def ground_model_sdf(circuit: Circuit, tiles: Sequence[tuple[int, int]], tile_m: float = TILE_M) -> str:
    """The static ground model: a base plane in the ground colour and one textured plane per tile."""
    model = ground_model_name(circuit)
    uri = f"model://{model}/materials"
    x0, y0, x1, y1 = circuit.bounds(margin=60.0)
    cx, cy, sx, sy = (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0
    visuals = [f"""        <visual name="base">
          <pose>{cx:.3f} {cy:.3f} 0 0 0 0</pose>
          <cast_shadows>false</cast_shadows>
          <geometry><plane><normal>0 0 1</normal><size>{sx:.1f} {sy:.1f}</size></plane></geometry>
          <material><script><uri>{uri}/scripts</uri><name>pilotnet/{escape(circuit.name)}/ground</name></script></material>
        </visual>"""]
    for i, j in tiles:
        visuals.append(f"""        <visual name="tile_{i}_{j}">
          <pose>{(i + 0.5) * tile_m:.3f} {(j + 0.5) * tile_m:.3f} 0.002 0 0 0</pose>
          <cast_shadows>false</cast_shadows>
          <geometry><plane><normal>0 0 1</normal><size>{tile_m:g} {tile_m:g}</size></plane></geometry>
          <material><script><uri>{uri}/scripts</uri><uri>{uri}/textures</uri><name>{_material_name(circuit, i, j)}</name></script></material>
        </visual>""")
    return f"""    <model name="{model}">
      <static>true</static>
      <link name="ground">
        <collision name="collision">
          <geometry><plane><normal>0 0 1</normal><size>{sx:.1f} {sy:.1f}</size></plane></geometry>
          <pose>{cx:.3f} {cy:.3f} 0 0 0 0</pose>
        </collision>
{chr(10).join(visuals)}
      </link>
    </model>
"""


def f1_model_sdf(circuit: Circuit, camera: CameraConfig | None = None) -> str:
    """The F1 car: planar-move kinematics and the camera, at the circuit's start pose."""
    camera = camera or CameraConfig()
    x, y, yaw = circuit.start_pose
    ns = topics.CMD_VEL.rsplit("/", 1)[0].lstrip("/")           # "F1ROS"
    cam_ns = topics.CAMERA_IMAGE.rsplit("/", 1)[0].lstrip("/")  # "F1ROS/cameraL"
    image_topic, info_topic = topics.CAMERA_IMAGE.rsplit("/", 1)[1], topics.CAMERA_INFO.rsplit("/", 1)[1]
    cmd_topic, odom_topic = topics.CMD_VEL.rsplit("/", 1)[1], topics.ODOM.rsplit("/", 1)[1]
    bl, bw, bh = BODY
    body_x = camera.mount_forward - 0.1 - bl / 2
    return f"""    <model name="f1">
      <pose>{x} {y} 0 0 0 {yaw}</pose>
      <static>false</static>
      <link name="{topics.BASE_FRAME}">
        <gravity>false</gravity>
        <inertial>
          <mass>700</mass>
          <inertia><ixx>100</ixx><iyy>300</iyy><izz>350</izz><ixy>0</ixy><ixz>0</ixz><iyz>0</iyz></inertia>
        </inertial>
        <visual name="body">
          <pose>{body_x:.3f} 0 {bh / 2 + 0.05:.3f} 0 0 0</pose>
          <geometry><box><size>{bl} {bw} {bh}</size></box></geometry>
          <material><script><uri>file://media/materials/scripts/gazebo.material</uri><name>Gazebo/Blue</name></script></material>
        </visual>
        <sensor name="cameraL" type="camera">
          <pose>{camera.mount_forward} 0 {camera.mount_height} 0 0 0</pose>
          <always_on>true</always_on>
          <update_rate>20</update_rate>
          <visualize>false</visualize>
          <camera name="cameraL">
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
            <frameName>cameraL</frameName>
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


def world_sdf(circuit: Circuit, tiles: Sequence[tuple[int, int]]) -> str:
    style = Style.of(circuit)
    return f"""<?xml version="1.0"?>
<!-- Circuit {escape(circuit.name)}: generated by scripts/make_worlds from {escape(os.path.basename(circuit.source))}
     (lap {circuit.length:.1f} m, road {circuit.road_width} m, red line {circuit.line_width} m). Do not edit:
     regenerate. Needs worlds/models on GAZEBO_MODEL_PATH (launch/include/sim.launch sets it). -->
<sdf version="1.6">
  <world name="{escape(circuit.name)}">
    <physics name="default_physics" default="true" type="ode">
      <max_step_size>0.001</max_step_size>
      <real_time_factor>1</real_time_factor>
      <real_time_update_rate>1000</real_time_update_rate>
    </physics>
    <gravity>0 0 -9.8</gravity>
    <scene>
      <ambient>0.8 0.8 0.8 1</ambient>
      <background>{_rgb(style.sky)}</background>
      <shadows>false</shadows>
      <grid>false</grid>
    </scene>
    <light name="sun" type="directional">
      <cast_shadows>false</cast_shadows>
      <pose>0 0 100 0 0 0</pose>
      <diffuse>0.8 0.8 0.8 1</diffuse>
      <specular>0.1 0.1 0.1 1</specular>
      <direction>-0.3 0.2 -0.9</direction>
    </light>
{ground_model_sdf(circuit, tiles)}{f1_model_sdf(circuit)}  </world>
</sdf>
"""


def write_world(circuit: Circuit, out_dir: str, progress: bool = True) -> dict[str, object]:
    """Write worlds/<c>.world and its ground model into ``out_dir``; returns a summary."""
    tiles = tiles_for(circuit)
    model = ground_model_name(circuit)
    mdir = os.path.join(out_dir, "models", model)
    os.makedirs(os.path.join(mdir, "materials", "scripts"), exist_ok=True)
    os.makedirs(os.path.join(mdir, "materials", "textures"), exist_ok=True)
    it = tiles
    if progress:
        from tqdm import tqdm

        it = tqdm(tiles, desc=f"{circuit.name} textures", unit="tile")
    for i, j in it:
        ok, buf = cv2.imencode(".png", tile_image(circuit, i, j)[:, :, ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 9])
        if not ok:
            raise RuntimeError(f"PNG encoding failed for tile {i},{j} of {circuit.name}")
        atomic_write_bytes(os.path.join(mdir, "materials", "textures", _tile_file(circuit, i, j)), buf.tobytes())
    atomic_write_text(os.path.join(mdir, "materials", "scripts", f"{model}.material"), material_script(circuit, tiles))
    atomic_write_text(os.path.join(mdir, "model.config"), f"""<?xml version="1.0"?>
<model>
  <name>{model}</name>
  <version>1.0</version>
  <sdf version="1.6">model.sdf</sdf>
  <description>Ground of circuit {escape(circuit.name)} (generated by pilotnet_brains scripts/make_worlds).</description>
</model>
""")
    atomic_write_text(os.path.join(mdir, "model.sdf"),
                      f'<?xml version="1.0"?>\n<sdf version="1.6">\n{ground_model_sdf(circuit, tiles)}</sdf>\n')
    world = os.path.join(out_dir, f"{circuit.name}.world")
    atomic_write_text(world, world_sdf(circuit, tiles))
    return {"world": world, "tiles": len(tiles), "model_dir": mdir}


def main(argv: Sequence[str] | None = None) -> None:
    """Command line of scripts/make_worlds."""
    import argparse

    from pilotnet_brains import package_root
    from pilotnet_brains.circuits import EVALUATION_CIRCUITS, circuit_path, load_circuit

    ap = argparse.ArgumentParser(
        prog="make_worlds",
        description="Generate Gazebo 11 worlds (worlds/<circuit>.world + worlds/models/pilotnet_<circuit>_ground) "
                    "from circuit files: the circuit painted on textured ground tiles, and the F1 car at the start "
                    "pose with libgazebo_ros_planar_move (/F1ROS/cmd_vel, /F1ROS/odom) and libgazebo_ros_camera "
                    "(/F1ROS/cameraL/image_raw). Check a result with: ign sdf -k worlds/<circuit>.world")
    ap.add_argument("circuits", nargs="*", default=list(EVALUATION_CIRCUITS),
                    help="circuit names or .yaml paths (default: the evaluation circuits)")
    ap.add_argument("--out", default=os.path.join(package_root(), "worlds"), help="output folder (default: %(default)s)")
    ap.add_argument("--docs", default="", metavar="DIR",
                    help="instead of worlds, write the README pictures into DIR: <circuit>_top.png (top view with "
                         "the start pose) and <circuit>_camera.png (what the brain's camera sees, f1_sim defaults)")
    args = ap.parse_args(argv)
    for name in args.circuits:
        circuit = load_circuit(circuit_path(name))
        if args.docs:
            for path in write_docs_pictures(circuit, args.docs):
                print(path)
            continue
        info = write_world(circuit, args.out)
        print(f"{info['world']}: {info['tiles']} texture tiles in {info['model_dir']}")


def write_docs_pictures(circuit: Circuit, out_dir: str) -> list:
    """<circuit>_top.png (top view, start pose arrow) and <circuit>_camera.png (the camera frame 12 m
    before the tightest corner, car on the red line, the brain's crop rows 240:480 outlined)."""
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
