"""The queries of `make bench-names` (scripts/bench_names.py): every face of
the shared photos, who it is, and probes made from it as hard as real
photos of a person taken elsewhere (small, blurred, badly compressed, grey,
tilted, partly covered).

Each face is found by the embedded analyzer and named as
tests/support/photos.label_faces names it (a portrait's face is its person;
a group photo's face the person of the portrait face it matches, or the
photo's remaining people left to right). A probe is a crop around the face
(half the face's size as margin on each side) changed as its kind says,
with parameters drawn at random in the kind's ranges (seeded by the face,
the kind and the draw, so every run makes the same bytes), DRAWS of each
kind but `crop`, which has nothing to draw:

- `crop`: the crop as it is, JPEG quality 90 (the easy reference);
- `small`: scaled so the face is 40-80 px high, quality 75;
- `blurred`: a 90 px face blurred (Gaussian, sigma 1.2-2.2 px), quality 75;
- `jpeg`: a 90 px face at JPEG quality 15-25;
- `grey rolled`: greyscale, turned 15-25 degrees either way, quality 75;
- `eye band`: a dark band over the eyes (sunglasses, a bar), quality 75;
- `hand`: a hand-like patch of skin over the mouth and chin, quality 75;
- `small blurred jpeg`: a 45-70 px face, blurred (sigma 0.6-1.2), quality 15-25;
- `grey small rolled`: grey, a 45-70 px face, turned 15-25 degrees, quality 60;
- `band jpeg`: the eye band on a 60-80 px face at quality 15-25;
- `hand grey rolled`: the hand, in grey, turned 15-25 degrees, quality 60.

The group photos paste the portraits' faces, so another photo of a person
is often the same pixels: the changes do the work of the years between
two real photos. A probe in which the analyzer finds no face, or finds a
larger one than ours (a neighbour in a group photo), is left out, and
said so.
"""

import hashlib
import io
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

KINDS = (
    "crop",
    "small",
    "blurred",
    "jpeg",
    "grey rolled",
    "band",
    "hand",
    "blurred jpeg",
    "grey rolled jpeg",
    "band jpeg",
    "hand grey rolled",
    "grey blurred",
    "hand blurred jpeg",
)
STEPS = {"small", "blurred", "jpeg", "grey", "rolled", "band", "hand"}
DRAWS = 2  # probes of each kind per face
MARGIN = 0.5
SMALLEST_FACE_PX, LARGEST_FACE_PX = 40, 80


@dataclass
class SharedFace:
    """One face of a shared photo: where it is (ratios of the photo, as
    BoundingBox), its five landmarks (ratios too), who it is, its
    descriptor, and its probes' bytes and descriptors by name
    (`<kind> #<draw>`)."""

    photo: str
    box: dict
    landmarks: tuple[tuple[float, float], ...]
    person: str
    descriptor: np.ndarray
    probes: dict[str, bytes] = field(default_factory=dict)
    probe_descriptors: dict[str, np.ndarray] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)  # probes left out, and why


def probe_kind(name: str) -> str:
    """`small #1` -> `small`."""
    return name.rsplit(" #", 1)[0]


def shared_faces(analyze, people: dict[str, list[str]], read, kinds=KINDS, draws: int = DRAWS) -> list[SharedFace]:
    """Every face of every shared photo, named, with its probes.
    `analyze(data, largest_only)` returns an Analysis (a FaceAnalyzer's
    analyze, or analysis.analyze with its models), `people` is
    people.json's images, `read` a function from photo name to bytes."""
    from tests.support.photos import label_faces

    found = []
    for name in sorted(people):
        analysis = analyze(read(name), False)
        for face in analysis.faces:
            box = {
                "Left": face.left / analysis.width,
                "Top": face.top / analysis.height,
                "Width": face.width / analysis.width,
                "Height": face.height / analysis.height,
            }
            points = tuple((x / analysis.width, y / analysis.height) for x, y in face.landmarks)
            found.append((name, box, points, face.descriptor))
    descriptors = np.stack([d for *_, d in found])
    scores = 100.0 * (1.0 - np.linalg.norm(descriptors[:, None] - descriptors[None], axis=2) / 3.0)
    who = label_faces([(name, box["Left"]) for name, box, _, _ in found], scores)
    faces = [
        SharedFace(name, box, points, person, descriptor)
        for (name, box, points, descriptor), person in zip(found, who, strict=True)
    ]
    for face in faces:
        image = Image.open(io.BytesIO(read(face.photo))).convert("RGB")
        for kind in kinds:
            for draw in range(1, (1 if kind == "crop" else draws) + 1):  # a crop has nothing to draw
                probe = f"{kind} #{draw}"
                data = make_probe(image, face, kind, _rng(face, probe))
                descriptor, reason = _described(analyze, data)
                if reason:
                    face.dropped.append(f"{probe}: {reason}")
                else:
                    face.probes[probe] = data
                    face.probe_descriptors[probe] = descriptor
    return faces


def _rng(face: SharedFace, probe: str) -> np.random.Generator:
    where = f"{face.photo}|{face.box['Left']:.3f}|{probe}".encode()
    return np.random.default_rng(int.from_bytes(hashlib.sha256(where).digest()[:8], "big"))


