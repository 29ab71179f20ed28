"""PatternNet and PatternAttribution: the paper's linear toy (oracle), a slow reference written from the paper (loops)
against the fast implementation, the properties every pattern has, the store, and the model left as it was."""

from __future__ import annotations

import json
import struct
import threading

import numpy as np
import pytest
import torch
from torch import nn

import explainers
from core import progress
from core.errors import InputError, MethodNotApplicable, ParameterError
from core.model_state import hook_count, is_busy, using
from explainers import pattern_store
from explainers.canonical import canonical_copy
from explainers.context import Context
from explainers.patternnet import pattern_backward
from explainers.patterns import ESTIMATORS, Patterns, fit, fit_estimators, pattern_layers
from tests.conftest import make_tiny

# ------------------------------------------------------------------------------------------------ the paper's toy


def test_linear_toy_the_pattern_recovers_the_signal_direction_and_the_weights_do_not():
    """Kindermans et al. 2018, Fig. 2: x = a_s s + a_d d. The filter that extracts s must cancel the distractor, so
    w = (1, -1) is orthogonal to a_d and not parallel to a_s; the pattern cov(x, y) / var(y) is a_s."""
    g = torch.Generator().manual_seed(0)
    a_s, a_d = torch.tensor([1.0, 0.0]), torch.tensor([1.0, 1.0]) / 2**0.5
    s, d = torch.randn(4000, generator=g), torch.randn(4000, generator=g)
    x = (s[:, None] * a_s + d[:, None] * a_d).view(-1, 2, 1, 1)
    model = nn.Sequential(nn.Conv2d(2, 1, 1, bias=False), nn.Flatten()).eval()
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([1.0, -1.0]).view(1, 2, 1, 1))
    torch.testing.assert_close(model(x)[:, 0], s, atol=1e-5, rtol=0)  # w extracts the signal exactly
    w = model[0].weight.flatten()

    fitted = fit_estimators(model, x.split(512), data="toy")
    for estimator in ESTIMATORS:  # no gate after the layer: both estimators are S_a
        a = fitted[estimator].tensors["0"].flatten()
        assert torch.cosine_similarity(a, a_s, 0) > 0.99
        torch.testing.assert_close(a, a_s, atol=0.02, rtol=0)
    assert torch.cosine_similarity(w, a_s, 0) < 0.75  # the weights (= the gradient) point elsewhere: 1/sqrt(2)

    probe, p, target = x[:8], fitted["linear"], torch.zeros(8, dtype=torch.long)
    signal = exact_backward(model, probe, target, p, attribution=False)
    a = p.tensors["0"].flatten()
    torch.testing.assert_close(signal[:, :, 0, 0], s[:8, None] * a, rtol=1e-5, atol=1e-6)  # a y, with a ~ a_s: the signal part of x
    relevance = exact_backward(model, probe, target, p, attribution=True)[:, :, 0, 0]
    torch.testing.assert_close(relevance.sum(1), s[:8], rtol=1e-4, atol=1e-5)  # sum of w * a y = y, as w^T a = 1
    assert relevance[:, 1].abs().max() < 0.02 * relevance[:, 0].abs().max()  # on the input that carries the signal
    maps = explainers.explain("pattern_attribution", model, probe, 0, patterns=p)[:, 0, 0]
    torch.testing.assert_close(maps, torch.sign(s[:8]))  # one pixel, scaled to max |value| 1


def exact_backward(model: nn.Module, x: torch.Tensor, target: torch.Tensor, patterns: Patterns, *, attribution: bool) -> torch.Tensor:
    """``pattern_backward`` without the per-image rescaling: the exact values [B,C,H,W]."""
    with using(model) as hooks:
        return pattern_backward(Context(model=model, hooks=hooks), x, target, patterns, attribution=attribution, rescale=False)


# ------------------------------------------------------------------------------------------------ slow reference


class ThreeLayer(nn.Module):
    """conv 3->4 (3x3, pad 1) - ReLU - conv 4->4 (3x3, stride 2, pad 1, ``groups``) - ``act`` - linear 36->3."""

    def __init__(self, groups: int, act: nn.Module) -> None:
        super().__init__()
        self.conv1, self.act1 = nn.Conv2d(3, 4, 3, padding=1), nn.ReLU()
        self.conv2, self.act2 = nn.Conv2d(4, 4, 3, stride=2, padding=1, groups=groups), act
        self.fc = nn.Linear(36, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.act2(self.conv2(self.act1(self.conv1(x)))), 1))


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().numpy()


