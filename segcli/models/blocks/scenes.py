"""Synthetic toy-block scenes (CLEVR-like), drawn with OpenCV and NumPy.

A scene is a floor with 1-10 cubes, spheres and cylinders standing on it, seen
from the front and above. Objects lower in the image are nearer and are drawn
later (painter's order), so they hide parts of the objects behind them. Every
object's mask is its *visible* part; an object whose visible part covers less
than 1 % of the image is left out of the scene altogether (not drawn), so every
drawn object is annotated. Shadows darken the floor only and are never part of
a mask.

Everything is deterministic from the seed: ``render_scene(seed)`` returns the
same pixels and masks on every call.
"""

from __future__ import annotations

import colorsys
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from segcli.models.blocks.spec import CLASS_NAMES as CATEGORIES

CUBE, SPHERE, CYLINDER = 1, 2, 3

MIN_SIDE, MAX_SIDE = 192, 640
MIN_ASPECT, MAX_ASPECT = 3 / 4, 4 / 3
MIN_OBJECT_FRACTION = 0.01  # of the image area; smaller visible parts are dropped
SIZE_RANGE = (0.06, 0.40)  # object width as a fraction of the shorter image side
FLOORS: tuple[str, ...] = ("flat", "gradient", "noise", "tiles", "texture")

_SHIFT = 4  # sub-pixel bits for cv2 drawing
_SCALE = 1 << _SHIFT

RGB = tuple[float, float, float]


@dataclass(frozen=True)
class Lighting:
    """Camera and light of one scene (angles in radians)."""

    camera_elevation: float = math.radians(45)
    light_azimuth: float = math.radians(-60)
    light_elevation: float = math.radians(50)
    ambient: float = 0.3
    specular: float = 0.6
    shininess: float = 30.0

    def light_world(self) -> np.ndarray:
        """Unit vector towards the light; x right, y away from the camera, z up."""
        ce = math.cos(self.light_elevation)
        return np.array(
            [
                ce * math.cos(self.light_azimuth),
                ce * math.sin(self.light_azimuth),
                math.sin(self.light_elevation),
            ]
        )

    def to_camera(self, v: np.ndarray) -> np.ndarray:
        """World vector -> camera coordinates (right, up on screen, towards the viewer)."""
        s, c = math.sin(self.camera_elevation), math.cos(self.camera_elevation)
        return np.array([v[0], v[1] * s + v[2] * c, -v[1] * c + v[2] * s])


@dataclass(frozen=True)
class CubeStyle:
    """How a cube is projected and shaded (the default is the rotated orthographic view).

    ``projection``: ``"ortho"`` (a cube rotated about the vertical axis, seen by the
    scene's orthographic camera), ``"oblique"`` (front face parallel to the image, the
    receding edges drawn at ``oblique_angle`` and scaled by ``oblique_depth``: cabinet
    ~0.5, cavalier ~1) or ``"perspective"`` (the rotated cube seen by a pinhole camera at
    ``distance`` cube edges). ``shear`` slants the whole drawing horizontally;
    ``squash`` scales it vertically. ``levels``, when given, are the brightness of the
    top face and the two side faces (instead of Lambert shading by the scene light).
    ``outline``: thickness factor of dark outlines (0: none).
    """

    projection: str = "ortho"
    oblique_angle: float = math.radians(45)  # of the receding axis, 0 = right, pi = left
    oblique_depth: float = 0.5
    distance: float = 6.0
    shear: float = 0.0
    squash: float = 1.0
    levels: tuple[float, float, float] | None = None
    outline: float = 0.0
    outline_dark: float = 0.15
    antialias: bool = False


ORTHO_CUBE = CubeStyle()


@dataclass(frozen=True)
class ObjectSpec:
    """One object to draw: where it stands, how big it is, what it looks like."""

    category_id: int
    color: RGB  # base colour, RGB in [0, 1]
    x: float  # ground contact point, pixels
    y: float
    size: float  # on-screen width in pixels
    angle: float = 0.6  # cube rotation about the vertical axis (radians)
    height_ratio: float = 1.0  # cylinder height / diameter
    edge: float = 0.0  # strength of drawn edges (0: none)
    cube: CubeStyle = ORTHO_CUBE  # cube projection and shading
    wrap: float = 0.0  # sphere / cylinder diffuse wrap (0: Lambert, 1: half-Lambert, softer)
    outline: float = 0.0  # sphere / cylinder dark outline thickness factor (0: none)