def make_probe(image: Image.Image, face: SharedFace, kind: str, rng: np.random.Generator) -> bytes:
    """The photo `image` cut around `face`, made harder as `kind` says,
    with parameters from `rng`."""
    steps = kind.split()
    if kind not in KINDS and not set(steps) <= STEPS:
        raise ValueError(f"no probe kind {kind!r}")
    crop, height, (eyes, nose) = _crop(image, face)
    if "band" in steps:
        crop = _eye_band(crop, eyes, height, rng)
    if "hand" in steps:
        crop = _hand(crop, eyes, nose, height, rng)
    if kind == "crop":
        return _jpeg(crop, 90)
    image = _scaled(crop, rng.uniform(SMALLEST_FACE_PX, LARGEST_FACE_PX) / height)
    if "grey" in steps:
        image = image.convert("L")
    if "rolled" in steps:
        image = _rolled(image, rng)
    if "blurred" in steps:
        image = _blurred(image, rng.uniform(0.7, 1.4))
    return _jpeg(image, _quality(rng) if "jpeg" in steps else 75)


def _crop(image: Image.Image, face: SharedFace):
    """The crop around the face, the face's height in it, and its eyes'
    and nose's points in the crop's pixels."""
    width, height = face.box["Width"] * image.width, face.box["Height"] * image.height
    left, top = face.box["Left"] * image.width, face.box["Top"] * image.height
    area = (
        max(0, round(left - MARGIN * width)),
        max(0, round(top - MARGIN * height)),
        min(image.width, round(left + (1 + MARGIN) * width)),
        min(image.height, round(top + (1 + MARGIN) * height)),
    )
    points = [(x * image.width - area[0], y * image.height - area[1]) for x, y in face.landmarks]
    return image.crop(area), height, (points[:4], points[4])


def _eye_band(crop: Image.Image, eyes, height: float, rng) -> Image.Image:
    """A dark band across both eyes, 14-20% of the face's height, a little
    wider than the eyes, along their line."""
    xs, ys = [x for x, _ in eyes], [y for _, y in eyes]
    span = max(xs) - min(xs)
    half = height * rng.uniform(0.07, 0.10)
    (lx, ly), (rx, ry) = min(eyes), max(eyes)
    out = crop.copy()
    draw = ImageDraw.Draw(out)
    grow = span * rng.uniform(0.15, 0.3)
    slope = (ry - ly) / (rx - lx) if rx != lx else 0.0
    x0, x1 = min(xs) - grow, max(xs) + grow
    y0, y1 = ly + slope * (x0 - lx), ly + slope * (x1 - lx)
    shade = int(rng.uniform(10, 50))
    draw.polygon([(x0, y0 - half), (x1, y1 - half), (x1, y1 + half), (x0, y0 + half)], fill=(shade,) * 3)
    del ys
    return out


def _hand(crop: Image.Image, eyes, nose, height: float, rng) -> Image.Image:
    """A hand-like patch over the mouth and chin: a rounded blob of the
    face's own skin colour, a little darker, with finger creases."""
    eye_y = float(np.mean([y for _, y in eyes]))
    nx, ny = nose
    face_span = max(x for x, _ in eyes) - min(x for x, _ in eyes)
    centre_y = ny + (ny - eye_y) * rng.uniform(0.7, 0.9)
    half_w = face_span * rng.uniform(0.55, 0.75)
    half_h = height * rng.uniform(0.14, 0.2)
    pixels = np.asarray(crop)
    sample = pixels[
        max(0, int(ny - 0.1 * height)) : int(ny + 0.02 * height) + 1,
        max(0, int(nx - 0.15 * face_span)) : int(nx + 0.15 * face_span) + 1,
    ].reshape(-1, 3)
    skin = sample.mean(axis=0) * rng.uniform(0.75, 0.95) if len(sample) else np.array([180.0, 140.0, 120.0])
    out = crop.copy()
    draw = ImageDraw.Draw(out)
    box = (nx - half_w, centre_y - half_h, nx + half_w, centre_y + half_h)
    draw.rounded_rectangle(box, radius=half_h * 0.8, fill=tuple(int(c) for c in skin))
    crease = tuple(int(c * 0.7) for c in skin)
    for step in (-0.5, 0.0, 0.5):
        y = centre_y + step * half_h
        draw.line((nx - half_w * 0.85, y, nx + half_w * 0.85, y), fill=crease, width=max(1, round(height / 80)))
    return out


def _rolled(image: Image.Image, rng) -> Image.Image:
    angle = rng.uniform(15, 25) * rng.choice([-1, 1])
    fill = 128 if image.mode == "L" else (128, 128, 128)
    return image.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=fill)


def _blurred(image: Image.Image, sigma: float) -> Image.Image:
    return image.filter(ImageFilter.GaussianBlur(sigma))


def _quality(rng) -> int:
    return int(rng.integers(15, 26))


def _scaled(image: Image.Image, factor: float) -> Image.Image:
    size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
    return image.resize(size, Image.Resampling.LANCZOS)


def _jpeg(image: Image.Image, quality: int) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


def _described(analyze, data: bytes) -> tuple[np.ndarray | None, str]:
    """The descriptor of the probe's face, or why the probe cannot stand
    for the face: its largest face must be the one the crop was cut around
    (the one nearest its centre)."""
    analysis = analyze(data, False)
    if not analysis.faces:
        return None, "no face found in it"
    centre = (analysis.width / 2, analysis.height / 2)

    def off_centre(face) -> float:
        return abs(face.left + face.width / 2 - centre[0]) + abs(face.top + face.height / 2 - centre[1])

    ours = min(analysis.faces, key=off_centre)
    if ours is not analysis.faces[0]:
        return None, "a larger face than this one is in it"
    return ours.descriptor, ""