def ref_conv(x, w, b, stride, pad, groups):
    """One image's conv by loops: x [C,H,W] -> y [O,OH,OW] and each neuron's samples [(patch, y)]."""
    c, h, wd = x.shape
    o_n, cg, k, _ = w.shape
    xp = np.zeros((c, h + 2 * pad, wd + 2 * pad))
    xp[:, pad : pad + h, pad : pad + wd] = x
    oh, ow = (h + 2 * pad - k) // stride + 1, (wd + 2 * pad - k) // stride + 1
    y, samples = np.zeros((o_n, oh, ow)), {o: [] for o in range(o_n)}
    for o in range(o_n):
        g = o // (o_n // groups)
        for i in range(oh):
            for j in range(ow):
                patch = xp[g * cg : (g + 1) * cg, i * stride : i * stride + k, j * stride : j * stride + k]
                y[o, i, j] = (w[o] * patch).sum() + b[o]
                samples[o].append((patch, y[o, i, j]))
    return y, samples


def ref_conv_back(r, bw, stride, pad, groups, shape):
    """Back-projection by loops: every output (o, i, j) adds bw[o] * r[o,i,j] onto its receptive field."""
    c, h, wd = shape
    o_n, cg, k, _ = bw.shape
    out = np.zeros((c, h + 2 * pad, wd + 2 * pad))
    for o in range(o_n):
        g = o // (o_n // groups)
        for i in range(r.shape[1]):
            for j in range(r.shape[2]):
                out[g * cg : (g + 1) * cg, i * stride : i * stride + k, j * stride : j * stride + k] += bw[o] * r[o, i, j]
    return out[:, pad : pad + h, pad : pad + wd]


def ref_pattern(w_o, samples, regime):
    """The paper's estimator for one neuron: (E[xy] - E[x] E[y]) / (w^T E[xy] - w^T E[x] E[y]) over the samples in
    ``regime`` (None: all)."""
    sel = [(p, v) for p, v in samples if regime is None or regime[0] < v < regime[1]]
    assert len(sel) >= 2, "the reference net must have no dead neuron"
    ex = sum(p for p, _ in sel) / len(sel)
    ey = sum(v for _, v in sel) / len(sel)
    exy = sum(p * v for p, v in sel) / len(sel)
    return (exy - ex * ey) / ((w_o * exy).sum() - (w_o * ex).sum() * ey)


def ref_forward(m, x, groups):
    z1, s1 = ref_conv(x, _np(m.conv1.weight), _np(m.conv1.bias), 1, 1, 1)
    h1 = np.maximum(z1, 0)
    z2, s2 = ref_conv(h1, _np(m.conv2.weight), _np(m.conv2.bias), 2, 1, groups)
    hi = 6.0 if isinstance(m.act2, nn.ReLU6) else np.inf
    h2 = np.clip(z2, 0, hi)
    f = h2.reshape(-1)
    wf, bf = _np(m.fc.weight), _np(m.fc.bias)
    out = np.array([sum(wf[o, i] * f[i] for i in range(f.size)) + bf[o] for o in range(wf.shape[0])])
    return dict(z1=z1, h1=h1, z2=z2, f=f, out=out, s1=s1, s2=s2, hi=hi)


def ref_patterns(m, xs, groups, estimator):
    fw = [ref_forward(m, x, groups) for x in xs]
    gate1 = None if estimator == "linear" else (0.0, np.inf)
    gate2 = None if estimator == "linear" else (0.0, fw[0]["hi"])
    a1 = np.stack([ref_pattern(_np(m.conv1.weight)[o], [s for r in fw for s in r["s1"][o]], gate1) for o in range(4)])
    a2 = np.stack([ref_pattern(_np(m.conv2.weight)[o], [s for r in fw for s in r["s2"][o]], gate2) for o in range(4)])
    wf = _np(m.fc.weight)
    a3 = np.stack([ref_pattern(wf[o], [(r["f"], r["out"][o] - 0) for r in fw], None) for o in range(3)])
    return {"conv1": a1, "conv2": a2, "fc": a3}


