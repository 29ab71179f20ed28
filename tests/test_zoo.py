"""Model zoo and image loading, all offline."""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import zoo
from core.errors import ImageError, ModelFileError, ModelUnavailable
from zoo.synthetic import CLASSES, make_dataset


def _png(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_model_names_default_first_and_every_available_model_loads_offline():
    names = zoo.model_names()
    assert names[0] == zoo.DEFAULT_MODEL == "efficientnet_lite0"
    assert {"resnet50", "vgg16", "densenet121", "mobilenet_v3_large", "synthetic_shapes"} <= set(names)
    for name in names:
        if zoo.unavailable_reason(name) is not None:
            continue
        m = zoo.load_model(name)
        x = m.preprocess(zoo.sample_images()["coffee"])
        assert x.shape == (1, 3, m.input_size, m.input_size)
        p = m.predict(x)
        assert p.shape == (1, len(m.classes)) and abs(float(p.sum()) - 1) < 1e-4
        assert not m.model.training and not any(q.requires_grad for q in m.model.parameters())
        assert m.cam_layer in dict(m.model.named_modules())


def test_default_model_recognizes_the_sample_photos(lite0):
    imgs = zoo.sample_images()
    cats = {"tabby", "tiger cat", "Egyptian cat"}
    top3 = lambda name: {lite0.classes[i] for i in lite0.predict(lite0.preprocess(imgs[name]))[0].topk(3).indices}  # noqa: E731
    assert top3("chelsea") & cats
    assert "espresso" in top3("coffee")
    assert len(lite0.classes) == 1000


def test_missing_torchvision_weights_say_which_file_and_where(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    reason = zoo.unavailable_reason("resnet50")
    assert reason and "resnet50-0676ba61.pth" in reason and str(tmp_path / "checkpoints") in reason
    zoo.load_model.cache_clear()
    with pytest.raises(ModelUnavailable, match="resnet50-0676ba61.pth"):
        zoo.load_model("resnet50")


def test_synthetic_model_reaches_its_stated_accuracy_and_masks_cover_the_target(shapes):
    meta = json.loads((Path(zoo.models.WEIGHTS_DIR) / "shapes_cnn.json").read_text())
    assert meta["test_accuracy"] >= 0.95
    x, y, m = make_dataset(300, seed=123_456)  # fresh samples, never seen in training
    acc = (shapes.predict(shapes.normalize(x)).argmax(1) == y).float().mean()
    assert acc >= 0.95
    assert m.any(dim=(1, 2)).all()
    masks = zoo.sample_masks()
    for cls in CLASSES:
        key = f"shapes: {cls}"
        assert masks[key].shape == (64, 64) and masks[key].any()
        pred = shapes.predict(shapes.preprocess(zoo.sample_images()[key])).argmax()
        assert shapes.classes[int(pred)] == cls


def test_synthetic_dataset_is_seeded():
    a, b = make_dataset(5, seed=7), make_dataset(5, seed=7)
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))


def test_sample_images_are_rgb():
    imgs = zoo.sample_images()
    assert {"chelsea", "coffee", "rocket", "camera", "stereo_motorcycle", "astronaut"} <= set(imgs)
    assert all(im.mode == "RGB" for im in imgs.values())


@pytest.mark.parametrize(
    "make",
    [
        lambda: Image.new("L", (40, 30), 128),
        lambda: Image.new("RGBA", (40, 30), (255, 0, 0, 0)),
        lambda: Image.new("RGB", (40, 30), "red").convert("P"),
        lambda: Image.fromarray((np.arange(40 * 30).reshape(30, 40) * 50).astype(np.uint16)),
    ],
)
def test_image_modes_are_converted_to_rgb(make):
    img = zoo.load_image(_png(make()))
    assert img.mode == "RGB" and img.size == (40, 30)


def test_transparent_pixels_become_white_and_cmyk_and_tiff_float_load():
    img = zoo.load_image(_png(Image.new("RGBA", (20, 20), (255, 0, 0, 0))))
    assert img.getpixel((0, 0)) == (255, 255, 255)
    assert zoo.load_image(_png(Image.new("CMYK", (20, 20), (0, 255, 255, 0)), "JPEG")).mode == "RGB"
    f = Image.fromarray(np.linspace(0, 1, 400, dtype=np.float32).reshape(20, 20), mode="F")
    assert zoo.load_image(_png(f, "TIFF")).mode == "RGB"


def test_exif_orientation_is_honoured():
    img = Image.new("RGB", (40, 20), "blue")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees
    out = zoo.load_image(_png(img, "JPEG", exif=exif))
    assert out.size == (20, 40)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "damaged|not an image"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'></svg>", "not an image"),
    ],
)
def test_bad_files_are_refused_with_a_message(data, message):
    with pytest.raises(ImageError, match=message):
        zoo.load_image(data)


def test_truncated_and_bomb_and_tiny_images_are_refused():
    full = _png(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)), "JPEG")
    with pytest.raises(ImageError, match="damaged or truncated"):
        zoo.load_image(full[: len(full) // 2])
    with pytest.raises(ImageError):
        zoo.load_image(_png(Image.new("1", (50_000, 50_000))))
    with pytest.raises(ImageError, match="at least"):
        zoo.load_image(_png(Image.new("RGB", (1, 1))))
    big = zoo.load_image(_png(Image.new("RGB", (5000, 300))))
    assert max(big.size) <= 2048


class _Net(nn.Module):
    def __init__(self, k: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))


def _script(module: nn.Module) -> bytes:
    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(module), buf)
    return buf.getvalue()


def test_torchscript_upload_loads_and_checks_class_names():
    data = _script(_Net())
    m = zoo.load_torchscript(data, b"a\nb\nc\n", input_size=32)
    assert m.classes == ["a", "b", "c"] and m.predict(torch.zeros(1, 3, 32, 32)).shape == (1, 3)
    with pytest.raises(ModelFileError, match="2 names but the model has 3"):
        zoo.load_torchscript(data, "a\nb", input_size=32)


class _Evil:
    def __reduce__(self):
        return (Path.write_text, (Path(_Evil.target), "pwned"))


def test_a_malicious_pickle_is_never_executed(tmp_path):
    _Evil.target = str(tmp_path / "owned.txt")
    payload = pickle.dumps(_Evil())
    buf = io.BytesIO()
    torch.save({"x": _Evil()}, buf)
    for data in (payload, buf.getvalue()):
        with pytest.raises(ModelFileError):
            zoo.load_torchscript(data)
    assert not (tmp_path / "owned.txt").exists()


class _WrongShape(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=1)


class _Raises(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("boom")


class _NaN(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)[:, :3] * float("nan")


@pytest.mark.parametrize(("module", "message"), [(_WrongShape(), "shape"), (_Raises(), "fails"), (_NaN(), "NaN")])
def test_broken_torchscript_models_are_refused(module, message):
    with pytest.raises(ModelFileError, match=message):
        zoo.load_torchscript(_script(module), input_size=16)
    with pytest.raises(ModelFileError, match="not a TorchScript"):
        zoo.load_torchscript(b"hello")