@dataclass
class SceneObject:
    """An annotated object: its class and visible mask."""

    category_id: int
    name: str
    mask: np.ndarray  # (H, W) bool, the visible part
    bbox: tuple[int, int, int, int]  # COCO [x, y, w, h] of the visible part
    color: RGB

    @property
    def area(self) -> int:
        return int(self.mask.sum())


@dataclass
class Scene:
    """An RGB image and its objects (in drawing order: far to near)."""

    image: np.ndarray  # (H, W, 3) uint8 RGB
    objects: list[SceneObject]
    seed: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


# --------------------------------------------------------------------------- random choices
def random_size(rng: np.random.Generator) -> tuple[int, int]:
    """A (width, height) with sides in [192, 640] and aspect within 3:4 .. 4:3."""
    while True:
        w = int(rng.integers(MIN_SIDE, MAX_SIDE + 1))
        aspect = math.exp(rng.uniform(math.log(MIN_ASPECT), math.log(MAX_ASPECT)))
        h = round(w / aspect)
        if MIN_SIDE <= h <= MAX_SIDE and MIN_ASPECT <= w / h <= MAX_ASPECT:
            return w, h


def random_color(rng: np.random.Generator, *, muted: bool | None = None) -> RGB:
    """Any hue, saturated or muted, from dark to bright (greys included)."""
    if muted is None:
        muted = bool(rng.random() < 0.35)
    hue = float(rng.random())
    sat = float(rng.uniform(0.0, 0.5) if muted else rng.uniform(0.5, 1.0))
    val = float(rng.uniform(0.3, 1.0))
    r, g, b = colorsys.hsv_to_rgb(hue, sat, val)
    return (r, g, b)


def random_lighting(rng: np.random.Generator) -> Lighting:
    return Lighting(
        camera_elevation=math.radians(rng.uniform(25, 70)),
        light_azimuth=float(rng.uniform(0, 2 * math.pi)),
        light_elevation=math.radians(rng.uniform(20, 80)),
        ambient=float(rng.uniform(0.15, 0.5)),
        specular=float(rng.uniform(0.2, 0.9)),
        shininess=float(rng.uniform(8, 80)),
    )


def random_cube_style(rng: np.random.Generator) -> CubeStyle:
    """A cube drawing recipe: orthographic, oblique (cabinet to cavalier) or perspective,
    with optional shear, squash, fixed face-brightness ratios, outlines and anti-aliasing."""
    u = rng.random()
    projection = "ortho" if u < 0.4 else ("oblique" if u < 0.8 else "perspective")
    side = 1.0 if rng.random() < 0.5 else -1.0
    oblique_angle = math.radians(rng.uniform(15, 65))
    if side < 0:
        oblique_angle = math.pi - oblique_angle
    oblique_depth = float(rng.uniform(0.3, 1.0))
    distance = float(rng.uniform(2.0, 8.0))
    shear = float(rng.uniform(-0.25, 0.25)) if rng.random() < 0.3 else 0.0
    squash = float(rng.uniform(0.8, 1.15)) if rng.random() < 0.3 else 1.0
    levels = None
    if rng.random() < 0.5:  # fixed brightness ratios, top lightest (usually)
        top = float(rng.uniform(0.8, 1.0))
        a, b = sorted(rng.uniform(0.3, 0.9, 2).tolist())
        if rng.random() < 0.85:
            a, b = min(a, top - 0.08), min(b, top - 0.04)
        if rng.random() < 0.5:
            a, b = b, a
        levels = (top, float(a), float(b))
    outline = float(rng.uniform(0.5, 1.5)) if rng.random() < 0.2 else 0.0
    return CubeStyle(
        projection=projection,
        oblique_angle=float(oblique_angle),
        oblique_depth=oblique_depth,
        distance=distance,
        shear=shear,
        squash=squash,
        levels=levels,
        outline=outline,
        outline_dark=float(rng.uniform(0.0, 0.35)),
        antialias=bool(rng.random() < 0.5),
    )


