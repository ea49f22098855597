#!/usr/bin/env python3
"""Builds DNNScaler's model repository (Triton layout: <name>/1/model.onnx).

Two kinds of model:
  * the onnx wheel's "light" architectures (real networks, constant weights), made
    batch-dynamic: right for timing, but every output class is equal;
  * small models with known or seeded random weights whose outputs differ per input,
    for correctness tests.

Idempotent: a stamp file records the generator version; models are rebuilt only when a
file is missing or the generator changed.
"""
import argparse
import hashlib
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

LIGHT_MODELS = [
    "resnet50", "vgg19", "inception_v1", "inception_v2", "densenet121",
    "shufflenet", "squeezenet", "zfnet512", "bvlc_alexnet",
]
BATCH_DIM = "batch"
SEED = 20261125


def light_model_path(name):
    base = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")
    return os.path.join(base, f"light_{name}.onnx")


def set_batch_dim(value_info):
    dims = value_info.type.tensor_type.shape.dim
    if len(dims) > 0:
        dims[0].Clear()
        dims[0].dim_param = BATCH_DIM


def make_batch_dynamic(model):
    """Dim 0 of graph inputs/outputs becomes symbolic; Reshape targets starting with 1 copy dim 0."""
    graph = model.graph
    initializer_names = {init.name for init in graph.initializer}
    # Old IR versions list weights as graph inputs too; a server must expose only real inputs.
    real_inputs = [i for i in graph.input if i.name not in initializer_names]
    del graph.input[:]
    graph.input.extend(real_inputs)
    if model.ir_version < 4:
        model.ir_version = 4
    for value in list(graph.input) + list(graph.output):
        set_batch_dim(value)
    constants = {init.name: init for init in graph.initializer}
    constant_nodes = {n.output[0]: n for n in graph.node if n.op_type == "Constant"}
    for node in graph.node:
        if node.op_type != "Reshape" or len(node.input) < 2:
            continue
        target = node.input[1]
        if target in constants:
            shape = numpy_helper.to_array(constants[target]).copy()
            if shape.size > 0 and shape[0] == 1:
                shape[0] = 0
                constants[target].CopyFrom(numpy_helper.from_array(shape.astype(np.int64), target))
        elif target in constant_nodes:
            attr = constant_nodes[target].attribute[0]
            shape = numpy_helper.to_array(attr.t).copy()
            if shape.size > 0 and shape[0] == 1:
                shape[0] = 0
                attr.t.CopyFrom(numpy_helper.from_array(shape.astype(np.int64)))
        else:
            for attr in node.attribute:  # opset < 5 Reshape carries a "shape" attribute
                if attr.name == "shape" and len(attr.ints) > 0 and attr.ints[0] == 1:
                    attr.ints[0] = 0
    del graph.value_info[:]
    used = {name for node in graph.node for name in node.input}
    kept = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    return model


def randomize_constant_weights(model, rng):
    """Replaces ConstantOfShape weight generators with seeded random initializers (He scaling)."""
    graph = model.graph
    constants = {init.name: init for init in graph.initializer}
    kept_nodes = []
    for node in graph.node:
        if node.op_type == "ConstantOfShape" and node.input[0] in constants:
            shape = tuple(int(d) for d in numpy_helper.to_array(constants[node.input[0]]))
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 0
            if fan_in > 0:
                values = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
            else:
                values = rng.standard_normal(shape) * 0.05
            graph.initializer.append(numpy_helper.from_array(values.astype(np.float32), node.output[0]))
        else:
            kept_nodes.append(node)
    del graph.node[:]
    graph.node.extend(kept_nodes)
    used = {name for node in graph.node for name in node.input}
    kept_inits = [i for i in graph.initializer if i.name in used or i.name in {o.name for o in graph.output}]
    del graph.initializer[:]
    graph.initializer.extend(kept_inits)
    return model


