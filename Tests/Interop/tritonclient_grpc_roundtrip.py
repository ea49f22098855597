#!/usr/bin/env python3
"""Round trips through Triton's own Python gRPC client (tritonclient.grpc 2.51.0).

Run with the client venv (scripts/setup_clients), against a server whose gRPC port serves at
least `simple`, `linear_hand` and `string_echo`:

    .venv-client/bin/python Tests/Interop/tritonclient_grpc_roundtrip.py --url 127.0.0.1:8001

Every output is checked exactly against values computed here with numpy; every error is
checked for its gRPC status code and for a message that names the problem. Prints one line per
check and `N passed, M failed`; exits 1 if any check failed.
"""

import argparse
import queue
import sys

import grpc
import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from interop_checks import LINEAR_B, LINEAR_W, Checks, expect, expect_array  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default="127.0.0.1:8001", help="host:port of the gRPC endpoint")
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()

    rng = np.random.default_rng(args.seed)
    client = grpcclient.InferenceServerClient(url=args.url)
    # The raw stub, for requests tritonclient refuses to build (malformed on purpose).
    channel = grpc.insecure_channel(args.url)
    stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
    c = Checks()

    # --- health and metadata -------------------------------------------------------------
    c.run("server live", lambda: expect(client.is_server_live() is True, "is_server_live() is not True"))
    c.run("server ready", lambda: expect(client.is_server_ready() is True, "is_server_ready() is not True"))

    def server_metadata():
        md = client.get_server_metadata()
        expect(md.name == "dnnscaler", f"name {md.name!r}")
        expect("statistics" in md.extensions, f"extensions {list(md.extensions)}")

    c.run("server metadata", server_metadata)
    for model in ("simple", "linear_hand"):
        c.run(f"model ready {model}", lambda m=model: expect(client.is_model_ready(m) is True, f"{m} not ready"))

    def simple_metadata():
        md = client.get_model_metadata("simple")
        expect(md.name == "simple" and md.platform == "onnxruntime_onnx", f"{md.name} {md.platform}")
        got = [(t.name, t.datatype, list(t.shape)) for t in md.inputs]
        expect(got == [("INPUT0", "INT32", [-1, 16]), ("INPUT1", "INT32", [-1, 16])], f"inputs {got}")
        expect(list(md.versions) == ["1"], f"versions {list(md.versions)}")

    def linear_config():
        cfg = client.get_model_config("linear_hand").config
        expect(cfg.name == "linear_hand", f"name {cfg.name!r}")
        expect(cfg.max_batch_size > 0, f"max_batch_size {cfg.max_batch_size}")
        expect([(i.name, i.data_type, list(i.dims)) for i in cfg.input] == [("x", 11, [3])], f"input {cfg.input}")
        expect([(o.name, list(o.dims)) for o in cfg.output] == [("y", [2])], f"output {cfg.output}")
        expect(cfg.backend == "onnxruntime" and len(cfg.instance_group) == 1, f"{cfg.backend} {cfg.instance_group}")
        expect(cfg.HasField("dynamic_batching"), "no dynamic_batching")

    c.run("model metadata simple", simple_metadata)
    c.run("model config linear_hand", linear_config)

    # --- inference -------------------------------------------------------------------------
    def infer_simple(batch, request_id=""):
        a = rng.integers(-(2**20), 2**20, size=(batch, 16), dtype=np.int32)
        b = rng.integers(-(2**20), 2**20, size=(batch, 16), dtype=np.int32)
        inputs = [grpcclient.InferInput("INPUT0", [batch, 16], "INT32"), grpcclient.InferInput("INPUT1", [batch, 16], "INT32")]
        inputs[0].set_data_from_numpy(a)
        inputs[1].set_data_from_numpy(b)
        res = client.infer("simple", inputs, request_id=request_id)
        expect_array(res.as_numpy("OUTPUT0"), a + b, "OUTPUT0")
        expect_array(res.as_numpy("OUTPUT1"), a - b, "OUTPUT1")
        resp = res.get_response()
        expect(resp.model_name == "simple" and resp.model_version == "1", f"{resp.model_name} {resp.model_version}")
        expect(resp.id == request_id, f"id {resp.id!r}, expected {request_id!r}")

    c.run("infer simple batch 1", lambda: infer_simple(1))
    c.run("infer simple batch 4, id echoed", lambda: infer_simple(4, "grpc-42"))

    def simple_one_output():
        a = np.arange(16, dtype=np.int32).reshape(1, 16)
        b = np.full((1, 16), 7, dtype=np.int32)
        inputs = [grpcclient.InferInput("INPUT0", [1, 16], "INT32"), grpcclient.InferInput("INPUT1", [1, 16], "INT32")]
        inputs[0].set_data_from_numpy(a)
        inputs[1].set_data_from_numpy(b)
        res = client.infer("simple", inputs, outputs=[grpcclient.InferRequestedOutput("OUTPUT1")])
        expect_array(res.as_numpy("OUTPUT1"), a - b, "OUTPUT1")
        expect([o.name for o in res.get_response().outputs] == ["OUTPUT1"], "more than the requested output")

    c.run("infer simple one requested output", simple_one_output)

    # System shared memory (the server runs with --allow-client-shm): INPUT0 and OUTPUT0 in shared
    # memory, INPUT1 and OUTPUT1 in the message, so the raw entries must line up with the rest.
    def simple_mixed_shared_memory():
        import os

        import tritonclient.utils.shared_memory as shm

        a = rng.integers(-(2**20), 2**20, size=(1, 16), dtype=np.int32)
        b = rng.integers(-(2**20), 2**20, size=(1, 16), dtype=np.int32)
        key = f"/interop_grpc_{os.getpid()}"
        handle = shm.create_shared_memory_region("grpc_region", key, 256)
        try:
            client.unregister_system_shared_memory()
            shm.set_shared_memory_region(handle, [a])
            client.register_system_shared_memory("grpc_region", key, 256)
            status = client.get_system_shared_memory_status(as_json=True)
            expect(list(status.get("regions", {})) == ["grpc_region"], f"status {status}")
            inputs = [grpcclient.InferInput("INPUT0", [1, 16], "INT32"), grpcclient.InferInput("INPUT1", [1, 16], "INT32")]
            inputs[0].set_shared_memory("grpc_region", 64)
            inputs[1].set_data_from_numpy(b)
            outputs = [grpcclient.InferRequestedOutput("OUTPUT0"), grpcclient.InferRequestedOutput("OUTPUT1")]
            outputs[0].set_shared_memory("grpc_region", 64, offset=128)
            res = client.infer("simple", inputs, outputs=outputs)
            expect_array(shm.get_contents_as_numpy(handle, np.int32, [1, 16], offset=128), a + b, "OUTPUT0 (shared memory)")
            expect_array(res.as_numpy("OUTPUT1"), a - b, "OUTPUT1 (message)")
            client.unregister_system_shared_memory("grpc_region")
            status = client.get_system_shared_memory_status(as_json=True)
            expect(not status.get("regions"), f"regions left after unregister: {status}")
        finally:
            shm.destroy_shared_memory_region(handle)

    c.run("infer simple with shared memory and message tensors", simple_mixed_shared_memory)

    def infer_linear(rows):
        x = (rng.integers(-16, 17, size=(rows, 3)) / 2.0).astype(np.float32)
        inp = grpcclient.InferInput("x", [rows, 3], "FP32")
        inp.set_data_from_numpy(x)
        expect_array(client.infer("linear_hand", [inp]).as_numpy("y"), (x @ LINEAR_W + LINEAR_B).astype(np.float32), f"y ({rows} rows)")

    for rows in (1, 5, 64):
        c.run(f"infer linear_hand {rows} rows", lambda r=rows: infer_linear(r))

    def infer_strings():
        text = np.array([[b"a", "\u00fcn\u00ef".encode()], [b"", b"x y"]], dtype=np.object_)
        digits = np.array([[b"2.5", b"-10"], [b"1e3", b"0.125"]], dtype=np.object_)
        inputs = [grpcclient.InferInput("text", [2, 2], "BYTES"), grpcclient.InferInput("digits", [2, 2], "BYTES")]
        inputs[0].set_data_from_numpy(text)
        inputs[1].set_data_from_numpy(digits)
        res = client.infer("string_echo", inputs)
        echo = res.as_numpy("echo")
        expect(echo is not None and list(echo.ravel()) == list(text.ravel()), f"echo {echo}")
        expect_array(res.as_numpy("number"), np.array([[2.5, -10], [1000, 0.125]], dtype=np.float32), "number")

    c.run("infer string_echo BYTES", infer_strings)

    def typed_contents():
        # InferTensorContents instead of raw_input_contents (tritonclient always sends raw).
        request = service_pb2.ModelInferRequest(model_name="linear_hand")
        tensor = request.inputs.add(name="x", datatype="FP32", shape=[2, 3])
        tensor.contents.fp32_contents.extend([1, 2, 3, 0.5, -1, 2])
        response = stub.ModelInfer(request)
        y = np.frombuffer(response.raw_output_contents[0], dtype=np.float32).reshape(2, 2)
        expect_array(y, np.array([[-3.5, 10.0], [-7.0, 5.0]], dtype=np.float32), "y (typed contents, by hand)")

    c.run("infer linear_hand with typed contents", typed_contents)

    def streaming():
        results = queue.Queue()
        client.start_stream(callback=lambda result, error: results.put((result, error)))
        sent = []
        for i in range(5):
            x = (rng.integers(-16, 17, size=(1, 3)) / 2.0).astype(np.float32)
            inp = grpcclient.InferInput("x", [1, 3], "FP32")
            inp.set_data_from_numpy(x)
            client.async_stream_infer("linear_hand", [inp], request_id=f"s{i}")
            sent.append(x)
        bad = grpcclient.InferInput("x", [1, 4], "FP32")
        bad.set_data_from_numpy(np.zeros((1, 4), dtype=np.float32))
        client.async_stream_infer("linear_hand", [bad], request_id="bad")
        got = [results.get(timeout=30) for _ in range(6)]
        client.stop_stream()
        for i, (result, error) in enumerate(got[:5]):
            expect(error is None, f"stream answer {i}: {error}")
            expect(result.get_response().id == f"s{i}", f"stream answer {i} has id {result.get_response().id}")
            expect_array(result.as_numpy("y"), (sent[i] @ LINEAR_W + LINEAR_B).astype(np.float32), f"stream y {i}")
        expect(got[5][1] is not None and "shape" in str(got[5][1]), f"bad stream request answered {got[5]}")

    c.run("stream infer linear_hand (5 good, 1 bad)", streaming)

    # --- errors: status code and message ---------------------------------------------------
    def expect_rpc_error(call, code, needle, what):
        try:
            call()
        except grpc.RpcError as exc:
            expect(exc.code() == code, f"{what}: status {exc.code()}, expected {code}")
            expect(needle in (exc.details() or ""), f"{what}: message {exc.details()!r} lacks {needle!r}")
            return
        raise AssertionError(f"{what}: no error")

    def request(model="linear_hand", name="x", datatype="FP32", shape=(1, 3), raw=None):
        message = service_pb2.ModelInferRequest(model_name=model)
        message.inputs.add(name=name, datatype=datatype, shape=list(shape))
        message.raw_input_contents.append(raw if raw is not None else np.zeros(shape, dtype=np.float32).tobytes())
        return message

    cases = [
        ("unknown model", request(model="no_such_model"), grpc.StatusCode.NOT_FOUND, "unknown model"),
        ("unknown version", service_pb2.ModelInferRequest(model_name="linear_hand", model_version="7"), grpc.StatusCode.NOT_FOUND, "no version"),
        ("unknown input", request(name="not_x"), grpc.StatusCode.INVALID_ARGUMENT, "not_x"),
        ("wrong datatype", request(datatype="INT64", raw=np.zeros((1, 3), dtype=np.int64).tobytes()), grpc.StatusCode.INVALID_ARGUMENT, "x"),
        ("wrong shape", request(shape=(1, 4)), grpc.StatusCode.INVALID_ARGUMENT, "shape"),
        ("short raw contents", request(raw=b"\0" * 5), grpc.StatusCode.INVALID_ARGUMENT, "raw_input_contents has 5 bytes"),
        ("unsupported datatype", request(datatype="FP8"), grpc.StatusCode.INVALID_ARGUMENT, "unsupported datatype"),
        ("datatype not the model's", request(datatype="BYTES"), grpc.StatusCode.INVALID_ARGUMENT, "must be FP32, got BYTES"),
        ("overflowing shape", request(shape=(2**40, 2**40), raw=b""), grpc.StatusCode.INVALID_ARGUMENT, "x"),
        ("no model name", service_pb2.ModelInferRequest(), grpc.StatusCode.INVALID_ARGUMENT, "names no model"),
    ]
    for what, message, code, needle in cases:
        c.run(f"error: {what} -> {code.name}", lambda m=message, k=code, n=needle, w=what: expect_rpc_error(lambda: stub.ModelInfer(m), k, n, w))
    c.run(
        "error: metadata of unknown model -> NOT_FOUND",
        lambda: expect_rpc_error(lambda: stub.ModelMetadata(service_pb2.ModelMetadataRequest(name="nope")), grpc.StatusCode.NOT_FOUND, "unknown model", "metadata"),
    )
    c.run("unknown model not ready", lambda: expect_rpc_error(lambda: stub.ModelReady(service_pb2.ModelReadyRequest(name="nope")), grpc.StatusCode.NOT_FOUND, "unknown model", "ready"))

    def many_calls_in_flight():
        # 300 calls at once on one channel, each with 600 KB: more open HTTP/2 streams than
        # swift-nio-http2's default limit of 100. Each must get its own INVALID_ARGUMENT, none a
        # connection-wide GOAWAY (UNAVAILABLE), which is what happened before the server
        # advertised its stream limit.
        message = request(shape=(1, 3), raw=b"\0" * 600_000)
        futures = [stub.ModelInfer.future(message, timeout=60) for _ in range(300)]
        codes = {}
        for future in futures:
            try:
                future.result()
                code = grpc.StatusCode.OK
            except grpc.RpcError as exc:
                code = exc.code()
            codes[code.name] = codes.get(code.name, 0) + 1
        expect(codes == {"INVALID_ARGUMENT": 300}, f"status counts {codes}")

    c.run("300 calls in flight on one connection", many_calls_in_flight)

    # --- statistics and repository ---------------------------------------------------------
    def statistics():
        s = client.get_inference_statistics("simple").model_stats[0]
        expect(s.name == "simple" and s.inference_count > 0, f"{s.name} {s.inference_count}")
        st = s.inference_stats
        expect(st.success.count > 0 and st.compute_input.count == st.compute_infer.count == st.compute_output.count, f"{st}")

    def repository_index():
        index = {m.name: m for m in client.get_model_repository_index().models}
        expect(index.get("simple") is not None and index["simple"].state == "READY", f"index {list(index)}")

    c.run("statistics simple", statistics)
    c.run("repository index", repository_index)

    client.close()
    channel.close()
    print(f"{c.passed} passed, {c.failed} failed")
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