def ref_map(m, x, target, groups, pats, attribution):
    """The paper's backward pass for one image, by loops: r = y_c at the target, weights replaced by a (PatternNet)
    or w * a (PatternAttribution), ReLU gates from the forward pass."""
    r = ref_forward(m, x, groups)
    b = {k: v * _np(getattr(m, k).weight) if attribution else v for k, v in pats.items()}
    r_out = np.zeros(3)
    r_out[target] = r["out"][target]
    r_f = np.array([sum(b["fc"][o, i] * r_out[o] for o in range(3)) for i in range(36)])
    r_z2 = r_f.reshape(4, 3, 3) * ((r["z2"] > 0) & (r["z2"] < r["hi"]))
    r_z1 = ref_conv_back(r_z2, b["conv2"], 2, 1, groups, (4, 6, 6)) * (r["z1"] > 0)
    r_x = ref_conv_back(r_z1, b["conv1"], 1, 1, 1, (3, 6, 6))
    return r_x.sum(0) if attribution else np.sqrt((r_x**2).sum(0))


@pytest.mark.parametrize(("groups", "act"), [(2, "relu"), (4, "relu6")], ids=["grouped-relu", "depthwise-relu6"])
def test_fast_implementation_matches_a_slow_reference_written_from_the_paper(groups, act):
    torch.manual_seed(3)
    model = ThreeLayer(groups, nn.ReLU() if act == "relu" else nn.ReLU6()).eval()
    with torch.no_grad():
        model.conv1.bias.fill_(0.3)  # no dead unit in the first layer
        model.conv2.bias.fill_(0.2)
        if act == "relu6":
            model.conv2.weight.mul_(20)  # a part of the units above the clip at 6
    xs = torch.randn(32, 3, 6, 6, generator=torch.Generator().manual_seed(4))
    if act == "relu6":
        z2 = model.conv2(model.act1(model.conv1(xs)))
        assert 0.05 < float((z2 >= 6).float().mean()) < 0.5
    targets = torch.tensor([0, 1, 2, 1])
    for estimator in ESTIMATORS:
        fast = fit(model, xs.split(12), estimator=estimator)  # three batches: the merge across batches is exercised
        ref = ref_patterns(model, [_np(x) for x in xs], groups, estimator)
        for name, a in ref.items():
            assert fast.layers[name]["degenerate"] == 0
            torch.testing.assert_close(fast.tensors[name].double(), torch.from_numpy(a), rtol=1e-5, atol=1e-5 * np.abs(a).max())
        for method, attribution in (("pattern_net", False), ("pattern_attribution", True)):
            want = np.stack([ref_map(model, _np(xs[i]), int(targets[i]), groups, ref, attribution) for i in range(4)])
            exact = exact_backward(model, xs[:4], targets, fast, attribution=attribution)
            exact = exact.sum(1) if attribution else exact.norm(dim=1)
            torch.testing.assert_close(exact.double(), torch.from_numpy(want), rtol=1e-5, atol=1e-5 * np.abs(want).max())
            maps = explainers.explain(method, model, xs[:4], targets, patterns=fast)  # rescaled, then max |value| 1
            want = want / np.abs(want).reshape(4, -1).max(1)[:, None, None]
            torch.testing.assert_close(maps.double(), torch.from_numpy(want), rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------------------------ properties


def test_every_pattern_satisfies_w_dot_a_equals_one_on_a_residual_net_with_batchnorm_and_relu6(tiny, tiny_input):
    """w^T a = 1 per neuron (the normalization of both estimators), a residual Sum's (a_u, a_v) add up to 1, and the
    regimes follow the gates: ReLU6 layers get 0 < y < 6, the Sum and the classifier every sample."""
    xs = torch.randn(24, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    fitted = fit_estimators(tiny, xs.split(8), data="noise")
    gm = canonical_copy(tiny)
    kinds = {name: layer.kind for name, layer in pattern_layers(gm).items()}
    assert sorted(kinds.values()) == ["conv", "conv", "linear", "sum"]
    for estimator, p in fitted.items():
        for name, a in p.tensors.items():
            w = torch.ones_like(a) if kinds[name] == "sum" else gm.get_submodule(name).weight
            dot = (w * a).flatten(1).sum(1)
            ok = a.flatten(1).abs().sum(1) > 0
            assert ok.sum() >= ok.numel() - p.layers[name]["degenerate"] and ok.any()
            torch.testing.assert_close(dot[ok], torch.ones_like(dot[ok]), rtol=0, atol=1e-4)
        regimes = {p.layers[n]["regime"] for n, k in kinds.items() if k == "conv"}
        assert regimes == ({"0 < y < 6"} if estimator == "two_component" else {"all samples"})
        assert {p.layers[n]["regime"] for n, k in kinds.items() if k != "conv"} == {"all samples"}


def test_a_batchnorm_that_cannot_be_folded_acts_as_a_learned_one_input_layer():
    """BatchNorm after a ReLU stays in the canonical copy; its rule (1/s for PatternNet, 1 for PatternAttribution) must
    equal what the estimators learn for the same affine map written as a 1x1 depthwise conv (pattern 1/w)."""
    torch.manual_seed(5)
    bn = nn.BatchNorm2d(4).eval()
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2.0), bn.bias.uniform_(-0.5, 0.5), bn.running_mean.uniform_(-1, 1), bn.running_var.uniform_(0.5, 2)
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    affine = nn.Conv2d(4, 4, 1, groups=4)
    with torch.no_grad():
        affine.weight.copy_(scale.view(4, 1, 1, 1))
        affine.bias.copy_(bn.bias - bn.running_mean * scale)
    head = [nn.Conv2d(3, 4, 3, padding=1), nn.ReLU()]
    tail = [nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 3)]
    with_bn = nn.Sequential(*head, bn, *tail).eval()
    with_conv = nn.Sequential(*head, affine, *tail).eval()
    xs = torch.randn(16, 3, 6, 6, generator=torch.Generator().manual_seed(6))
    torch.testing.assert_close(with_bn(xs), with_conv(xs))
    assert any(isinstance(m, nn.BatchNorm2d) for m in canonical_copy(with_bn).modules()), "the BatchNorm was folded"
    for estimator in ESTIMATORS:
        p_bn, p_conv = fit(with_bn, [xs], estimator=estimator), fit(with_conv, [xs], estimator=estimator)
        torch.testing.assert_close(p_conv.tensors["2"].flatten(), 1 / scale, rtol=1e-5, atol=0)
        for attribution in (False, True):
            a = exact_backward(with_bn, xs[:3], torch.tensor([0, 1, 2]), p_bn, attribution=attribution)
            b = exact_backward(with_conv, xs[:3], torch.tensor([0, 1, 2]), p_conv, attribution=attribution)
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * float(b.abs().max()))


