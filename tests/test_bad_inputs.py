"""The bad-input catalogue: every case runs through the public functions the dashboard calls (``zoo.load_image``
for an uploaded image, ``zoo.load_torchscript`` for an uploaded model, ``explainers.explain``, ``metrics.*``,
``render.*``). Each one is refused with a ``ValueError`` subclass naming the problem, or handled as documented;
the README's "Bad inputs" section lists the same case names (a test checks). The same files go through the
real upload widgets in ``tests/app/test_bad_uploads.py``."""

from __future__ import annotations

import io
import math
import pickle
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import anatomy as V
import explainers
import metrics
import zoo
from core.errors import ImageError, MethodNotApplicable, ModelFileError, ParameterError
from dashboard import render

ROOT = Path(__file__).resolve().parents[1]
H = W = 64


# ------------------------------------------------------------------------------------------------ images


def encode(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _noise(w: int = 64, h: int = 64) -> Image.Image:
    return Image.fromarray(np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header_claiming(w: int, h: int) -> bytes:
    """A valid PNG signature and IHDR that claim w x h RGB pixels, followed by a tiny IDAT: a decompression bomb's shape."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + _chunk(b"IEND", b"")


def _animated_gif() -> bytes:
    frames = [Image.new("RGB", (32, 32), c) for c in ("red", "blue", "green")]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buf.getvalue()


def _exif_rotated() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    return encode(Image.new("RGB", (40, 20), "blue"), "JPEG", exif=exif)


def _float_tiff() -> bytes:
    return encode(Image.fromarray(np.linspace(0, 1, 400, dtype=np.float32).reshape(20, 20), mode="F"), "TIFF")


@dataclass(frozen=True)
class ImageCase:
    name: str  # as listed in the README
    data: Callable[[], bytes]
    error: str | None = None  # regex the ImageError must match; None: the file loads
    check: Callable[[Image.Image], bool] = lambda img: True


def _truncated(fmt: str) -> bytes:
    full = encode(_noise(), fmt)
    return full[: len(full) // 2]


IMAGE_CASES = [
    ImageCase("zero-byte file", lambda: b"", "empty"),
    ImageCase("random bytes named .png", lambda: np.random.default_rng(1).bytes(4096), "not an image"),
    ImageCase("PNG signature followed by garbage", lambda: b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "damaged|not an image"),
    ImageCase("truncated JPEG", lambda: _truncated("JPEG"), "damaged or truncated"),
    ImageCase("truncated PNG", lambda: _truncated("PNG"), "damaged or truncated"),
    ImageCase("PNG header claiming 50000 x 50000", lambda: png_header_claiming(50_000, 50_000), "too large|pixel limit"),
    ImageCase("1 x 1 image", lambda: encode(Image.new("RGB", (1, 1))), "at least 8"),
    ImageCase("10000 x 300 strip", lambda: encode(Image.new("RGB", (10_000, 300), "white")), check=lambda img: img.size == (1200, 300)),
    ImageCase("5000 x 5000 photo", lambda: encode(Image.new("RGB", (5000, 5000), "white"), "JPEG"), check=lambda img: img.size == (2048, 2048)),
    ImageCase("grayscale", lambda: encode(Image.new("L", (40, 30), 128)), check=lambda img: img.getpixel((0, 0)) == (128, 128, 128)),
    ImageCase(
        "RGBA with transparent pixels", lambda: encode(Image.new("RGBA", (20, 20), (255, 0, 0, 0))), check=lambda img: img.getpixel((0, 0)) == (255, 255, 255)
    ),
    ImageCase("palette", lambda: encode(Image.new("RGB", (40, 30), "red").convert("P")), check=lambda img: img.getpixel((0, 0)) == (255, 0, 0)),
    ImageCase("CMYK JPEG", lambda: encode(Image.new("CMYK", (20, 20), (0, 255, 255, 0)), "JPEG"), check=lambda img: img.getpixel((5, 5))[0] > 200),
    ImageCase(
        "16-bit PNG",
        lambda: encode(Image.fromarray((np.arange(40 * 30).reshape(30, 40) * 50).astype(np.uint16))),
        check=lambda img: img.getpixel((0, 0)) == (0, 0, 0) and img.getpixel((39, 29)) == (255, 255, 255),
    ),
    ImageCase("float TIFF", _float_tiff, check=lambda img: img.size == (20, 20) and img.getpixel((19, 19)) == (255, 255, 255)),
    ImageCase("animated GIF", _animated_gif, check=lambda img: img.getpixel((0, 0)) == (255, 0, 0)),  # the first frame
    ImageCase("EXIF-rotated JPEG", _exif_rotated, check=lambda img: img.size == (20, 40)),
    ImageCase(
        "SVG renamed .png", lambda: b"<svg xmlns='http://www.w3.org/2000/svg' width='10' height='10'><rect width='10' height='10'/></svg>", "not an image"
    ),
    ImageCase("HTML renamed .png", lambda: b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>", "not an image"),
]


@pytest.mark.parametrize("case", IMAGE_CASES, ids=[c.name for c in IMAGE_CASES])
def test_image_catalogue(case: ImageCase, shapes) -> None:
    data = case.data()
    if case.error is not None:
        with pytest.raises(ImageError, match=case.error):
            zoo.load_image(data)
        return
    img = zoo.load_image(data)
    assert img.mode == "RGB" and max(img.size) <= zoo.images.MAX_SIDE and case.check(img), (img.size, img.getpixel((0, 0)))
    x = shapes.preprocess(img)  # what the model sees: always its own input size
    assert x.shape == (1, 3, 64, 64) and torch.isfinite(shapes.predict(x)).all()


# ------------------------------------------------------------------------------------------------ models


def script(module: nn.Module) -> bytes:
    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(module), buf)
    return buf.getvalue()


class ConvNet(nn.Module):
    def __init__(self, k: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))


class NoConv(nn.Module):
    """Pooled colour statistics -> 3 classes: no convolution anywhere."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(3 * 8 * 8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.nn.functional.adaptive_avg_pool2d(x, 8).flatten(1))


class Fixed32(nn.Module):
    """A linear model on flattened 32 x 32 images: fails on any other input size."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3 * 32 * 32, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


class WrongShape(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=1)


class Raises(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("boom")


class NaNs(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)[:, :3] * float("nan")


class Infs(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)[:, :3] / 0.0


class Evil:
    """Unpickling this writes a file: proof of code execution if it ever happens."""

    target = ""

    def __reduce__(self):
        return (Path.write_text, (Path(Evil.target), "pwned"))


def _zip_not_torchscript() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("model/data.pkl", pickle.dumps({"weights": [1, 2, 3]}))
    return buf.getvalue()


@dataclass(frozen=True)
class ModelCase:
    name: str  # as listed in the README
    data: Callable[[], bytes]
    error: str | None
    names: bytes | None = None
    input_size: int = 224


MODEL_CASES = [
    ModelCase("empty model file", lambda: b"", "empty"),
    ModelCase("a file that is not TorchScript", lambda: b"hello, I am a model", "not a TorchScript"),
    ModelCase("a zip archive that is not TorchScript", _zip_not_torchscript, "not a loadable TorchScript"),
    ModelCase("wrong output shape", lambda: script(WrongShape()), "shape \\[batch, classes\\]"),
    ModelCase("raises in forward", lambda: script(Raises()), "fails on a 1x3x224x224 input"),
    ModelCase("returns NaN", lambda: script(NaNs()), "NaN or Inf"),
    ModelCase("returns Inf", lambda: script(Infs()), "NaN or Inf"),
    ModelCase("expects a different input size", lambda: script(Fixed32()), "It runs on 32x32 inputs: set the input size to 32"),
    ModelCase("class-names file with the wrong count", lambda: script(ConvNet()), "2 names but the model has 3", names=b"cat\ndog\n", input_size=32),
]


@pytest.mark.parametrize("case", MODEL_CASES, ids=[c.name for c in MODEL_CASES])
def test_model_catalogue(case: ModelCase) -> None:
    with pytest.raises(ModelFileError, match=case.error):
        zoo.load_torchscript(case.data(), case.names, input_size=case.input_size)


def test_pickle_that_would_write_a_file_is_never_unpickled(tmp_path) -> None:
    Evil.target = str(tmp_path / "owned.txt")
    buf = io.BytesIO()
    torch.save({"state": Evil()}, buf)
    for data in (pickle.dumps(Evil()), buf.getvalue()):  # a raw pickle, and torch.save's zip with the same payload
        with pytest.raises(ModelFileError, match="TorchScript"):
            zoo.load_torchscript(data)
    assert not (tmp_path / "owned.txt").exists()
    pickle.loads(pickle.dumps(Evil()))  # the payload is real: unpickling it does write the file
    assert (tmp_path / "owned.txt").read_text() == "pwned"


def exported(module: nn.Module = ConvNet(), size: int = 32) -> bytes:
    """A torch.export.save program of ``module`` taking any batch size."""
    ep = torch.export.export(module.eval(), (torch.rand(2, 3, size, size),), dynamic_shapes={"x": {0: torch.export.Dim("batch")}})
    buf = io.BytesIO()
    torch.export.save(ep, buf)
    return buf.getvalue()


def _swap_in_zip(data: bytes, name_end: str, new: bytes) -> bytes:
    src, out = zipfile.ZipFile(io.BytesIO(data)), io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for info in src.infolist():
            z.writestr(info, new if info.filename.endswith(name_end) else src.read(info))
    return out.getvalue()


def _add_to_zip(data: bytes, name: str, payload: bytes) -> bytes:
    out = io.BytesIO(data)
    with zipfile.ZipFile(out, "a") as z:
        z.writestr(name, payload)
    return out.getvalue()


def _safetensors(arch: str = "resnet18", k: int = 10) -> bytes:
    import safetensors.torch
    import torchvision

    return safetensors.torch.save(torchvision.models.get_model(arch, weights=None, num_classes=k).state_dict())


def _torch_save() -> bytes:
    buf = io.BytesIO()
    torch.save(ConvNet().state_dict(), buf)
    return buf.getvalue()


FORMAT_CASES = [  # (name as listed in the README, loader call, message)
    ("a pickle renamed .pt2", lambda: zoo.load_exported(pickle.dumps({"w": [1, 2]})), "Python pickle"),
    ("a torch.save file renamed .pt2", lambda: zoo.load_exported(_torch_save()), "not the archive torch.export.save writes"),
    ("a truncated .pt2", lambda: zoo.load_exported(exported()[:3000]), "truncated or damaged"),
    ("a .pt2 whose tensors are pickles", lambda: zoo.load_exported(_swap_in_zip(exported(), "model_weights_config.json", b'{"config": {"conv.weight": {"path_name": "weight_0", "use_pickle": true}}}')), "stored as a pickle"),
    ("a .pt2 with compiled code", lambda: zoo.load_exported(_add_to_zip(exported(), "archive/data/aotinductor/model/model.so", b"\\x7fELF")), "compiled code"),
    ("safetensors for another architecture", lambda: zoo.load_safetensors(_safetensors("resnet18"), "resnet34", 10), "no tensor 'layer1.2.conv1.weight'"),
    ("safetensors with another class count", lambda: zoo.load_safetensors(_safetensors("resnet18", 10), "resnet18", 7), "'fc.weight' has shape \\[10, 512\\]"),
    ("a truncated safetensors file", lambda: zoo.load_safetensors(_safetensors()[:5000], "resnet18", 10), "not a complete safetensors"),
    ("an unknown architecture", lambda: zoo.load_safetensors(_safetensors(), "resnet_999", 10), "Unknown architecture 'resnet_999'"),
]


@pytest.mark.parametrize("name, call, message", FORMAT_CASES, ids=[c[0] for c in FORMAT_CASES])
def test_model_format_catalogue(name: str, call: Callable[[], object], message: str) -> None:
    with pytest.raises(ModelFileError, match=message):
        call()


def test_a_pickle_inside_a_pt2_is_never_unpickled(tmp_path) -> None:
    Evil.target = str(tmp_path / "owned.txt")
    data = exported()
    payload = pickle.dumps(Evil())
    for bad, message in [
        (_swap_in_zip(data, "sample_inputs/model.pt", payload), "sample inputs are not plain tensors"),
        (_add_to_zip(data, "archive/data/weights/model.pt", payload), "legacy layout"),
        (_add_to_zip(data, "archive/data/constants/opaque_obj_0", payload), None),
    ]:
        if message is None:  # an opaque object needs its config entry to be loaded at all
            cfg = b'{"config": {"c": {"path_name": "opaque_obj_0", "use_pickle": true}}}'
            bad, message = _swap_in_zip(bad, "model_constants_config.json", cfg), "'c' is stored as a pickle"
        with pytest.raises(ModelFileError, match=message):
            zoo.load_exported(bad)
    assert not (tmp_path / "owned.txt").exists()
    assert zoo.load_exported(data, classes=b"a\nb\nc").classes == ["a", "b", "c"]  # the untouched program loads


def test_model_with_no_conv_layer_cam_methods_say_why_and_the_rest_work() -> None:
    loaded = zoo.load_torchscript(script(NoConv()), b"a\nb\nc", input_size=32)
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    for name in ("cam", "gradcam", "gradcam_plus_plus", "scorecam", "guided_gradcam"):
        with pytest.raises(MethodNotApplicable, match="no nn.Conv2d"):
            explainers.explain(name, loaded, x, 0)
    for name in ("saliency", "input_x_gradient", "integrated_gradients", "smoothgrad", "occlusion", "rise", "edge_sobel"):
        assert torch.isfinite(explainers.explain(name, loaded, x, 1)).all(), name


def test_model_expecting_another_input_size_loads_at_that_size() -> None:
    loaded = zoo.load_torchscript(script(Fixed32()), input_size=32)
    assert loaded.input_size == 32 and loaded.preprocess(zoo.sample_images()["chelsea"]).shape == (1, 3, 32, 32)
    with pytest.raises(MethodNotApplicable, match="no nn.Conv2d"):
        explainers.explain("gradcam", loaded, torch.rand(1, 3, 32, 32), 0)


def test_a_good_model_and_its_class_names_load() -> None:
    loaded = zoo.load_torchscript(script(ConvNet()), b"a\nb\nc\n", input_size=32)
    assert loaded.classes == ["a", "b", "c"] and loaded.predict(torch.zeros(1, 3, 32, 32)).shape == (1, 3)
    with pytest.raises(MethodNotApplicable, match="TorchScript model does not allow"):
        explainers.explain("gradcam", loaded, torch.rand(1, 3, 32, 32), 0)  # it has a conv, but hooks are not possible


# ------------------------------------------------------------------------------------------------ parameters


@pytest.fixture(scope="module")
def case(shapes):
    x = shapes.preprocess(zoo.sample_images()["shapes: circle"])
    mask = shapes.preprocess_mask(zoo.sample_masks()["shapes: circle"])
    return shapes, x, mask


NUMERIC = [(m, p) for m in explainers.names() for p in explainers.get(m).params if p.choices is None and not isinstance(p.default, bool)]


@pytest.mark.parametrize(("method", "param"), NUMERIC, ids=[f"{m}.{p.name}" for m, p in NUMERIC])
def test_every_method_parameter_beyond_its_bounds_is_refused_by_name(case, method: str, param) -> None:
    model, x, _ = case
    below = param.low - (param.step or 1) if isinstance(param.default, int) else param.low - 0.5 * (param.step or 0.01) - 1e-9
    above = param.high + (param.step or 1) if isinstance(param.default, int) else param.high + 1.0
    for bad in (below, above, float("nan")):
        with pytest.raises(ParameterError, match=param.name):
            explainers.explain(method, model, x, 0, **{param.name: bad})


METRIC_NUMERIC = [(k, p) for k in metrics.names() for p in metrics.get(k).params if p.choices is None and not isinstance(p.default, bool)]


@pytest.mark.parametrize(("metric", "param"), METRIC_NUMERIC, ids=[f"{k}.{p.name}" for k, p in METRIC_NUMERIC])
def test_every_metric_parameter_beyond_its_bounds_is_refused_by_name(case, metric: str, param) -> None:
    model, x, mask = case
    below = param.low - (param.step or 1) if isinstance(param.default, int) else param.low - 1.0
    for bad in (below, param.high * 2 + 1, float("nan")):
        with pytest.raises(ParameterError, match=param.name):
            metrics.score(metric, model, x, 0, {"a": torch.rand(1, H, W)}, mask=mask, **{param.name: bad})


SLOW_AT_HIGH = {
    ("rise", "n_masks"),
    ("lime", "n_samples"),
    ("kernel_shap", "n_samples"),
    ("sobol", "grid_size"),
    ("sobol", "n_design"),
    ("extremal_perturbation", "steps"),
}  # 15-40 s each: left at their defaults


@pytest.mark.parametrize("bound", ["low", "high"])
@pytest.mark.parametrize("method", explainers.names())
def test_every_method_runs_with_all_parameters_at_a_bound(case, method: str, bound: str) -> None:
    model, x, _ = case
    numeric = [p for p in explainers.get(method).params if p.choices is None and not isinstance(p.default, bool)]
    values = {p.name: getattr(p, bound) for p in numeric if (method, p.name) not in SLOW_AT_HIGH or bound == "low"}
    try:
        out = explainers.explain(method, model, x, 0, **values)
    except MethodNotApplicable as exc:  # e.g. LIME asked for 4 superpixels finding only 1: a clear reason, not a crash
        assert str(exc)
        return
    assert out.shape == (1, H, W) and torch.isfinite(out).all()


DEGENERATE = {
    "zeros": torch.zeros(1, H, W),
    "constant": torch.full((1, H, W), 3.0),
    "negative": -torch.ones(1, H, W),
    "one_pixel": torch.zeros(1, H, W).index_put_((torch.tensor([0]), torch.tensor([5]), torch.tensor([7])), torch.tensor(1e-30)),
}


@pytest.mark.parametrize("name", list(DEGENERATE))
def test_every_registered_metric_is_finite_on_degenerate_maps(case, name: str) -> None:
    model, x, mask = case
    from tests.test_metric_contract import CHEAP

    for metric in metrics.names():
        key = "saliency" if metrics.get(metric).explains else name  # a metric that recomputes maps needs them keyed by method
        got = metrics.score(metric, model, x, 0, {key: DEGENERATE[name]}, mask=mask, **CHEAP.get(metric, {}))[key]
        assert got.shape == (1,) and torch.isfinite(got).all(), (metric, name, got)


@pytest.mark.parametrize("name", list(DEGENERATE))
def test_similarities_complexity_and_rendering_never_divide_by_zero(name: str) -> None:
    a = DEGENERATE[name][0]
    b = torch.rand(H, W, generator=torch.Generator().manual_seed(0))
    for s in metrics.SIMILARITIES:
        for u, v in ((a, a), (a, b), (b, a)):
            assert math.isfinite(metrics.map_similarity(u, v, s)), (s, name)
    d = metrics.dissimilarity(a, b)
    assert all(math.isfinite(v) for v in d.values())
    assert math.isfinite(float(metrics.gini(a[None]))) and math.isfinite(float(metrics.entropy(a[None])))
    for signed in (True, False):
        norm = render.normalize_map(a.numpy(), signed=signed)
        assert np.isfinite(norm).all()
    fig = render.randomization_figure(["m"], ["original", "fc"], [np.stack([a.numpy(), a.numpy()])], per_map=True)
    assert fig.dtype == np.uint8


PARAMETER_CASES = [
    ("negative steps", lambda m, x: metrics.deletion_insertion(m, x, torch.rand(1, H, W), 0, step=-3), "step"),
    ("step larger than the image", lambda m, x: metrics.score("deletion", m, x, 0, {"a": torch.rand(1, H, W)}, step=10**7), "step"),
    ("unknown substrate", lambda m, x: metrics.score("deletion", m, x, 0, {"a": torch.rand(1, H, W)}, substrate="noise"), "substrate"),
    ("ROAD at 0%", lambda m, x: metrics.road(m, x, torch.rand(1, H, W), 0, percentages=(0, 50)), "percentages"),
    ("ROAD at 100%", lambda m, x: metrics.road(m, x, torch.rand(1, H, W), 0, percentages=(50, 100)), "percentages"),
    ("zero samples (infidelity)", lambda m, x: metrics.score("infidelity", m, x, 0, torch.rand(1, H, W), n_samples=0), "n_samples"),
    ("negative sigma", lambda m, x: metrics.score("infidelity", m, x, 0, torch.rand(1, H, W), sigma=-1.0), "sigma"),
    ("zero radius", lambda m, x: metrics.sensitivity(m, x, 0, "saliency", radius=0), "radius"),
    ("zero samples (sensitivity)", lambda m, x: metrics.sensitivity(m, x, 0, "saliency", n_samples=0), "n_samples"),
    ("negative eps", lambda m, x: metrics.adversarial(m, x, 0, eps=-2), "eps"),
    ("zero attack steps", lambda m, x: metrics.adversarial(m, x, 0, steps=0), "steps"),
    ("unknown attack", lambda m, x: metrics.adversarial(m, x, 0, attack="cw"), "fgsm or pgd"),
    ("zero eps (fragility)", lambda m, x: metrics.fragility(m, x, 0, "saliency", eps=0), "eps"),
    ("zero steps (fragility)", lambda m, x: metrics.fragility(m, x, 0, "saliency", steps=0), "steps"),
    ("no methods to randomize", lambda m, x: metrics.model_randomization(m, x, 0, []), "at least one method"),
    ("unknown randomization mode", lambda m, x: metrics.model_randomization(m, x, 0, ["saliency"], seed=0, mode="both"), "mode"),
    ("target out of range", lambda m, x: metrics.deletion_insertion(m, x, torch.rand(1, H, W), 7), "out of range"),
    ("target out of range (explainer)", lambda m, x: explainers.explain("saliency", m, x, 7), "out of range"),
    ("unknown method parameter", lambda m, x: explainers.explain("saliency", m, x, 0, n_steps=3), "no parameter"),
    ("zero optimization steps", lambda m, x: V.maximize(m, V.Objective("class", 0), steps=0), "steps"),
    ("unknown objective", lambda m, x: V.maximize(m, V.Objective("mood", 0), steps=1), "objective"),
    ("feature maps of a linear layer", lambda m, x: V.feature_maps(m, x, "fc"), "feature map"),
    ("input that is not an image batch", lambda m, x: explainers.explain("saliency", m, x[0], 0), "x must be"),
    ("NaN in the input", lambda m, x: explainers.explain("saliency", m, x * float("nan"), 0), "NaN|finite"),
]


@pytest.mark.parametrize(("what", "call", "message"), PARAMETER_CASES, ids=[c[0] for c in PARAMETER_CASES])
def test_out_of_range_parameters_raise_clear_errors(case, what: str, call, message: str) -> None:
    model, x, _ = case
    with pytest.raises(ParameterError, match=message):
        call(model, x)


def test_an_eps_above_the_pixel_range_is_clipped_not_a_crash(case) -> None:
    model, x, _ = case
    res = metrics.adversarial(model, x, 0, eps=400, steps=2)  # 400/255 > 1: the ball covers every image
    px = model.denormalize(res.x_adv)
    assert float(px.min()) >= 0 and float(px.max()) <= 1


def test_the_readme_lists_every_case() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Bad inputs") :]
    section = section[: section.index("\n## ", 4)]
    names = [c.name for c in IMAGE_CASES] + [c.name for c in MODEL_CASES] + [c[0] for c in PARAMETER_CASES] + [c[0] for c in FORMAT_CASES]
    names += ["pickle that would write a file", "no conv layer", "all-zero or constant maps", "method fails for one model"]
    missing = [n for n in names if n not in section]
    assert not missing, missing
