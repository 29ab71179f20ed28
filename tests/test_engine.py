"""The forward-only engine: ONNX Runtime against eager for every model kind, the torch fallback and its reason,
threads, caching, Stop, no files, and the perturbation methods' maps through it against the plain torch forward."""

from __future__ import annotations

import io
import logging
import os
import threading

import pytest
import torch
import torchvision
from torch import nn

import explainers
import zoo
from core import progress
from core.model_state import hook_count
from explainers.context import Context
from metrics import engine as engine_mod
from metrics.engine import engine, torch_path

TOL = 1e-4


def eager(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x).float()


def assert_serves(model: nn.Module, x: torch.Tensor, backend: str = "onnxruntime") -> None:
    e = engine(model, x)
    assert e.backend == backend, e.describe()
    got = e(x)
    assert got.dtype == torch.float32 and got.device == x.device
    torch.testing.assert_close(got, eager(model, x), atol=TOL, rtol=0)


class FFT(nn.Module):
    """A conv followed by an FFT, which ONNX (opset 17, TorchScript exporter) cannot express."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.fft.fft2(self.bn(self.conv(x))).abs().mean(dim=(2, 3))


# ---------------------------------------------------------------------------------- every model kind


@pytest.mark.parametrize("name", ["synthetic_shapes", "synthetic_shapes_permuted"])
def test_synthetic_models_run_on_onnxruntime_within_1e4_of_eager(name: str) -> None:
    loaded = zoo.load_model(name)
    x = torch.randn(7, 3, 64, 64, generator=torch.Generator().manual_seed(0))  # 7: a remainder chunk too
    assert_serves(loaded.model, x)


def test_efficientnet_lite0_runs_on_onnxruntime_within_1e4_of_eager(lite0) -> None:
    x = lite0.preprocess(zoo.sample_images()["chelsea"])
    x = torch.cat([x, x.flip(-1), torch.zeros_like(x)])
    assert_serves(lite0.model, x)
    assert engine(lite0.model, x).describe().startswith("onnxruntime ")


@pytest.mark.parametrize("arch", ["resnet18", "mobilenet_v3_small", "densenet121"])
def test_torchvision_models_with_random_weights_run_on_onnxruntime(arch: str) -> None:
    torch.manual_seed(0)
    model = getattr(torchvision.models, arch)(weights=None).eval()
    assert_serves(model, torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(1)))


def test_uploaded_torchscript_model_runs_on_onnxruntime(shapes) -> None:
    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(shapes.model), buf)
    uploaded = zoo.load_torchscript(buf.getvalue(), input_size=64)
    assert isinstance(uploaded.model, torch.jit.ScriptModule)
    assert_serves(uploaded.model, torch.randn(5, 3, 64, 64, generator=torch.Generator().manual_seed(2)))


# ---------------------------------------------------------------------------------- the fallback


def test_an_op_onnx_cannot_express_falls_back_to_torch_with_its_reason(caplog) -> None:
    model = FFT().eval()
    x = torch.randn(5, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    with caplog.at_level(logging.WARNING, logger="metrics.engine"):
        e = engine(model, x)
    assert e.backend == "torch"
    assert "ONNX export failed" in e.reason and "fft" in e.reason
    assert e.describe().startswith("torch eager") and e.reason in e.describe()
    assert any(e.reason in r.getMessage() for r in caplog.records)  # logged
    torch.testing.assert_close(e(x), eager(model, x), atol=TOL, rtol=0)


def test_a_failed_check_against_eager_falls_back_to_torch(tiny, tiny_input, monkeypatch) -> None:
    monkeypatch.setattr(engine_mod, "TOLERANCE", -1.0)  # no difference passes: the check must refuse ONNX Runtime
    e = engine(tiny, tiny_input)
    assert e.backend == "torch" and "differs from eager" in e.reason
    torch.testing.assert_close(e(tiny_input), eager(tiny, tiny_input), atol=TOL, rtol=0)


def test_torch_path_folds_batchnorm_and_matches_eager(tiny) -> None:
    x = torch.randn(5, 3, 16, 16)
    e = torch_path(tiny, x)
    assert e.backend == "torch"
    torch.testing.assert_close(e(x), eager(tiny, x), atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------------- sharing, threads, state


def test_the_shared_model_is_untouched(tiny, tiny_input) -> None:
    tiny.train()  # even a model left in training mode: the engine works on an eval copy
    before = {k: v.clone() for k, v in tiny.state_dict().items()}
    flags = [p.requires_grad for p in tiny.parameters()]
    hooks = hook_count(tiny)
    e = engine(tiny, tiny_input)
    e(tiny_input)
    assert tiny.training and [p.requires_grad for p in tiny.parameters()] == flags and hook_count(tiny) == hooks
    for k, v in tiny.state_dict().items():
        assert torch.equal(v, before[k])
    torch.testing.assert_close(e(tiny_input), eager(tiny.eval(), tiny_input), atol=TOL, rtol=0)


def test_a_hook_on_the_model_while_the_engine_is_built_is_not_kept(tiny, tiny_input, monkeypatch) -> None:
    monkeypatch.setattr(engine_mod, "TOLERANCE", -1.0)  # the torch path: the one that could carry a module hook
    calls = []
    handle = tiny.conv1.register_forward_pre_hook(lambda *_: calls.append(1))
    try:
        e = engine(tiny, tiny_input)
    finally:
        handle.remove()
    calls.clear()
    e(tiny_input)
    assert calls == []


def test_one_engine_per_model_and_shape_built_once_even_by_eight_threads(tiny) -> None:
    x = torch.randn(3, 3, 16, 16)
    got: list[object] = []
    threads = [threading.Thread(target=lambda: got.append(engine(tiny, x))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 8 and all(e is got[0] for e in got)
    assert engine(tiny, torch.randn(1, 3, 16, 16)) is got[0]  # any batch size of the same (C,H,W)
    assert engine(tiny, torch.randn(1, 3, 20, 20)) is not got[0]  # another input size: another engine


def test_eight_threads_on_one_engine_give_the_numbers_of_one(shapes) -> None:
    """ONNX Runtime allows concurrent run() on one session (microsoft/onnxruntime#114): no lock, same numbers."""
    inputs = [torch.randn(6, 3, 64, 64, generator=torch.Generator().manual_seed(i)) for i in range(8)]
    e = engine(shapes.model, inputs[0])
    alone = [e(x) for x in inputs]
    together: dict[int, torch.Tensor] = {}

    def work(i: int) -> None:
        for _ in range(3):
            out = e(inputs[i])
            assert torch.equal(out, together.setdefault(i, out))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(torch.equal(together[i], alone[i]) for i in range(8))


def test_weights_changed_in_place_rebuild_the_engine(tiny, tiny_input) -> None:
    first = engine(tiny, tiny_input)
    with torch.no_grad():
        tiny.fc.weight.mul_(-2)  # what model randomization does to its private copy
    second = engine(tiny, tiny_input)
    assert second is not first
    torch.testing.assert_close(second(tiny_input), eager(tiny, tiny_input), atol=TOL, rtol=0)


def test_building_writes_no_file(tmp_path, monkeypatch) -> None:
    """The export goes to bytes in memory: nothing in the working directory or the temporary directory."""
    monkeypatch.chdir(tmp_path)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr("tempfile.tempdir", str(tmp))
    model = FFT().eval().conv  # a fresh model: the engine is built here
    x = torch.randn(2, 3, 16, 16)
    assert engine(model, x).backend == "onnxruntime"
    assert sorted(os.listdir(tmp_path)) == ["tmp"] and os.listdir(tmp) == []


def test_one_tick_per_chunk_and_a_reporter_can_stop_it(tiny) -> None:
    x = torch.randn(9, 3, 16, 16)
    e = engine(tiny, x)
    notes: list[str] = []
    with progress.reporting(notes.append):
        e(x)
    assert len(notes) == -(-9 // e.batch_size)

    def stop(_note: str) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt), progress.reporting(stop):
        e(x)


def test_probability_is_the_softmax_of_the_target(tiny, tiny_input) -> None:
    e = engine(tiny, tiny_input)
    t = torch.tensor([2, 0])
    want = eager(tiny, tiny_input).softmax(-1)[torch.arange(2), t]
    torch.testing.assert_close(e.probability(tiny_input, t), want, atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------------- the methods' maps through it


def _plain_forward(self: Context, x: torch.Tensor) -> torch.Tensor:
    """What the methods ran before the engine: the shared model itself, eager, no grad."""
    with torch.no_grad():
        return self.model(x).float()


# LIME's and KernelSHAP's surrogates are regressions on the forwards: their weights move with the ~1e-6 logit
# differences times the conditioning of the fit (LIME's Lasso, KernelSHAP's weighted least squares), so 1e-3
# relative to the map's scale; the other three are sums of probabilities, within 1e-4.
CASES = {
    "rise": ({"n_masks": 64, "batch_size": 16}, 1e-4),
    "scorecam": ({}, 1e-4),
    "occlusion": ({}, 1e-4),
    "lime": ({"n_samples": 60}, 1e-3),
    "kernel_shap": ({"n_samples": 60}, 1e-3),
}


@pytest.mark.parametrize("method", list(CASES))
def test_perturbation_maps_through_the_engine_equal_the_plain_torch_maps(shapes, method: str, monkeypatch) -> None:
    x = shapes.preprocess(zoo.sample_images()["shapes: circle"])
    params, tol = CASES[method]
    fast = explainers.explain(method, shapes, x, 0, **params)
    monkeypatch.setattr(Context, "forward", _plain_forward)
    plain = explainers.explain(method, shapes, x, 0, **params)
    scale = float(plain.abs().max()) or 1.0
    assert float((fast - plain).abs().max()) <= tol * scale


def test_the_numbers_do_not_depend_on_the_chunk_size(shapes) -> None:
    """ONNX Runtime computes each image alone: chunks of 1, 3 or 16 give bit-identical logits (maps and curves
    are then independent of the batch sizes measured on different machines or servers)."""
    x = torch.randn(16, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    e = engine(shapes.model, x)
    measured = e.batch_size
    try:
        outs = []
        for bs in (1, 3, 16):
            e.batch_size = bs
            outs.append(e(x))
    finally:
        e.batch_size = measured
    assert all(torch.equal(o, outs[0]) for o in outs)
