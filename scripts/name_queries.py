"""The queries of `make bench-names` (scripts/bench_names.py): every face of
the shared photos, who it is, and harder photos of it made from the photo.

Each face is found by the embedded analyzer and named as
tests/support/photos.label_faces names it (a portrait's face is its person;
a group photo's face the person of the portrait face it matches, or the
photo's remaining people left to right). Its variants are JPEG crops around
the face (half the face's size as margin on each side), the face the
largest in each, as a user might send a face cut from another photo:

- `crop`: the crop as it is (JPEG quality 90);
- `grey 150 px`: greyscale, scaled so the face is 150 px high, quality 75;
- `small q30`: scaled so the face is 90 px high, quality 30;
- `rotated 10°`: turned 10 degrees (the corners filled grey), quality 90.

A variant in which the analyzer finds no face, or finds a larger one than
ours (a neighbour in a group photo), is left out, and said so.
"""

import io
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

VARIANTS = ("crop", "grey 150 px", "small q30", "rotated 10°")
MARGIN = 0.5


@dataclass
class SharedFace:
    """One face of a shared photo: where it is (ratios of the photo, as
    BoundingBox), who it is, its descriptor, and its variants' bytes."""

    photo: str
    box: dict
    person: str
    descriptor: np.ndarray
    variants: dict[str, bytes] = field(default_factory=dict)
    variant_descriptors: dict[str, np.ndarray] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)  # variants left out, and why


def shared_faces(analyzer, people: dict[str, list[str]], read) -> list[SharedFace]:
    """Every face of every shared photo, named, with its variants.
    `analyzer` is a FaceAnalyzer, `people` people.json's images, `read` a
    function from photo name to bytes."""
    from tests.support.photos import label_faces

    found = []
    for name in sorted(people):
        analysis = analyzer.analyze(read(name))
        for face in analysis.faces:
            box = {
                "Left": face.left / analysis.width,
                "Top": face.top / analysis.height,
                "Width": face.width / analysis.width,
                "Height": face.height / analysis.height,
            }
            found.append((name, box, face.descriptor))
    descriptors = np.stack([d for _, _, d in found])
    scores = 100.0 * (1.0 - np.linalg.norm(descriptors[:, None] - descriptors[None], axis=2) / 3.0)
    who = label_faces([(name, box["Left"]) for name, box, _ in found], scores)
    faces = [SharedFace(name, box, person, d) for (name, box, d), person in zip(found, who, strict=True)]
    for face in faces:
        image = Image.open(io.BytesIO(read(face.photo))).convert("RGB")
        for variant in VARIANTS:
            data = make_variant(image, face.box, variant)
            descriptor, reason = _described(analyzer, data)
            if reason:
                face.dropped.append(f"{variant}: {reason}")
            else:
                face.variants[variant] = data
                face.variant_descriptors[variant] = descriptor
    return faces


def make_variant(image: Image.Image, box: dict, variant: str) -> bytes:
    """The photo `image` cut around the face at `box`, made harder as `variant` says."""
    width, height = box["Width"] * image.width, box["Height"] * image.height
    left, top = box["Left"] * image.width, box["Top"] * image.height
    area = (
        max(0, round(left - MARGIN * width)),
        max(0, round(top - MARGIN * height)),
        min(image.width, round(left + (1 + MARGIN) * width)),
        min(image.height, round(top + (1 + MARGIN) * height)),
    )
    crop = image.crop(area)
    if variant == "crop":
        return _jpeg(crop, 90)
    if variant == "grey 150 px":
        return _jpeg(_scaled(crop, 150 / height).convert("L"), 75)
    if variant == "small q30":
        return _jpeg(_scaled(crop, 90 / height), 30)
    if variant == "rotated 10°":
        return _jpeg(crop.rotate(10, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=(128, 128, 128)), 90)
    raise ValueError(f"no variant {variant!r}")


def _scaled(image: Image.Image, factor: float) -> Image.Image:
    size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
    return image.resize(size, Image.Resampling.LANCZOS)


def _jpeg(image: Image.Image, quality: int) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


def _described(analyzer, data: bytes) -> tuple[np.ndarray | None, str]:
    """The descriptor of the variant's face, or why the variant cannot
    stand for the face: its largest face must be the one the crop was cut
    around (the one nearest its centre)."""
    analysis = analyzer.analyze(data)
    if not analysis.faces:
        return None, "no face found in it"
    centre = (analysis.width / 2, analysis.height / 2)

    def off_centre(face) -> float:
        return abs(face.left + face.width / 2 - centre[0]) + abs(face.top + face.height / 2 - centre[1])

    ours = min(analysis.faces, key=off_centre)
    if ours is not analysis.faces[0]:
        return None, "a larger face than this one is in it"
    return ours.descriptor, ""