def _round_style(rng: np.random.Generator) -> dict[str, float]:
    """Shading variety for spheres and cylinders: softer (wrapped) diffuse, dark outlines."""
    wrap = float(rng.uniform(0.2, 1.0)) if rng.random() < 0.4 else 0.0
    outline = float(rng.uniform(0.5, 1.5)) if rng.random() < 0.15 else 0.0
    return {"wrap": wrap, "outline": outline}


def random_objects(
    rng: np.random.Generator,
    width: int,
    height: int,
    count: int | None = None,
    style_rng: np.random.Generator | None = None,
) -> list[ObjectSpec]:
    """1-10 objects; same-class, same-colour groups are common; they touch and overlap.

    Cube drawing recipes come from ``style_rng`` (a separate stream, so they do not shift
    the other random choices); without it every cube is the rotated orthographic view.
    """
    n = int(rng.integers(1, 11)) if count is None else count
    short = min(width, height)
    templates: list[tuple[int, RGB]] = []
    if rng.random() < 0.55:  # a scene with repeated class+colour objects
        for _ in range(int(rng.integers(1, 4))):
            templates.append((int(rng.integers(1, 4)), random_color(rng)))
    specs: list[ObjectSpec] = []
    for _ in range(n):
        if templates and rng.random() < 0.75:
            cid, color = templates[int(rng.integers(len(templates)))]
            if rng.random() < 0.3:  # same class, same hue family, slightly different shade
                color = _jitter(rng, color, 0.04)
        else:
            cid, color = int(rng.integers(1, 4)), random_color(rng)
        size = float(rng.uniform(*SIZE_RANGE)) * short
        if specs and rng.random() < 0.5:  # next to (touching / overlapping) an earlier object
            other = specs[int(rng.integers(len(specs)))]
            dist = (other.size + size) / 2 * float(rng.uniform(0.45, 1.1))
            theta = float(rng.uniform(0, 2 * math.pi))
            x = other.x + dist * math.cos(theta)
            y = other.y + dist * math.sin(theta) * 0.6
        else:
            x = float(rng.uniform(0.05, 0.95)) * width
            y = float(rng.uniform(0.2, 1.0)) * height
        specs.append(
            ObjectSpec(
                category_id=cid,
                color=color,
                x=x,
                y=y,
                size=size,
                angle=float(rng.uniform(0, math.pi / 2)),
                height_ratio=float(rng.uniform(0.5, 1.6)),
                edge=float(rng.uniform(0.05, 0.3)) if rng.random() < 0.25 else 0.0,
                cube=random_cube_style(style_rng) if style_rng is not None and cid == CUBE else ORTHO_CUBE,
                **(_round_style(style_rng) if style_rng is not None and cid != CUBE else {}),
            )
        )
    return specs


def _jitter(rng: np.random.Generator, color: RGB, amount: float) -> RGB:
    c = np.clip(np.asarray(color) + rng.uniform(-amount, amount, 3), 0, 1)
    return (float(c[0]), float(c[1]), float(c[2]))