def make_linear_hand():
    """y = x @ W + b with small integer weights, so tests can compute outputs by hand."""
    w = np.array([[1.0, -1.0], [2.0, 0.5], [-3.0, 4.0]], dtype=np.float32)
    b = np.array([0.5, -2.0], dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["y"])],
        "linear_hand",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [BATCH_DIM, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [BATCH_DIM, 2])],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "b")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def make_simple():
    """Triton's classic "simple" model: OUTPUT0 = INPUT0 + INPUT1, OUTPUT1 = INPUT0 - INPUT1 (INT32)."""
    graph = helper.make_graph(
        [
            helper.make_node("Add", ["INPUT0", "INPUT1"], ["OUTPUT0"]),
            helper.make_node("Sub", ["INPUT0", "INPUT1"], ["OUTPUT1"]),
        ],
        "simple",
        [
            helper.make_tensor_value_info("INPUT0", TensorProto.INT32, [BATCH_DIM, 16]),
            helper.make_tensor_value_info("INPUT1", TensorProto.INT32, [BATCH_DIM, 16]),
        ],
        [
            helper.make_tensor_value_info("OUTPUT0", TensorProto.INT32, [BATCH_DIM, 16]),
            helper.make_tensor_value_info("OUTPUT1", TensorProto.INT32, [BATCH_DIM, 16]),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


ALL_DTYPES = [
    ("bool", TensorProto.BOOL), ("uint8", TensorProto.UINT8), ("uint16", TensorProto.UINT16),
    ("uint32", TensorProto.UINT32), ("uint64", TensorProto.UINT64), ("int8", TensorProto.INT8),
    ("int16", TensorProto.INT16), ("int32", TensorProto.INT32), ("int64", TensorProto.INT64),
    ("fp16", TensorProto.FLOAT16), ("fp32", TensorProto.FLOAT), ("fp64", TensorProto.DOUBLE),
]


def make_identity_all_dtypes():
    """One Identity per KServe numeric dtype: input_<t> [batch, n] -> output_<t>."""
    nodes, inputs, outputs = [], [], []
    for suffix, elem in ALL_DTYPES:
        nodes.append(helper.make_node("Identity", [f"input_{suffix}"], [f"output_{suffix}"]))
        inputs.append(helper.make_tensor_value_info(f"input_{suffix}", elem, [BATCH_DIM, "n"]))
        outputs.append(helper.make_tensor_value_info(f"output_{suffix}", elem, [BATCH_DIM, "n"]))
    graph = helper.make_graph(nodes, "identity_all_dtypes", inputs, outputs)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def make_reshape_rows_of_three():
    """Reshapes [batch, n] to [-1, 3]: fails inside the runtime when batch*n is not a multiple of 3."""
    shape = numpy_helper.from_array(np.array([-1, 3], dtype=np.int64), "rows_of_three")
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "rows_of_three"], ["rows"])],
        "reshape_rows_of_three",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [BATCH_DIM, "n"])],
        [helper.make_tensor_value_info("rows", TensorProto.FLOAT, ["rows", 3])],
        [shape],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def make_string_echo():
    """BYTES (ONNX STRING) in and out: echo = text (Identity), and number = Cast(digits, FLOAT),
    the strings parsed as decimal numbers (a string that is no number fails the run: a runtime
    error on demand). Both inputs [batch, 2]."""
    graph = helper.make_graph(
        [
            helper.make_node("Identity", ["text"], ["echo"]),
            helper.make_node("Cast", ["digits"], ["number"], to=TensorProto.FLOAT),
        ],
        "string_echo",
        [
            helper.make_tensor_value_info("text", TensorProto.STRING, [BATCH_DIM, 2]),
            helper.make_tensor_value_info("digits", TensorProto.STRING, [BATCH_DIM, 2]),
        ],
        [
            helper.make_tensor_value_info("echo", TensorProto.STRING, [BATCH_DIM, 2]),
            helper.make_tensor_value_info("number", TensorProto.FLOAT, [BATCH_DIM, 2]),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def make_tiny_cnn(rng):
    """Conv(3->8, 3x3) -> Relu -> GlobalAveragePool -> Flatten -> Gemm(8->10) -> Softmax, seeded weights."""
    conv_w = (rng.standard_normal((8, 3, 3, 3)) * 0.3).astype(np.float32)
    conv_b = (rng.standard_normal(8) * 0.1).astype(np.float32)
    fc_w = (rng.standard_normal((10, 8)) * 0.5).astype(np.float32)
    fc_b = (rng.standard_normal(10) * 0.1).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["image", "conv_w", "conv_b"], ["conv"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["conv"], ["relu"]),
            helper.make_node("GlobalAveragePool", ["relu"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
            helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"], transB=1),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        ],
        "tiny_cnn",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [BATCH_DIM, 3, 16, 16])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [BATCH_DIM, 10])],
        [
            numpy_helper.from_array(conv_w, "conv_w"), numpy_helper.from_array(conv_b, "conv_b"),
            numpy_helper.from_array(fc_w, "fc_w"), numpy_helper.from_array(fc_b, "fc_b"),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def build_all():
    rng = np.random.default_rng(SEED)
    models = {}
    for name in LIGHT_MODELS:
        models[name] = lambda name=name: make_batch_dynamic(onnx.load(light_model_path(name)))
    models["squeezenet_random"] = lambda: randomize_constant_weights(
        make_batch_dynamic(onnx.load(light_model_path("squeezenet"))), np.random.default_rng(SEED + 1))
    models["linear_hand"] = make_linear_hand
    models["simple"] = make_simple
    models["identity_all_dtypes"] = make_identity_all_dtypes
    models["tiny_cnn"] = lambda: make_tiny_cnn(rng)
    models["reshape_rows_of_three"] = make_reshape_rows_of_three
    models["string_echo"] = make_string_echo
    return models


# Sensible per-model serving settings for `make run` (docs/model-config.md): a p99 SLO with room
# above the batch-1 latency measured on 2 CPU cores. Test models get no config file, so tests
# control their settings.
SERVING_CONFIGS = {
    "squeezenet": {"dnnscaler": {"slo_ms": 20}},
    "shufflenet": {"dnnscaler": {"slo_ms": 20}},
    "resnet50": {"dnnscaler": {"slo_ms": 150}},
    "inception_v1": {"dnnscaler": {"slo_ms": 100}},
    "inception_v2": {"dnnscaler": {"slo_ms": 100}},
    "densenet121": {"dnnscaler": {"slo_ms": 150}},
    "bvlc_alexnet": {"dnnscaler": {"slo_ms": 100}},
    "zfnet512": {"dnnscaler": {"slo_ms": 200}},
    "vgg19": {"dnnscaler": {"slo_ms": 800}},
}


def generator_fingerprint():
    with open(__file__, "rb") as f:
        source = f.read()
    return hashlib.sha256(source + onnx.__version__.encode()).hexdigest()[:16]


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repository", required=True)
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args()
    repo = os.path.abspath(args.repository)
    os.makedirs(repo, exist_ok=True)
    stamp_path = os.path.join(repo, ".generator")
    fingerprint = generator_fingerprint()
    models = build_all()
    current = os.path.exists(stamp_path) and open(stamp_path).read().strip() == fingerprint
    missing = [n for n in models if not os.path.exists(os.path.join(repo, n, "1", "model.onnx"))]
    if current and not missing and not args.force:
        print(f"setup: model repository {repo} up to date ({len(models)} models)")
        return 0
    for name, build in models.items():
        model = build()
        onnx.checker.check_model(model)
        target_dir = os.path.join(repo, name, "1")
        os.makedirs(target_dir, exist_ok=True)
        target = os.path.join(target_dir, "model.onnx")
        onnx.save(model, target + ".tmp")
        os.replace(target + ".tmp", target)
        print(f"setup: wrote {os.path.relpath(target, os.getcwd())}")
        if name in SERVING_CONFIGS:
            with open(os.path.join(repo, name, "config.json"), "w") as f:
                json.dump(SERVING_CONFIGS[name], f, indent=2)
                f.write("\n")
    with open(stamp_path, "w") as f:
        f.write(fingerprint + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
