"""Helpers shared by the interop round-trip scripts: the check runner, exact comparisons and
linear_hand's weights (scripts/make_models.py)."""

import traceback

import numpy as np

# linear_hand: y = x @ W + b (scripts/make_models.py)
LINEAR_W = np.array([[1.0, -1.0], [2.0, 0.5], [-3.0, 4.0]], dtype=np.float32)
LINEAR_B = np.array([0.5, -2.0], dtype=np.float32)


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def run(self, name, fn):
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - every failure is a failed check
            self.failed += 1
            print(f"FAIL {name}: {type(exc).__name__}: {exc}")
            if not isinstance(exc, AssertionError):
                traceback.print_exc(limit=3)
        else:
            self.passed += 1
            print(f"ok   {name}")


def expect(cond, msg):
    if not cond:
        raise AssertionError(msg)


def expect_array(got, want, what):
    expect(got is not None, f"{what}: output missing")
    expect(got.dtype == want.dtype, f"{what}: dtype {got.dtype}, expected {want.dtype}")
    expect(got.shape == want.shape, f"{what}: shape {got.shape}, expected {want.shape}")
    if not np.array_equal(got, want):
        bad = np.argwhere(got != want)[:5].tolist()
        raise AssertionError(f"{what}: values differ at {bad}: got {got.ravel()[:8]}, expected {want.ravel()[:8]}")