# --------------------------------------------------------------------------- floors
def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    small = rng.random((max(2, cells * h // max(h, w) + 1), max(2, cells * w // max(h, w) + 1)))
    return cv2.resize(small.astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)


def render_floor(rng: np.random.Generator, width: int, height: int, kind: str | None = None) -> np.ndarray:
    """A floor image, float32 RGB in [0, 1]."""
    kind = kind or FLOORS[int(rng.integers(len(FLOORS)))]
    base = np.array(random_color(rng, muted=bool(rng.random() < 0.7)), np.float32)
    other = np.array(random_color(rng, muted=bool(rng.random() < 0.7)), np.float32)
    if rng.random() < 0.5:  # usually the second colour is a close shade
        other = np.clip(base * rng.uniform(0.6, 1.4) + rng.uniform(-0.1, 0.1, 3), 0, 1)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    if kind == "flat":
        floor = np.broadcast_to(base, (height, width, 3)).copy()
    elif kind == "gradient":
        a = rng.uniform(0, 2 * math.pi)
        t = xx * math.cos(a) + yy * math.sin(a)
        t = (t - t.min()) / max(float(np.ptp(t)), 1.0)
        floor = base + (other - base) * t[..., None]
    elif kind == "noise":
        t = np.zeros((height, width), np.float32)
        amp = 1.0
        for cells in (4, 12, 40):
            t += amp * (_smooth_noise(rng, height, width, cells) - 0.5)
            amp *= float(rng.uniform(0.3, 0.7))
        t = t / max(float(np.abs(t).max()), 1e-6) * 0.5 + 0.5
        floor = base + (other - base) * t[..., None]
        floor += rng.normal(0, rng.uniform(0, 0.04), (height, width, 1)).astype(np.float32)
    elif kind == "tiles":
        tile = rng.uniform(0.04, 0.25) * min(width, height)
        a = rng.uniform(-0.5, 0.5) if rng.random() < 0.5 else 0.0
        u = (xx * math.cos(a) + yy * math.sin(a)) / tile
        squash = rng.uniform(0.4, 1.0)
        v = (-xx * math.sin(a) + yy * math.cos(a)) / (tile * squash)
        checker = ((np.floor(u) + np.floor(v)) % 2).astype(np.float32)
        if rng.random() < 0.5:
            checker *= rng.uniform(0.0, 0.5)
        floor = base + (other - base) * checker[..., None]
        if rng.random() < 0.6:  # grout lines
            gw = rng.uniform(0.02, 0.08)
            grout = ((u % 1) < gw) | ((v % 1) < gw)
            floor[grout] = floor[grout] * rng.uniform(0.5, 0.9)
    else:  # texture: wood / fabric-like stripes with noise distortion
        freq = rng.uniform(0.02, 0.15)
        a = rng.uniform(0, math.pi)
        warp = _smooth_noise(rng, height, width, 6) * rng.uniform(2, 12)
        t = np.sin((xx * math.cos(a) + yy * math.sin(a)) * freq + warp) * 0.5 + 0.5
        t = t ** rng.uniform(0.5, 3.0)
        floor = base + (other - base) * t[..., None]
        floor += rng.normal(0, rng.uniform(0, 0.05), (height, width, 1)).astype(np.float32)
    if rng.random() < 0.5:  # light falloff towards the back or a corner
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        d = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2) / max(width, height)
        floor = floor * (1.0 - rng.uniform(0.1, 0.5) * d)[..., None]
    return np.clip(floor, 0, 1).astype(np.float32)


# --------------------------------------------------------------------------- objects
def _pts(points: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(points) * _SCALE).astype(np.int32).reshape(-1, 1, 2)


def _shade(light: Lighting, normal_world: Sequence[float]) -> float:
    n = np.asarray(normal_world, float)
    d = max(0.0, float(n @ light.light_world()))
    return light.ambient + (1 - light.ambient) * d


# corners of the unit cube: index = 4 * z + 2 * y + x (x right, y away, z up), in {-1/2, 1/2}
_CUBE_FACES: tuple[tuple[tuple[int, ...], tuple[float, float, float]], ...] = (
    # counter-clockwise seen from outside; the top comes last so it is painted last
    ((0, 2, 3, 1), (0.0, 0.0, -1.0)),  # bottom
    ((0, 1, 5, 4), (0.0, -1.0, 0.0)),  # front (towards the camera)
    ((2, 6, 7, 3), (0.0, 1.0, 0.0)),  # back
    ((0, 4, 6, 2), (-1.0, 0.0, 0.0)),  # left
    ((1, 3, 7, 5), (1.0, 0.0, 0.0)),  # right
    ((4, 5, 7, 6), (0.0, 0.0, 1.0)),  # top
)


def _cube_corners(spec: ObjectSpec, light: Lighting) -> tuple[np.ndarray, np.ndarray, float]:
    """Screen positions (8, 2), world normals' rotation (2x2) and edge length of a cube."""
    st = spec.cube
    unit = np.array([[(k & 1) - 0.5, ((k >> 1) & 1) - 0.5, (k >> 2) & 1] for k in range(8)], float)
    se, ce = math.sin(light.camera_elevation), math.cos(light.camera_elevation)
    if st.projection == "oblique":
        ca, sa = 1.0, 0.0
        dx = st.oblique_depth * math.cos(st.oblique_angle)
        dy = st.oblique_depth * math.sin(st.oblique_angle)
        edge = spec.size / (1 + abs(dx))
        x = unit[:, 0] + unit[:, 1] * dx
        up = unit[:, 2] + unit[:, 1] * dy
        pts = np.stack([x, up], 1) * edge
    else:
        ca, sa = math.cos(spec.angle), math.sin(spec.angle)
        edge = spec.size / (abs(ca) + abs(sa))
        rx = unit[:, 0] * ca - unit[:, 1] * sa
        ry = unit[:, 0] * sa + unit[:, 1] * ca
        z = unit[:, 2]
        x, up = rx, ry * se + z * ce
        if st.projection == "perspective":
            depth = -ry * ce + z * se  # towards the viewer
            centre = 0.5 * se  # depth of the cube's centre
            scale = st.distance / np.maximum(st.distance - (depth - centre), 0.5)
            x, up = x * scale, up * scale
        pts = np.stack([x, up], 1) * edge
    pts[:, 0] += st.shear * pts[:, 1]
    pts[:, 1] *= st.squash
    # the ground contact point is the centre of the bottom face (corners 0-3)
    anchor = pts[:4].mean(0)
    screen = np.stack([spec.x + pts[:, 0] - anchor[0], spec.y - (pts[:, 1] - anchor[1])], 1)
    return screen, np.array([[ca, -sa], [sa, ca]]), edge


def _draw_cube(spec: ObjectSpec, light: Lighting, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    st = spec.cube
    screen, rot, edge = _cube_corners(spec, light)
    sil = np.zeros(shape, np.uint8)
    hull = cv2.convexHull(_pts(screen))
    cv2.fillConvexPoly(sil, hull, 1, cv2.LINE_8, _SHIFT)
    color = np.zeros((*shape, 3), np.float32)
    base = np.asarray(spec.color, np.float32)
    faces: list[tuple[np.ndarray, float, tuple[float, float, float]]] = []
    for idx, normal in _CUBE_FACES:
        quad = screen[list(idx)]
        # outward faces wound so that, seen from outside, the signed area (y down) is < 0
        area = 0.0
        for k in range(4):
            x0, y0 = quad[k]
            x1, y1 = quad[(k + 1) % 4]
            area += x0 * y1 - x1 * y0
        faces.append((quad, area, normal))
    # orientation of a face that is always visible (the top) fixes the sign convention
    sign = 1.0 if faces[-1][1] > 0 else -1.0
    visible = [(q, n) for q, a, n in faces if sign * a > 1e-6 * edge * edge]
    shaded: list[tuple[np.ndarray, float]] = []
    if st.levels is not None:
        sides = [(q, n) for q, n in visible if n[2] == 0.0]
        # the brighter side level goes to the side facing the light more
        lw = light.light_world()
        sides.sort(key=lambda f: -float(rot @ np.array(f[1][:2]) @ lw[:2]))
        side_levels = sorted(st.levels[1:], reverse=True)
        for k, (q, _n) in enumerate(sides):
            shaded.append((q, side_levels[min(k, 1)]))
        shaded += [(q, st.levels[0]) for q, n in visible if n[2] > 0]
    else:
        for q, n in visible:
            nw = rot @ np.array(n[:2])
            shaded.append((q, _shade(light, (float(nw[0]), float(nw[1]), n[2]))))
    if not shaded:
        return sil.astype(bool), color
    levels = [b for _, b in shaded]
    line = cv2.LINE_AA if st.antialias else cv2.LINE_8
    cv2.fillConvexPoly(color, hull, np.clip(base * min(levels), 0, 1).tolist(), cv2.LINE_8, _SHIFT)
    for quad, b in shaded:
        cv2.fillConvexPoly(color, _pts(quad), np.clip(base * b, 0, 1).tolist(), line, _SHIFT)
    if spec.edge > 0:
        t = max(1, round(spec.size / 60))
        for quad, b in shaded:
            c = np.clip(base * b * (1 - spec.edge), 0, 1)
            cv2.polylines(color, [_pts(quad)], True, c.tolist(), t, cv2.LINE_AA, _SHIFT)
    if st.outline > 0:
        t = max(1, round(st.outline * spec.size / 80))
        c = (base * st.outline_dark * 0.5).tolist()
        for quad, _ in shaded:
            cv2.polylines(color, [_pts(quad)], True, c, t, line, _SHIFT)
    return sil.astype(bool), color


def _draw_sphere(spec: ObjectSpec, light: Lighting, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    r = spec.size / 2
    cx = spec.x
    cy = spec.y - r * math.cos(light.camera_elevation)
    sil = np.zeros(shape, np.uint8)
    cv2.circle(sil, (round(cx * _SCALE), round(cy * _SCALE)), round(r * _SCALE), 1, -1, cv2.LINE_8, _SHIFT)
    color = np.zeros((*shape, 3), np.float32)
    h, w = shape
    x0, x1 = max(0, int(cx - r) - 1), min(w, int(cx + r) + 2)
    y0, y1 = max(0, int(cy - r) - 1), min(h, int(cy + r) + 2)
    if x0 >= x1 or y0 >= y1:
        return sil.astype(bool), color
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    nx = (xx + 0.5 - cx) / r
    ny = -(yy + 0.5 - cy) / r
    nz = np.sqrt(np.clip(1 - nx**2 - ny**2, 0, 1))
    lc = light.to_camera(light.light_world())
    diffuse = np.clip((nx * lc[0] + ny * lc[1] + nz * lc[2] + spec.wrap) / (1 + spec.wrap), 0, 1)
    half = lc + np.array([0.0, 0.0, 1.0])
    half /= np.linalg.norm(half)
    spec_term = np.clip(nx * half[0] + ny * half[1] + nz * half[2], 0, 1) ** light.shininess
    base = np.asarray(spec.color, np.float32)
    shade = light.ambient + (1 - light.ambient) * diffuse
    patch = base * shade[..., None] + (light.specular * spec_term)[..., None]
    color[y0:y1, x0:x1] = patch
    if spec.outline > 0:
        t = max(1, round(spec.outline * spec.size / 80))
        c = (base * 0.1).tolist()
        centre = (round(cx * _SCALE), round(cy * _SCALE))
        cv2.circle(color, centre, round(r * _SCALE), c, t, cv2.LINE_AA, _SHIFT)
    return sil.astype(bool), color


def _draw_cylinder(
    spec: ObjectSpec, light: Lighting, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    r = spec.size / 2
    se, ce = math.sin(light.camera_elevation), math.cos(light.camera_elevation)
    ry = r * se  # vertical semi-axis of the elliptical ends
    height = spec.size * spec.height_ratio
    cx, by = spec.x, spec.y
    ty = by - height * ce
    h, w = shape
    body = np.zeros(shape, np.uint8)
    axes = (round(r * _SCALE), round(ry * _SCALE))
    cv2.ellipse(body, (round(cx * _SCALE), round(by * _SCALE)), axes, 0, 0, 360, 1, -1, cv2.LINE_8, _SHIFT)
    rect = np.array([(cx - r, ty), (cx + r, ty), (cx + r, by), (cx - r, by)])
    cv2.fillConvexPoly(body, _pts(rect), 1, cv2.LINE_8, _SHIFT)
    topm = np.zeros(shape, np.uint8)
    cv2.ellipse(topm, (round(cx * _SCALE), round(ty * _SCALE)), axes, 0, 0, 360, 1, -1, cv2.LINE_8, _SHIFT)
    sil = (body | topm).astype(bool)
    color = np.zeros((*shape, 3), np.float32)
    x0, x1 = max(0, int(cx - r) - 1), min(w, int(cx + r) + 2)
    if x0 >= x1:
        return sil, color
    xs = np.arange(x0, x1, dtype=np.float32) + 0.5
    nx = np.clip((xs - cx) / r, -1, 1)
    ny = -np.sqrt(1 - nx**2)
    lw = light.light_world()
    diffuse = np.clip((nx * lw[0] + ny * lw[1] + spec.wrap) / (1 + spec.wrap), 0, 1)
    # a soft specular stripe
    lc = light.to_camera(lw)
    half = lc + np.array([0.0, 0.0, 1.0])
    half /= np.linalg.norm(half)
    ncam_z = -ny * ce  # normal's component towards the viewer
    stripe = np.clip(nx * half[0] + ncam_z * half[2], 0, 1) ** light.shininess
    col_shade = light.ambient + (1 - light.ambient) * diffuse
    base = np.asarray(spec.color, np.float32)
    body_colors = base * col_shade[:, None] + (0.6 * light.specular * stripe)[:, None]
    y0, y1 = max(0, int(ty - ry) - 1), min(h, int(by + ry) + 2)
    if y0 < y1:
        color[y0:y1, x0:x1] = body_colors[None, :, :]
    top_shade = _shade(light, (0.0, 0.0, 1.0))
    top_shade = max(top_shade, float(col_shade.mean()) + 0.12)
    top_color = np.clip(base * top_shade, 0, 1)
    if float(top_color.max()) < float(body_colors.mean(axis=0).max()) + 0.05:
        top_color = np.clip(top_color + 0.12, 0, 1)  # the top is always lighter than the body
    tm = topm.astype(bool)
    color[tm] = top_color
    if spec.edge > 0:
        t = max(1, round(spec.size / 60))
        c = (top_color * (1 - spec.edge)).tolist()
        cv2.ellipse(
            color, (round(cx * _SCALE), round(ty * _SCALE)), axes, 0, 0, 360, c, t, cv2.LINE_AA, _SHIFT
        )
    if spec.outline > 0:
        t = max(1, round(spec.outline * spec.size / 80))
        c = (base * 0.1).tolist()
        contours, _ = cv2.findContours(sil.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(color, contours, -1, c, t, cv2.LINE_AA)
        cv2.ellipse(
            color, (round(cx * _SCALE), round(ty * _SCALE)), axes, 0, 0, 360, c, t, cv2.LINE_AA, _SHIFT
        )
    return sil, color


_DRAW = {CUBE: _draw_cube, SPHERE: _draw_sphere, CYLINDER: _draw_cylinder}


def _shadow(spec: ObjectSpec, light: Lighting, shape: tuple[int, int]) -> np.ndarray:
    """A soft shadow on the floor (float32 in [0, 1])."""
    out = np.zeros(shape, np.float32)
    length = spec.size * (0.3 + 0.9 * math.cos(light.light_elevation))
    if spec.category_id == CYLINDER:
        length *= spec.height_ratio
    dx = -math.cos(light.light_azimuth) * length * 0.6
    dy = math.sin(light.light_azimuth) * length * 0.6 * math.sin(light.camera_elevation)
    axes = (max(1, round(spec.size * 0.55 + abs(dx) * 0.5)), max(1, round(spec.size * 0.3 + abs(dy) * 0.5)))
    cv2.ellipse(
        out, (round(spec.x + dx * 0.5), round(spec.y + dy * 0.5)), axes, 0, 0, 360, 1.0, -1, cv2.LINE_AA
    )
    k = int(spec.size * 0.25) | 1
    return cv2.GaussianBlur(out, (k, k), 0)


# --------------------------------------------------------------------------- composition
def compose(
    width: int,
    height: int,
    specs: Sequence[ObjectSpec],
    *,
    floor: np.ndarray,
    lighting: Lighting,
    shadow: float = 0.0,
    blur: float = 0.0,
    noise: float = 0.0,
    rng: np.random.Generator | None = None,
    seed: int | None = None,
) -> Scene:
    """Draw ``specs`` in painter's order onto ``floor``; masks are the visible parts.

    Objects whose visible part is under 1 % of the image are removed from the
    scene (not drawn) and the visibility of the others is recomputed.
    """
    shape = (height, width)
    order = sorted(range(len(specs)), key=lambda i: (specs[i].y, i))  # far (high) -> near (low)
    drawn = {i: _DRAW[specs[i].category_id](specs[i], lighting, shape) for i in order}
    keep = [i for i in order if drawn[i][0].any()]
    min_area = MIN_OBJECT_FRACTION * width * height
    while True:
        visible: dict[int, np.ndarray] = {}
        covered = np.zeros(shape, bool)
        for i in reversed(keep):  # near -> far
            sil = drawn[i][0]
            visible[i] = sil & ~covered
            covered |= sil
        small = [i for i in keep if visible[i].sum() < min_area]
        if not small:
            break
        keep = [i for i in keep if i not in small]
    image = floor.copy()
    if shadow > 0 and keep:
        dark = np.zeros(shape, np.float32)
        for i in keep:
            dark = np.maximum(dark, _shadow(specs[i], lighting, shape))
        image *= (1 - shadow * dark)[..., None]
    for i in keep:
        sil, color = drawn[i]
        image[sil] = color[sil]
    if blur > 0:
        image = cv2.GaussianBlur(image, (0, 0), blur)
    if noise > 0:
        gen = rng if rng is not None else np.random.default_rng(0)
        image = image + gen.normal(0, noise, image.shape).astype(np.float32)
    rgb = np.clip(image * 255 + 0.5, 0, 255).astype(np.uint8)
    objects = []
    for i in keep:
        m = visible[i]
        ys, xs = np.nonzero(m)
        x0, y0 = int(xs.min()), int(ys.min())
        objects.append(
            SceneObject(
                category_id=specs[i].category_id,
                name=CATEGORIES[specs[i].category_id - 1],
                mask=m,
                bbox=(x0, y0, int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1),
                color=specs[i].color,
            )
        )
    return Scene(image=rgb, objects=objects, seed=seed)


def render_scene(seed: int, *, size: tuple[int, int] | None = None) -> Scene:
    """The scene of ``seed``; ``size`` = (width, height) overrides the random size."""
    rng = np.random.default_rng([int(seed), 0xB10C5])
    width, height = random_size(rng)
    if size is not None:
        width, height = int(size[0]), int(size[1])
    lighting = random_lighting(rng)
    floor = render_floor(rng, width, height)
    style_rng = np.random.default_rng([int(seed), 0xC0BE])
    specs = random_objects(rng, width, height, style_rng=style_rng)
    shadow = float(rng.uniform(0.2, 0.6)) if rng.random() < 0.6 else 0.0
    blur = float(rng.uniform(0.3, 1.0)) if rng.random() < 0.5 else 0.0
    noise = float(rng.uniform(0.0, 0.03)) if rng.random() < 0.5 else 0.0
    paint = functools.partial(compose, floor=floor, lighting=lighting, shadow=shadow, blur=blur, noise=noise)
    while True:  # every scene holds at least one object: draw again (same look) while none is left
        scene = paint(width, height, specs, rng=rng, seed=seed)
        if scene.objects:
            return scene
        specs = random_objects(rng, width, height, style_rng=style_rng)


def seed_case_scene() -> Scene:
    """The seed's picture: two red cubes of one colour, the nearer partly hiding the other."""
    width, height = 512, 384
    lighting = Lighting(
        camera_elevation=math.radians(40),
        light_azimuth=math.radians(-130),
        light_elevation=math.radians(55),
        ambient=0.35,
    )
    yy = np.linspace(0.62, 0.78, height, dtype=np.float32)[:, None, None]
    floor = np.broadcast_to(yy * np.array([0.92, 0.92, 0.95], np.float32), (height, width, 3))
    red = (0.85, 0.12, 0.10)
    specs = [
        ObjectSpec(CUBE, red, x=215, y=215, size=150, angle=math.radians(30)),
        ObjectSpec(CUBE, red, x=305, y=290, size=160, angle=math.radians(30)),
    ]
    return compose(
        width, height, specs, floor=np.ascontiguousarray(floor), lighting=lighting, shadow=0.35, blur=0.5
    )


# --------------------------------------------------------------------------- COCO
def scenes_to_coco(scenes: Sequence[Scene], file_names: Sequence[str] | None = None) -> dict[str, Any]:
    """COCO ground truth (instances, compressed RLE masks) for ``scenes``; image ids 1..N."""
    from pycocotools import mask as mask_utils

    if file_names is None:
        file_names = [f"scene-{s.seed if s.seed is not None else i}.png" for i, s in enumerate(scenes)]
    if len(file_names) != len(scenes):
        raise ValueError("one file name per scene")
    images, annotations = [], []
    ann_id = 1
    for image_id, (scene, name) in enumerate(zip(scenes, file_names), start=1):
        images.append({"id": image_id, "file_name": name, "width": scene.width, "height": scene.height})
        for obj in scene.objects:
            rle = mask_utils.encode(np.asfortranarray(obj.mask.astype(np.uint8)))
            rle["counts"] = rle["counts"].decode("ascii")
            annotations.append(
                {
                    "id": ann_id,
                    "image_id": image_id,
                    "category_id": obj.category_id,
                    "segmentation": rle,
                    "area": float(obj.area),
                    "bbox": [float(v) for v in obj.bbox],
                    "iscrowd": 0,
                }
            )
            ann_id += 1
    categories = [{"id": i + 1, "name": n, "supercategory": "block"} for i, n in enumerate(CATEGORIES)]
    return {"images": images, "annotations": annotations, "categories": categories}


TRAIN_SEEDS = range(0, 1_000_000)
"""Seeds the training script draws scenes from."""
HELDOUT_SEED_BASE = 1_000_000_000
"""Held-out (benchmark and test) scenes use seeds from here up; training never does."""
