"""The embedded engine's networks (chalicelib/embedded/descriptor_net.py,
yunet.py, model_files.py): dlib's ResNet read from its own file gives dlib's
own descriptors on the shared photos' faces, a model file it does not know
is refused, the graphs are made once and kept, and YuNet's decoding puts
its landmarks where dlib puts the same points."""

import dataclasses

import dlib
import numpy as np
import pytest

from chalicelib.core.pixels import decode_rgb
from chalicelib.embedded import analysis, descriptor_net, model_files, yunet
from chalicelib.embedded.descriptor_net import ModelFileError, read_network, to_onnx
from tests.support.photos import people, photo


@pytest.fixture(scope="module")
def models() -> analysis.Models:
    return analysis.load_models()


@pytest.fixture(scope="module")
def dlib_descriptor():
    return dlib.face_recognition_model_v1(str(model_files.descriptor_path()))


@pytest.fixture(scope="module")
def dat() -> bytes:
    return model_files.descriptor_path().read_bytes()


def _shape(face: analysis.Face) -> dlib.full_object_detection:
    left, top, right, bottom = (round(v) for v in (face.left, face.top, face.left + face.width, face.top + face.height))
    box = dlib.rectangle(left, top, right, bottom)
    return dlib.full_object_detection(box, [dlib.point(round(x), round(y)) for x, y in face.landmarks])


@pytest.mark.slow
def test_every_shared_face_gets_dlibs_own_descriptor(models, dlib_descriptor):
    """The engine's descriptors against dlib's compute_face_descriptor on the
    same photo and landmarks (its chip, its network, its numbers)."""
    worst, faces = 0.0, 0
    for name in sorted(people()):
        pixels = np.asarray(decode_rgb(photo(name), analysis.WORK_PIXELS))
        for face in analysis.analyze(models, photo(name)).faces:
            expected = np.array(dlib_descriptor.compute_face_descriptor(pixels, _shape(face)), np.float32)
            worst = max(worst, float(np.abs(face.descriptor - expected).max()))
            faces += 1
    assert faces >= sum(len(who) for who in people().values())
    assert worst < descriptor_net.TOLERANCE


def test_the_check_refuses_a_network_that_is_not_dlibs(dat):
    network = read_network(dat)
    fc = network.layers[-1]
    skewed = dataclasses.replace(fc, params=fc.params * 1.001)
    wrong = to_onnx(dataclasses.replace(network, layers=[*network.layers[:-1], skewed]))
    with pytest.raises(ModelFileError, match="differs from dlib's"):
        descriptor_net.check_against_dlib(wrong)
    assert descriptor_net.check_against_dlib(to_onnx(network)) < descriptor_net.TOLERANCE


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda data: data[: len(data) // 2], "ends early"),
        (lambda data: data + b"\x00", "goes on after the network"),
        (lambda data: data.replace(b"relu_", b"relX_", 1), "unknown layer 'relX_'"),
        (lambda data: data.replace(b"con_4", b"con_9", 1), "unknown layer 'con_9'"),
        (lambda data: data.replace(b"loss_metric_2", b"loss_multic_2", 1), "expected 'loss_metric_2'"),
    ],
    ids=["truncated", "trailing bytes", "unknown layer", "newer layer format", "another loss"],
)
def test_a_model_file_it_does_not_know_is_refused(dat, damage, message):
    with pytest.raises(ModelFileError, match=message):
        to_onnx(read_network(damage(dat)))


def test_a_network_of_another_shape_is_refused(dat):
    network = read_network(dat)
    with pytest.raises(ModelFileError, match="expected relu_"):
        to_onnx(dataclasses.replace(network, layers=[layer for layer in network.layers if layer.kind != "relu_"]))


def test_a_graph_is_made_once_then_read_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(model_files, "CACHE", tmp_path / "cache")
    source = tmp_path / "model.bin"
    source.write_bytes(b"weights")
    made = []

    def build(data: bytes) -> bytes:
        made.append(data)
        return data.upper()

    assert model_files.derived("net", source, 1, build) == b"WEIGHTS"
    assert model_files.derived("net", source, 1, build) == b"WEIGHTS"
    assert made == [b"weights"]
    model_files.derived("net", source, 2, build)  # the code that makes it changed
    source.write_bytes(b"other weights")  # the model file changed
    assert model_files.derived("net", source, 2, build) == b"OTHER WEIGHTS"
    assert len(made) == 3 and not list((tmp_path / "cache").glob(".*"))  # no temporary file left


def test_without_a_writable_cache_the_graph_is_made_in_memory(tmp_path, monkeypatch):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    monkeypatch.setattr(model_files, "CACHE", blocked / "cache")
    source = tmp_path / "model.bin"
    source.write_bytes(b"weights")
    assert model_files.derived("net", source, 1, bytes.upper) == b"WEIGHTS"


def test_a_yunet_file_other_than_the_pinned_one_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(model_files, "YUNET_SHA256", "0" * 64)
    with pytest.raises(model_files.ModelMissing, match="another SHA-256"):
        model_files.yunet_path()


def test_dequantizing_works_out_each_block_with_its_own_scale():
    x = np.array([[10, 20, 30, 40]], np.int8)
    scale = np.array([[0.5, 2.0]], np.float32)
    zero = np.array([[0, 10]], np.int8)
    assert yunet._dequantized(x, scale, zero, axis=1, block_size=2).tolist() == [[5.0, 10.0, 40.0, 60.0]]
    assert np.allclose(yunet._dequantized(x, np.float32(0.1)), [[1.0, 2.0, 3.0, 4.0]])


def test_overlapping_boxes_are_one_face_and_the_best_stays():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [50, 50, 10, 10], [0, 0, 10, 30]], np.float32)
    scores = np.array([0.8, 0.9, 0.85, 0.7], np.float32)
    assert yunet._suppressed(boxes, scores) == [1, 2, 3]  # box 3 overlaps box 1 by 0.28 only


@pytest.mark.slow
def test_yunets_landmarks_fall_where_dlibs_do(models):
    """YuNet's eye centres, decoded here, against the midpoints of dlib's
    eye corners: within a quarter of the distance between the eyes on
    every shared face (measured: 0.16 at most, 0.23 on the inset face,
    16 px between the eyes, where dlib's whole pixels weigh)."""
    for name in sorted(people()):
        image = decode_rgb(photo(name), analysis.WORK_PIXELS)
        for found in analysis._detect(models.detector, image, None):
            seen = analysis._Seen(found)
            _, shape = analysis._locate(models, image, np.asarray(image), seen)
            dlib_points = np.array([(p.x, p.y) for p in shape.parts()], float)
            eyes = {"on the left": dlib_points[2:4].mean(0), "on the right": dlib_points[0:2].mean(0)}
            between = float(np.hypot(*(found.points[1] - found.points[0])))
            if not analysis.quality.turned_to_camera(seen.pose):
                continue  # a profile: dlib's frontal landmark model cannot place it
            assert np.hypot(*(found.points[0] - eyes["on the left"])) < between / 4, name
            assert np.hypot(*(found.points[1] - eyes["on the right"])) < between / 4, name
