"""YuNet, the face detector (libfacedetection's network, as OpenCV's model
zoo publishes it: face_detection_yunet_2023mar_int8bq.onnx, MIT), run by
onnxruntime on one thread.

It finds faces of about 10 to 300 pixels in the frame it is given, each with
a score (0-1) and five landmarks: the centres of the eyes, the tip of the
nose and the corners of the mouth.

The file stores its weights as int8 in blocks of 64, each block with its own
scale. onnxruntime cannot run that form (DequantizeLinear with a block size),
and OpenCV's FaceDetectorYN, which can, took 1.5 to 3 times as long here; so
`graph` works the weights out once, as those nodes would (the same float32
numbers the network computes with), and frees the input's size, fixed at
640x640 in the file. `YuNet.detect` then decodes the network's outputs as
FaceDetectorYN does (checked equal to it within 1e-4 px on the shared
photos): for each cell of the three heads (strides 8, 16 and 32), the score
is the square root of class times objectness, the box's centre an offset
from the cell in strides and its size exp() strides, the landmarks offsets
from the cell; then non-maximum suppression.
"""

from dataclasses import dataclass

import numpy as np

from chalicelib.embedded import descriptor_net, model_files

STRIDES = (8, 16, 32)
NMS_OVERLAP = 0.3  # FaceDetectorYN's default: boxes overlapping more (IoU) are one face
GRAPH_VERSION = 1


@dataclass(frozen=True)
class Detection:
    box: tuple[float, float, float, float]  # left, top, width, height, in the frame's pixels
    # (5, 2): the person's right eye (on the image's left), left eye, nose tip,
    # right and left corners of the mouth.
    landmarks: np.ndarray
    score: float  # 0-1


def graph() -> bytes:
    return model_files.derived("yunet-2023mar", model_files.yunet_path(), GRAPH_VERSION, float_weights)


def float_weights(data: bytes) -> bytes:
    """The model with each constant DequantizeLinear replaced by its result,
    and an input of any height and width (multiples of 32)."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load_from_string(data)
    constants = {c.name: numpy_helper.to_array(c) for c in model.graph.initializer}
    nodes, worked_out = [], {}
    for node in model.graph.node:
        if node.op_type == "DequantizeLinear" and all(name in constants for name in node.input):
            attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            worked_out[node.output[0]] = _dequantized(*(constants[name] for name in node.input), **attributes)
        else:
            nodes.append(node)
    used = {name for node in nodes for name in node.input}
    kept = [c for c in model.graph.initializer if c.name in used]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept + [numpy_helper.from_array(v, name) for name, v in worked_out.items()])
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "height", "width"
    for output in model.graph.output:
        output.type.tensor_type.shape.dim[1].dim_param = "cells"
    return model.SerializeToString()


def _dequantized(
    x: np.ndarray, scale: np.ndarray, zero: np.ndarray | None = None, axis: int = 1, block_size: int = 0
) -> np.ndarray:
    """ONNX DequantizeLinear: (x - zero) * scale, the scale per tensor, per
    slice along `axis`, or per block of `block_size` along it."""
    zero = np.zeros_like(scale) if zero is None else zero
    x, scale, zero = x.astype(np.float32), scale.astype(np.float32), zero.astype(np.float32)
    if scale.ndim == 0:
        return (x - zero) * scale
    if block_size:
        scale, zero = (np.repeat(v, block_size, axis=axis).take(range(x.shape[axis]), axis=axis) for v in (scale, zero))
    else:
        shape = [1] * x.ndim
        shape[axis] = -1
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    return ((x - zero) * scale).astype(np.float32)


class YuNet:
    def __init__(self, model: bytes | None = None) -> None:
        self.session = descriptor_net.session(model if model is not None else graph())
        self._outputs = [output.name for output in self.session.get_outputs()]

    def detect(self, rgb: np.ndarray, threshold: float) -> list[Detection]:
        """The faces of an RGB frame scoring at least `threshold`, best first."""
        height, width = rgb.shape[:2]
        padded = np.zeros((1, 3, -(-height // 32) * 32, -(-width // 32) * 32), np.float32)
        padded[0, :, :height, :width] = rgb[:, :, ::-1].transpose(2, 0, 1)  # BGR, as OpenCV feeds it
        out = dict(zip(self._outputs, self.session.run(None, {"input": padded}), strict=True))
        boxes, landmarks, scores = [], [], []
        for stride in STRIDES:
            score = np.sqrt(np.clip(out[f"cls_{stride}"][0, :, 0], 0, 1) * np.clip(out[f"obj_{stride}"][0, :, 0], 0, 1))
            cells = np.flatnonzero(score >= threshold)
            row, column = np.divmod(cells, padded.shape[3] // stride)
            box = out[f"bbox_{stride}"][0, cells]
            size = np.exp(box[:, 2:4]) * stride
            centre = (np.stack([column, row], 1) + box[:, 0:2]) * stride
            boxes.append(np.concatenate([centre - size / 2, size], 1))
            points = out[f"kps_{stride}"][0, cells].reshape(-1, 5, 2)
            landmarks.append((points + np.stack([column, row], 1)[:, None, :]) * stride)
            scores.append(score[cells])
        boxes, landmarks, scores = np.concatenate(boxes), np.concatenate(landmarks), np.concatenate(scores)
        return [
            Detection(tuple(map(float, boxes[i])), landmarks[i].astype(np.float64), float(scores[i]))
            for i in _suppressed(boxes, scores)
        ]


def _suppressed(boxes: np.ndarray, scores: np.ndarray) -> list[int]:
    """Greedy non-maximum suppression: best first, dropping every box that
    overlaps a kept one by more than NMS_OVERLAP (intersection over union)."""
    left, top = boxes[:, 0], boxes[:, 1]
    right, bottom = left + boxes[:, 2], top + boxes[:, 3]
    area = boxes[:, 2] * boxes[:, 3]
    order, kept = np.argsort(-scores, kind="stable"), []
    while order.size:
        best, rest = order[0], order[1:]
        kept.append(int(best))
        width = np.clip(np.minimum(right[best], right[rest]) - np.maximum(left[best], left[rest]), 0, None)
        height = np.clip(np.minimum(bottom[best], bottom[rest]) - np.maximum(top[best], top[rest]), 0, None)
        overlap = width * height
        order = rest[overlap / (area[best] + area[rest] - overlap) <= NMS_OVERLAP]
    return kept
