"""timm CNNs in the model list: missing weights are explained, cached weights load with the model's own preprocessing,
the CAM layer located from a forward pass and the sanity blocks derived; the methods run on it."""

from __future__ import annotations

import pytest
import torch

import explainers
import zoo
from core.errors import ModelUnavailable
from zoo.catalog import timm_key

NAME = "mobilenetv3_large_100.ra_in1k"


@pytest.fixture
def hub(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    zoo.load_model.cache_clear()
    yield tmp_path
    zoo.load_model.cache_clear()


def test_a_timm_model_without_weights_names_the_file_and_where_it_goes(hub):
    key = timm_key(NAME)
    assert key in zoo.model_names()
    reason = zoo.unavailable_reason(key)
    assert reason and f"{NAME}.safetensors" in reason and str(hub / "checkpoints") in reason and "huggingface.co/timm/" in reason
    with pytest.raises(ModelUnavailable):
        zoo.load_model(key)


def test_a_timm_model_with_cached_weights_loads_with_its_config_and_runs_the_methods(hub):
    import timm
    from safetensors.torch import save_file

    source = timm.create_model(NAME, pretrained=False).eval()
    (hub / "checkpoints").mkdir()
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(hub / "checkpoints" / f"{NAME}.safetensors"))
    loaded = zoo.load_model(timm_key(NAME))
    cfg = timm.models.get_pretrained_cfg(NAME).to_dict()
    assert (loaded.mean, loaded.std, loaded.input_size) == (tuple(cfg["mean"]), tuple(cfg["std"]), cfg["input_size"][-1])
    assert loaded.resize == round(cfg["input_size"][-1] / cfg["crop_pct"])
    assert loaded.cam_layer and loaded.blocks is None  # located, derived
    x = loaded.preprocess(zoo.sample_images()["coffee"])
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), source(x), rtol=1e-4, atol=1e-4)  # the weights went in
    t = int(loaded.predict(x).argmax(1))
    for method in ("saliency", "gradcam", "guided_backprop"):
        m = explainers.explain(method, loaded, x, t)
        assert m.shape == (1, *x.shape[-2:]) and torch.isfinite(m).all() and m.abs().sum() > 0, method
