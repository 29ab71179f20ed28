"""Model zoo and image loading, all offline."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch
from PIL import Image

import zoo
from core.errors import ModelUnavailable
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
    meta = json.loads((Path(zoo.catalog.WEIGHTS_DIR) / "shapes_cnn.json").read_text())
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


def test_downloading_weights_creates_the_torch_hub_folder_first(monkeypatch, tmp_path):
    """A fresh machine has no <torch hub>/checkpoints folder: the download used to fail writing '<file>.partial'."""
    import torch

    hub = tmp_path / "fresh" / "hub"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))

    def fake_download(url: str, dst: str, progress: bool = True) -> None:  # what torch does: write next to dst
        with open(dst + ".partial", "wb") as f:
            f.write(b"weights")
        Path(dst + ".partial").rename(dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    path = zoo.download_weights("vgg16")
    assert path.exists() and path.parent == hub / "checkpoints"
    assert zoo.unavailable_reason("vgg16") is None
