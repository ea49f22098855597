#!/usr/bin/env python3
"""Round trips through Triton's own Python HTTP client (tritonclient.http 2.51.0).

Run with the client venv (scripts/setup_clients), against a server that serves at least
`simple`, `linear_hand` and `string_echo` (tiny_cnn is checked when it is loaded):

    .venv-client/bin/python Tests/Interop/tritonclient_roundtrip.py --url 127.0.0.1:8000

Every output is checked exactly against values computed here with numpy. Prints one line per
check and `N passed, M failed`; exits 1 if any check failed.
"""

import argparse
import json
import socket
import sys

import numpy as np
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from interop_checks import LINEAR_B, LINEAR_W, Checks, expect, expect_array  # noqa: E402


def expect_tensor_meta(tensors, want, what):
    got = [(t["name"], t["datatype"], list(t["shape"])) for t in tensors]
    expect(got == want, f"{what}: {got}, expected {want}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default="127.0.0.1:8000", help="host:port of the HTTP endpoint")
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()

    rng = np.random.default_rng(args.seed)
    client = httpclient.InferenceServerClient(url=args.url, network_timeout=60.0)
    c = Checks()

    # --- health and metadata -------------------------------------------------------------
    c.run("server live", lambda: expect(client.is_server_live() is True, "is_server_live() is not True"))
    c.run("server ready", lambda: expect(client.is_server_ready() is True, "is_server_ready() is not True"))

    def server_metadata():
        md = client.get_server_metadata()
        expect(isinstance(md.get("name"), str) and md["name"], f"no name: {md}")
        expect(isinstance(md.get("version"), str), f"no version: {md}")
        ext = md.get("extensions")
        expect(isinstance(ext, list), f"no extensions list: {md}")
        expect("binary_tensor_data" in ext, f"binary_tensor_data not advertised: {ext}")

    c.run("server metadata", server_metadata)

    for model in ("simple", "linear_hand"):
        c.run(f"model ready {model}", lambda m=model: expect(client.is_model_ready(m) is True, f"{m} not ready"))

    def simple_metadata():
        md = client.get_model_metadata("simple")
        expect(md.get("name") == "simple", f"name {md.get('name')!r}")
        expect(md.get("platform") == "onnxruntime_onnx", f"platform {md.get('platform')!r}")
        expect_tensor_meta(md["inputs"], [("INPUT0", "INT32", [-1, 16]), ("INPUT1", "INT32", [-1, 16])], "simple inputs")
        expect_tensor_meta(md["outputs"], [("OUTPUT0", "INT32", [-1, 16]), ("OUTPUT1", "INT32", [-1, 16])], "simple outputs")

    def linear_metadata():
        md = client.get_model_metadata("linear_hand")
        expect(md.get("name") == "linear_hand", f"name {md.get('name')!r}")
        expect_tensor_meta(md["inputs"], [("x", "FP32", [-1, 3])], "linear_hand inputs")
        expect_tensor_meta(md["outputs"], [("y", "FP32", [-1, 2])], "linear_hand outputs")
        versions = md.get("versions")
        if versions is not None:
            expect("1" in versions, f"versions {versions}")

    def linear_config():
        cfg = client.get_model_config("linear_hand")
        mbs = int(cfg.get("max_batch_size", 0))
        expect(mbs > 0, f"max_batch_size {cfg.get('max_batch_size')!r}")
        expect([i["name"] for i in cfg.get("input", [])] == ["x"], f"config input {cfg.get('input')}")

    c.run("model metadata simple", simple_metadata)
    c.run("model metadata linear_hand", linear_metadata)
    c.run("model config linear_hand", linear_config)

    # --- simple: binary and JSON, both directions ----------------------------------------
    def infer_simple(batch, binary_in, binary_out, request_id=""):
        a = rng.integers(-(2**20), 2**20, size=(batch, 16), dtype=np.int32)
        b = rng.integers(-(2**20), 2**20, size=(batch, 16), dtype=np.int32)
        inputs = [httpclient.InferInput("INPUT0", [batch, 16], "INT32"), httpclient.InferInput("INPUT1", [batch, 16], "INT32")]
        inputs[0].set_data_from_numpy(a, binary_data=binary_in)
        inputs[1].set_data_from_numpy(b, binary_data=binary_in)
        outputs = [
            httpclient.InferRequestedOutput("OUTPUT0", binary_data=binary_out),
            httpclient.InferRequestedOutput("OUTPUT1", binary_data=binary_out),
        ]
        res = client.infer("simple", inputs, outputs=outputs, request_id=request_id)
        expect_array(res.as_numpy("OUTPUT0"), a + b, "OUTPUT0")
        expect_array(res.as_numpy("OUTPUT1"), a - b, "OUTPUT1")
        resp = res.get_response()
        expect(resp.get("model_name") == "simple", f"model_name {resp.get('model_name')!r}")
        if request_id:
            expect(resp.get("id") == request_id, f"id {resp.get('id')!r}, expected {request_id!r}")
        for out in resp["outputs"]:
            has_size = "binary_data_size" in (out.get("parameters") or {})
            expect(has_size == binary_out, f"{out['name']}: binary_data_size present={has_size}, binary requested={binary_out}")
            expect(("data" in out) != binary_out, f"{out['name']}: 'data' present={'data' in out}, binary requested={binary_out}")

    c.run("infer simple binary in/out", lambda: infer_simple(1, True, True))
    c.run("infer simple JSON in/out", lambda: infer_simple(1, False, False))
    c.run("infer simple binary in, JSON out", lambda: infer_simple(2, True, False))
    c.run("infer simple JSON in, binary out", lambda: infer_simple(2, False, True))
    c.run("infer simple batch 4 binary, id echoed", lambda: infer_simple(4, True, True, request_id="interop-42"))

    def simple_only_one_output():
        a = np.arange(16, dtype=np.int32).reshape(1, 16)
        b = np.full((1, 16), 7, dtype=np.int32)
        inputs = [httpclient.InferInput("INPUT0", [1, 16], "INT32"), httpclient.InferInput("INPUT1", [1, 16], "INT32")]
        inputs[0].set_data_from_numpy(a)
        inputs[1].set_data_from_numpy(b)
        res = client.infer("simple", inputs, outputs=[httpclient.InferRequestedOutput("OUTPUT1")])
        expect_array(res.as_numpy("OUTPUT1"), a - b, "OUTPUT1")
        names = [o["name"] for o in res.get_response()["outputs"]]
        expect(names == ["OUTPUT1"], f"outputs {names}, expected only OUTPUT1")

    c.run("infer simple one requested output", simple_only_one_output)

    def simple_default_outputs():
        a = np.full((1, 16), 3, dtype=np.int32)
        b = np.arange(16, dtype=np.int32).reshape(1, 16)
        inputs = [httpclient.InferInput("INPUT0", [1, 16], "INT32"), httpclient.InferInput("INPUT1", [1, 16], "INT32")]
        inputs[0].set_data_from_numpy(a, binary_data=False)
        inputs[1].set_data_from_numpy(b, binary_data=False)
        res = client.infer("simple", inputs)  # no outputs listed: all, as JSON
        expect_array(res.as_numpy("OUTPUT0"), a + b, "OUTPUT0")
        expect_array(res.as_numpy("OUTPUT1"), a - b, "OUTPUT1")

    c.run("infer simple all outputs by default", simple_default_outputs)

    # --- system shared memory (the server runs with --allow-client-shm) -------------------
    def simple_through_shared_memory():
        import os

        import tritonclient.utils.shared_memory as shm

        a = rng.integers(-(2**20), 2**20, size=(2, 16), dtype=np.int32)
        b = rng.integers(-(2**20), 2**20, size=(2, 16), dtype=np.int32)
        suffix = os.getpid()
        in_handle = shm.create_shared_memory_region("interop_in", f"/interop_in_{suffix}", 256)
        out_handle = shm.create_shared_memory_region("interop_out", f"/interop_out_{suffix}", 256)
        try:
            client.unregister_system_shared_memory()
            shm.set_shared_memory_region(in_handle, [a, b])
            client.register_system_shared_memory("interop_in", f"/interop_in_{suffix}", 256)
            client.register_system_shared_memory("interop_out", f"/interop_out_{suffix}", 256)
            status = client.get_system_shared_memory_status()
            names = sorted(r["name"] for r in status)
            expect(names == ["interop_in", "interop_out"], f"registered regions {names}")
            inputs = [httpclient.InferInput("INPUT0", [2, 16], "INT32"), httpclient.InferInput("INPUT1", [2, 16], "INT32")]
            inputs[0].set_shared_memory("interop_in", 128)
            inputs[1].set_shared_memory("interop_in", 128, offset=128)
            outputs = [httpclient.InferRequestedOutput("OUTPUT0"), httpclient.InferRequestedOutput("OUTPUT1", binary_data=True)]
            outputs[0].set_shared_memory("interop_out", 128)
            res = client.infer("simple", inputs, outputs=outputs)
            # As in Triton's own shared-memory example: the output is listed, its data is in the region.
            out0 = res.get_output("OUTPUT0")
            expect(out0 is not None and "data" not in out0, f"OUTPUT0 entry {out0}")
            expect(list(out0["shape"]) == [2, 16], f"OUTPUT0 shape {out0['shape']}")
            got = shm.get_contents_as_numpy(out_handle, np.int32, [2, 16])
            expect_array(got, a + b, "OUTPUT0 (shared memory)")
            expect_array(res.as_numpy("OUTPUT1"), a - b, "OUTPUT1 (body)")
            client.unregister_system_shared_memory("interop_in")
            client.unregister_system_shared_memory("interop_out")
            expect(client.get_system_shared_memory_status() == [], "regions left after unregister")
        finally:
            shm.destroy_shared_memory_region(in_handle)
            shm.destroy_shared_memory_region(out_handle)

    c.run("infer simple through system shared memory", simple_through_shared_memory)

    # --- linear_hand: several rows, exact float results ----------------------------------
    def infer_linear(rows, binary):
        # integers and halves: every product and sum is exact in float32, in any order
        x = (rng.integers(-16, 17, size=(rows, 3)) / 2.0).astype(np.float32)
        want = (x @ LINEAR_W + LINEAR_B).astype(np.float32)
        inp = httpclient.InferInput("x", [rows, 3], "FP32")
        inp.set_data_from_numpy(x, binary_data=binary)
        res = client.infer("linear_hand", [inp], outputs=[httpclient.InferRequestedOutput("y", binary_data=binary)])
        expect_array(res.as_numpy("y"), want, f"y ({rows} rows)")

    def linear_by_hand():
        x = np.array([[1, 2, 3], [0.5, -1, 2]], dtype=np.float32)
        want = np.array([[-3.5, 10.0], [-7.0, 5.0]], dtype=np.float32)  # worked by hand
        inp = httpclient.InferInput("x", [2, 3], "FP32")
        inp.set_data_from_numpy(x, binary_data=False)
        res = client.infer("linear_hand", [inp], outputs=[httpclient.InferRequestedOutput("y", binary_data=False)])
        expect_array(res.as_numpy("y"), want, "y (by hand)")

    c.run("infer linear_hand by hand", linear_by_hand)
    for rows, binary in ((1, True), (5, True), (5, False), (17, True), (64, False)):
        c.run(f"infer linear_hand {rows} rows {'binary' if binary else 'JSON'}", lambda r=rows, b=binary: infer_linear(r, b))

    # --- string_echo: BYTES tensors (numpy object arrays) both ways ----------------------
    def infer_strings(binary):
        text = np.array([[b"a", "\u00fcn\u00ef".encode()], [b"", b"x y"], [b"7", b"tab\there"]], dtype=np.object_)
        digits = np.array([[b"2.5", b"-10"], [b"1e3", b"0.125"], [b"0", b"-0.5"]], dtype=np.object_)
        inputs = [httpclient.InferInput("text", [3, 2], "BYTES"), httpclient.InferInput("digits", [3, 2], "BYTES")]
        inputs[0].set_data_from_numpy(text, binary_data=binary)
        inputs[1].set_data_from_numpy(digits, binary_data=binary)
        res = client.infer("string_echo", inputs, outputs=[
            httpclient.InferRequestedOutput("echo", binary_data=binary),
            httpclient.InferRequestedOutput("number", binary_data=binary)])
        echo = res.as_numpy("echo")
        expect(echo is not None and echo.shape == (3, 2), f"echo shape {None if echo is None else echo.shape}")
        got = [e if isinstance(e, bytes) else str(e).encode() for e in echo.ravel()]
        expect(got == list(text.ravel()), f"echo {got}, expected {list(text.ravel())}")
        expect_array(res.as_numpy("number"), np.array([[2.5, -10], [1000, 0.125], [0, -0.5]], dtype=np.float32), "number")

    for binary in (True, False):
        c.run(f"infer string_echo BYTES {'binary' if binary else 'JSON'}", lambda b=binary: infer_strings(b))

    # --- tiny_cnn (if loaded): shape and probabilities -----------------------------------
    def tiny_cnn():
        md = client.get_model_metadata("tiny_cnn")
        iname, oname = md["inputs"][0]["name"], md["outputs"][0]["name"]
        x = rng.standard_normal((3, 3, 16, 16)).astype(np.float32)
        inp = httpclient.InferInput(iname, list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        p = client.infer("tiny_cnn", [inp]).as_numpy(oname)
        expect(p is not None and p.shape == (3, 10) and p.dtype == np.float32, f"output {None if p is None else (p.shape, p.dtype)}")
        expect(np.allclose(p.sum(axis=1), 1.0, atol=1e-5), f"rows do not sum to 1: {p.sum(axis=1)}")
        # a batch of 3 equals three batch-1 runs
        for i in range(3):
            one = httpclient.InferInput(iname, [1, 3, 16, 16], "FP32")
            one.set_data_from_numpy(x[i : i + 1])
            q = client.infer("tiny_cnn", [one]).as_numpy(oname)
            expect(np.allclose(q[0], p[i], rtol=1e-5, atol=1e-6), f"row {i}: batch-1 {q[0]} vs batch-3 {p[i]}")

    try:
        tiny_loaded = client.is_model_ready("tiny_cnn")
    except InferenceServerException:
        tiny_loaded = False
    if tiny_loaded:
        c.run("infer tiny_cnn batch 3 (softmax rows, equals batch-1 runs)", tiny_cnn)

    # --- errors ---------------------------------------------------------------------------
    def expect_error(fn, needle, what):
        try:
            fn()
        except InferenceServerException as exc:
            msg = exc.message() or ""
            expect(needle in msg, f"{what}: error {msg!r} does not contain {needle!r}")
            return exc
        raise AssertionError(f"{what}: no error")

    def unknown_model_infer():
        inp = httpclient.InferInput("x", [1, 3], "FP32")
        inp.set_data_from_numpy(np.zeros((1, 3), dtype=np.float32))
        expect_error(lambda: client.infer("no_such_model", [inp]), "unknown model", "infer on unknown model")

    c.run("unknown model: metadata error", lambda: expect_error(lambda: client.get_model_metadata("no_such_model"), "unknown model", "metadata"))
    c.run("unknown model: infer error", unknown_model_infer)
    c.run("unknown model: not ready", lambda: expect(client.is_model_ready("no_such_model") is False, "unknown model reported ready"))

    def wrong_input_name():
        inp = httpclient.InferInput("not_x", [1, 3], "FP32")
        inp.set_data_from_numpy(np.zeros((1, 3), dtype=np.float32))
        try:
            client.infer("linear_hand", [inp])
        except InferenceServerException as exc:
            expect(exc.message(), "empty error message")
            return
        raise AssertionError("no error for an input the model does not have")

    c.run("bad input name: error", wrong_input_name)

    # --- statistics (advertised): counters moved ------------------------------------------
    def statistics():
        st = client.get_inference_statistics("simple")
        ms = st["model_stats"]
        expect(len(ms) >= 1 and ms[0]["name"] == "simple", f"model_stats {ms}")
        s = ms[0]
        expect(int(s["inference_count"]) > 0, f"inference_count {s['inference_count']}")
        expect(int(s["inference_stats"]["success"]["count"]) > 0, f"success {s['inference_stats']['success']}")

    c.run("statistics simple", statistics)

    def expect_continue():
        # curl and other clients send `Expect: 100-continue` with a large body and wait (curl 1 s)
        # for the server's go-ahead: it must come at once, then the request is served as usual.
        host, port = args.url.rsplit(":", 1)
        values = list(range(16))
        body = json.dumps({"inputs": [{"name": name, "shape": [1, 16], "datatype": "INT32", "data": values}
                                      for name in ("INPUT0", "INPUT1")]}).encode()
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall((f"POST /v2/models/simple/infer HTTP/1.1\r\nHost: {args.url}\r\n"
                          f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                          "Expect: 100-continue\r\n\r\n").encode())
            sock.settimeout(0.5)
            interim = sock.recv(4096)
            expect(interim.startswith(b"HTTP/1.1 100"), f"no 100 Continue within 0.5 s: {interim[:60]!r}")
            sock.settimeout(10)
            sock.sendall(body)
            answer = b""
            while b"\r\n\r\n" not in answer:
                answer += sock.recv(65536)
            head, rest = answer.split(b"\r\n\r\n", 1)
            expect(head.startswith(b"HTTP/1.1 200"), f"final status {head[:40]!r}")
            length = int(next(line.split(b":", 1)[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length")))
            while len(rest) < length:
                rest += sock.recv(65536)
        outputs = {o["name"]: o["data"] for o in json.loads(rest)["outputs"]}
        expect(outputs.get("OUTPUT0") == [2 * v for v in values], f"OUTPUT0 {outputs.get('OUTPUT0')}")

    c.run("expect 100-continue", expect_continue)

    client.close()
    print(f"{c.passed} passed, {c.failed} failed")
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
