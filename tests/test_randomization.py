"""Sanity checks (Adebayo et al. 2018): determinism, the caller's model untouched, controls, oracles, the paper's ordering."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import metrics
import zoo
from core.errors import ParameterError
from core.model_state import hook_count
from metrics.randomization import default_blocks, randomize_block

PAPER = ["saliency", "gradcam", "guided_backprop", "guided_gradcam"]


class TwoLinear(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.fc1 = nn.Linear(3 * 16 * 16, 32)
        self.fc2 = nn.Linear(32, 3)
        with torch.no_grad():
            self.fc1.weight.copy_(torch.randn(self.fc1.weight.shape, generator=g) * 0.05)
            self.fc2.weight.copy_(torch.randn(self.fc2.weight.shape, generator=g))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))


class OneLinear(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3 * 16 * 16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


def test_blocks_of_the_specs_exist_and_default_blocks(tiny: nn.Module) -> None:
    for name in ("efficientnet_lite0", "synthetic_shapes"):
        loaded = zoo.load_model(name)
        blocks = metrics.model_blocks(loaded)
        mods = dict(loaded.model.named_modules())
        assert all(p in mods for _, ps in blocks for p in ps)
        owned = {n for n, m in loaded.model.named_modules() if any(True for _ in m.parameters(recurse=False))}
        covered = {n for n in owned if any(n == p or n.startswith(p + ".") for _, ps in blocks for p in ps)}
        assert covered == owned  # every parameter belongs to one block
    assert len(metrics.model_blocks(zoo.load_model("efficientnet_lite0"))) == 19
    assert [n for n, _ in default_blocks(tiny)] == ["conv1", "bn1", "conv2", "fc"]


def test_seeded_and_the_model_is_unchanged(shapes) -> None:
    x = shapes.preprocess(zoo.sample_images()["shapes: cross"])
    before = {k: v.clone() for k, v in shapes.model.state_dict().items()}
    hooks = hook_count(shapes.model)
    a = metrics.model_randomization(shapes, x, 3, ["saliency", "lrp_epsilon_plus", "smoothgrad"], seed=0)
    b = metrics.model_randomization(shapes, x, 3, ["saliency", "lrp_epsilon_plus", "smoothgrad"], seed=0)
    for m in a.maps:
        assert torch.equal(a.maps[m], b.maps[m])
        assert torch.equal(a.similarity["ssim"][m], b.similarity["ssim"][m])
    assert a.steps == ["original", "fc (logits)", "conv 4", "conv 3", "conv 2", "conv 1"]
    assert a.maps["saliency"].shape == (6, 64, 64)
    for k, v in shapes.model.state_dict().items():
        assert torch.equal(v, before[k]), k  # bit-identical
    assert hook_count(shapes.model) == hooks
    # another seed, other weights
    m1, m2 = TwoLinear(), TwoLinear()
    randomize_block(m1, ["fc2"], 0)
    randomize_block(m2, ["fc2"], 1)
    assert not torch.equal(m1.fc2.weight, m2.fc2.weight)
    m3 = TwoLinear()
    randomize_block(m3, ["fc2"], 0)
    assert torch.equal(m1.fc2.weight, m3.fc2.weight) and torch.equal(m1.fc1.weight, TwoLinear().fc1.weight)


def test_controls_keep_similarity_one_at_every_step(shapes) -> None:
    x = shapes.preprocess(zoo.sample_images()["shapes: square"])
    r = metrics.model_randomization(shapes, x, 1, ["edge_sobel", "random"])
    for measure in metrics.SIMILARITIES:
        for m in ("edge_sobel", "random"):
            assert r.similarity[measure][m].tolist() == pytest.approx([1.0] * 5), (measure, m)


def test_randomizing_the_only_layer_of_a_linear_model_destroys_its_saliency() -> None:
    """For f = Wx the saliency is |W[t]| per pixel; a re-drawn W is independent of the old one."""
    model = OneLinear().eval()
    x = torch.randn(1, 3, 16, 16)
    r = metrics.model_randomization(model, x, 0, ["saliency", "edge_sobel"], similarity=("spearman", "spearman_abs", "ssim"))
    assert r.steps == ["original", "fc"]
    assert abs(float(r.similarity["spearman_abs"]["saliency"][0])) < 0.2
    assert float(r.similarity["ssim"]["saliency"][0]) < 0.3
    assert float(r.similarity["spearman"]["edge_sobel"][0]) == pytest.approx(1.0)


def test_independent_mode_restores_each_block() -> None:
    model = TwoLinear().eval()
    x = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    r = metrics.model_randomization(model, x, 0, ["saliency"], mode="independent", similarity=("spearman",))
    assert r.steps == ["original", "fc2", "fc1"]
    # step 2 of the independent run = only fc1 randomized (with that step's seed), fc2 trained
    ref = TwoLinear().eval()
    randomize_block(ref, ["fc1"], 0 * 1009 + 2)
    import explainers

    want = explainers.explain("saliency", ref, x, 0)[0]
    torch.testing.assert_close(r.maps["saliency"][2], want)
    cascade = metrics.model_randomization(model, x, 0, ["saliency"], mode="cascading", similarity=("spearman",))
    assert not torch.equal(cascade.maps["saliency"][2], want)  # cascading: fc2 is random too


def test_bad_requests_are_clear(shapes) -> None:
    x = shapes.preprocess(zoo.sample_images()["shapes: cross"])
    with pytest.raises(ParameterError, match="mode"):
        metrics.model_randomization(shapes, x, 0, ["saliency"], mode="sideways")
    with pytest.raises(ParameterError, match="no module"):
        metrics.model_randomization(shapes, x, 0, ["saliency"], blocks=[("nope", ("nope",))])
    with pytest.raises(ParameterError, match="one image"):
        metrics.model_randomization(shapes, x.repeat(2, 1, 1, 1), 0, ["saliency"])
    with pytest.raises(ParameterError, match="similarity"):
        metrics.model_randomization(shapes, x, 0, ["saliency"], similarity=("cosine",))


def test_the_papers_ordering_on_the_synthetic_model(shapes) -> None:
    """After the top block: Guided Backprop and Guided Grad-CAM stay more similar (SSIM) than gradients and Grad-CAM."""
    ssim = {m: [] for m in PAPER}
    for cls in ("circle", "square", "triangle", "cross"):
        x = shapes.preprocess(zoo.sample_images()[f"shapes: {cls}"])
        r = metrics.model_randomization(shapes, x, shapes.classes.index(cls), PAPER, similarity=("ssim",), blocks=metrics.model_blocks(shapes)[-1:])
        for m in PAPER:
            ssim[m].append(float(r.similarity["ssim"][m][0]))
    mean = {m: sum(v) / len(v) for m, v in ssim.items()}
    assert min(mean["guided_backprop"], mean["guided_gradcam"]) > max(mean["saliency"], mean["gradcam"]), mean


def test_the_papers_ordering_on_efficientnet_lite0(lite0) -> None:
    """The default model, logits layer randomized: the guided methods keep their maps, gradients and Grad-CAM do not."""
    x = lite0.preprocess(zoo.sample_images()["chelsea"])
    r = metrics.model_randomization(lite0, x, 282, PAPER, similarity=("spearman_abs", "ssim"), blocks=metrics.model_blocks(lite0)[-1:])
    for measure in ("spearman_abs", "ssim"):
        s = {m: float(r.similarity[measure][m][0]) for m in PAPER}
        assert min(s["guided_backprop"], s["guided_gradcam"]) > max(s["saliency"], s["gradcam"]) + 0.1, (measure, s)


def test_data_randomization_model_differs(shapes) -> None:
    permuted = zoo.load_model("synthetic_shapes_permuted")
    x = shapes.preprocess(zoo.sample_images()["shapes: triangle"])
    r = metrics.data_randomization(shapes, permuted, x, 2, ["saliency", "gradcam", "edge_sobel"])
    assert r.similarity["spearman"]["edge_sobel"] == pytest.approx(1.0)
    assert r.similarity["ssim"]["saliency"] < 0.9 and r.similarity["ssim"]["gradcam"] < 0.9
    assert r.maps["saliency"].shape == (2, 64, 64)
