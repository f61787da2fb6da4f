"""The note on a built-in layer run twice in one forward pass whose own tensors pass (it may be blamed for
tensors upstream of it): its sentence in full, as the reviewer's s6_multi.py gives it (a Tanh in a Sequential
encoder run on both inputs of a siamese model)."""

from __future__ import annotations

import numpy as np

import minidl as md


class Siamese(md.Model):
    """``enc(a) - enc(b)`` with one encoder run twice: its built-in layers keep the second call's cache."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = md.Sequential(md.Dense(3, 4, rng=0), md.Tanh())

    def forward(self, x: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        a, b = x
        return self.enc(a) - self.enc(b)

    def backward(self, grad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        grad_b = self.enc.backward(-grad)
        grad_a = self.enc.backward(grad)
        return grad_a, grad_b


def test_the_note_on_a_built_in_layer_run_twice_reads_as_a_sentence() -> None:
    rng = np.random.default_rng(0)
    report = md.GradientChecker(Siamese(), inputs=(rng.normal(size=(5, 3)), rng.normal(size=(5, 3)))).run()
    assert not report["enc.0.W"].passed
    notes = [n for n in report.notes if n.startswith("layer 'enc.1' (Tanh) ran 2 times")]
    assert notes == [
        "layer 'enc.1' (Tanh) ran 2 times in one forward pass, and 'enc.0.W' fails (they may be upstream of it, or "
        "not): this may be the cause: every built-in layer keeps one forward cache and computes every backward call "
        "from the last call's cache, so the gradients it gives are wrong in the model although its backward is right "
        "for one call (use a layer per call sharing the parameters, d2.W = d1.W)"]