def test_save_and_load_round_trip_is_a_safetensors_file_without_pickle(tmp_path):
    p = fit(make_tiny(), [torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))], data="four images")
    path = p.save(tmp_path / "sub" / "p.safetensors")
    raw = path.read_bytes()
    header = json.loads(raw[8 : 8 + struct.unpack("<Q", raw[:8])[0]])  # safetensors: length, JSON header, raw tensors
    assert header["__metadata__"]["format"].startswith("attribution-dashboard patterns")
    q = Patterns.load(path)
    assert q.meta() == p.meta() and q.tensors.keys() == p.tensors.keys()
    assert all(torch.equal(q.tensors[k], p.tensors[k]) for k in p.tensors)
    (tmp_path / "bad.safetensors").write_bytes(b"not a patterns file")
    with pytest.raises(InputError, match="not a patterns file"):
        Patterns.load(tmp_path / "bad.safetensors")
    assert [f.name for f in path.parent.iterdir()] == ["p.safetensors"], "no temporary file left"


def test_fit_and_explain_leave_no_hook_and_the_model_unchanged(tiny, tiny_input):
    before = {k: v.clone() for k, v in tiny.state_dict().items()}

    def batches():  # while the fit runs, another thread finds the shared model free (the fit uses a private copy)
        seen: list[bool] = []
        other = threading.Thread(target=lambda: seen.append(is_busy(tiny)))
        other.start()
        other.join()
        assert seen == [False]
        yield tiny_input

    p = fit(tiny, batches())
    for method in ("pattern_net", "pattern_attribution"):
        out = explainers.explain(method, tiny, tiny_input, 1, patterns=p)
        assert out.shape == (2, 16, 16) and out.dtype == torch.float32 and torch.isfinite(out).all()
    assert hook_count(tiny) == 0 and hook_count(canonical_copy(tiny)) == 0
    assert all(torch.equal(before[k], v) for k, v in tiny.state_dict().items())
    assert all(not q.requires_grad or q.grad is None for q in tiny.parameters())


def test_without_patterns_the_method_says_how_to_learn_them_and_foreign_patterns_are_refused(tiny, tiny_input, monkeypatch, tmp_path):
    monkeypatch.setenv("XAI_PATTERNS_DIR", str(tmp_path))
    with pytest.raises(MethodNotApplicable, match="no patterns learned for these weights.*pattern_store"):
        explainers.explain("pattern_net", tiny, tiny_input, 0)
    other = fit(make_tiny(seed=1), [tiny_input])
    with pytest.raises(MethodNotApplicable, match="learned for other weights"):
        explainers.explain("pattern_attribution", tiny, tiny_input, 0, patterns=other)
    with pytest.raises(ParameterError, match="patterns must be one of"):
        explainers.explain("pattern_net", tiny, tiny_input, 0, patterns=3)


# ------------------------------------------------------------------------------------------------ data and store


class _FakeLoaded:
    """What the store needs of a ``zoo.LoadedModel``, around the tiny CNN at 32 px."""

    input_size, resize, classes = 32, 36, ["a", "b", "c"]

    def __init__(self) -> None:
        self.model = make_tiny()

    def normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        return pixels * 2 - 1

    def preprocess(self, image) -> torch.Tensor:
        import torchvision.transforms.functional as TF

        return self.normalize(TF.to_tensor(TF.center_crop(TF.resize(image, self.resize), [self.input_size])).unsqueeze(0))


def test_fit_and_store_learns_once_ticks_per_batch_and_is_found_by_fingerprint(tmp_path, monkeypatch):
    monkeypatch.setenv("XAI_PATTERNS_DIR", str(tmp_path))
    loaded = _FakeLoaded()
    reports = []
    with progress.reporting(reports.append):
        paths = pattern_store.fit_and_store(loaded, n=20)  # photos by default: 2 batches (16, 4)
    assert set(paths) == set(ESTIMATORS) and all(p.parent == tmp_path and "--photos--" in p.name for p in paths.values())
    stages = [r.stages[0] for r in reports if r.stages and r.stages[0][0] == "Learning patterns"]
    assert {s[1] for s in stages} == {0, 1} and {s[2] for s in stages} == {2}
    fractions = [r.fraction for r in reports if r.fraction is not None]
    assert fractions == sorted(fractions)
    mtimes = {e: p.stat().st_mtime_ns for e, p in paths.items()}
    assert pattern_store.fit_and_store(loaded, n=20) == paths  # already there: nothing learned again
    assert {e: p.stat().st_mtime_ns for e, p in paths.items()} == mtimes
    found = pattern_store.stored(loaded.model, "linear")
    assert found is not None and found.n_images == 20 and "20 random crops" in found.data and found.estimator == "linear"
    out = explainers.explain("pattern_attribution", loaded.model, loaded.normalize(torch.rand(1, 3, 32, 32)), 0, patterns="linear")
    assert out.shape == (1, 32, 32)


def test_a_cancelled_fit_writes_nothing(tmp_path):
    def stop(report: progress.Report) -> None:
        if report.note.startswith("learning patterns: batch 2"):
            raise KeyboardInterrupt("stopped")

    with progress.reporting(stop), pytest.raises(KeyboardInterrupt):
        pattern_store.fit_and_store(_FakeLoaded(), n=20, directory=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_the_synthetic_models_ship_patterns_learned_from_their_generator():
    import zoo

    for name in ("synthetic_shapes", "synthetic_shapes_permuted"):
        model = zoo.load_model(name).model
        for estimator in ESTIMATORS:
            p = pattern_store.stored(model, estimator, [pattern_store.SHIPPED_DIR])
            assert p is not None and p.estimator == estimator and p.n_images == pattern_store.SYNTHETIC_IMAGES
            assert "synthetic-shapes generator" in p.data


def test_photo_crops_are_seeded_and_a_folder_source_reads_its_images_and_skips_masks(tmp_path):
    from PIL import Image

    src = pattern_store.source(_FakeLoaded(), "photos", n=20)
    first, again = list(src.batches()), list(src.batches())
    assert [b.shape for b in first] == [(16, 3, 32, 32), (4, 3, 32, 32)]
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert src.n_images == 20 and "20 random crops" in src.description and "6 scikit-image photos" in src.description
    assert "rough estimates" in pattern_store.data_note(_FakeLoaded(), "photos", n=20)
    (tmp_path / "cls").mkdir()
    for i in range(3):
        Image.new("RGB", (40 + i, 50), (i * 40, 0, 0)).save(tmp_path / "cls" / f"{i}.png")
    Image.new("L", (40, 50)).save(tmp_path / "cls" / "0.mask.png")
    folder = pattern_store.source(_FakeLoaded(), str(tmp_path))
    assert folder.n_images == 3 and [b.shape for b in folder.batches()] == [(3, 3, 32, 32)]
    assert folder.slug.startswith("folder-") and str(tmp_path) in folder.description
    with pytest.raises(ParameterError, match="synthetic generator only fits"):
        pattern_store.source(_FakeLoaded(), "synthetic")
