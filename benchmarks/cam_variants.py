"""FullGrad, Sobol attribution and Extremal Perturbations: seconds over one forward+backward pass, and FullGrad's
agreement with pytorch-grad-cam.

For EfficientNet-Lite0 and a ResNet-18 (random weights), 224 px, one image: each method's time / t_fb (one
forward+backward of one image, measured in the same run), pytorch-grad-cam's time for the same FullGrad map / t_fb,
and the largest difference between the two maps after aligning conventions (pytorch-grad-cam min-max scales the
summed map: an affine map, fitted; maps in [0, 1]). Sobol and Extremal Perturbations have no PyTorch reference
library: time only, at their defaults. Run: python benchmarks/cam_variants.py [--lite0-only] (needs grad-cam, in requirements.txt).
"""

from __future__ import annotations

import copy
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(1, str(Path(__file__).resolve().parent))

import pytorch_grad_cam as gc  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402
from timing import best_of  # noqa: E402

import explainers  # noqa: E402
import zoo  # noqa: E402

LIBRARY = {"fullgrad": "FullGrad"}  # the other CAM variants: tests/test_cam_variants.py and the README's table
OTHERS = ("sobol", "extremal_perturbation")


def affine_gap(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    """max |theirs - (a * ours + b)| with a, b fitted by least squares (theirs in [0, 1])."""
    a, b = ours.flatten().double(), torch.as_tensor(theirs).flatten().double()
    design = torch.stack([a, torch.ones_like(a)], 1)
    sol = torch.linalg.lstsq(design, b.unsqueeze(1)).solution
    return float((design @ sol).squeeze(1).sub(b).abs().max()) if sol[0] > 0 else float("nan")


def timed(fn) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def library_map(name: str, net: torch.nn.Module, layer: str, x: torch.Tensor, target: int) -> tuple[float, object]:
    ref = copy.deepcopy(net).requires_grad_(True)
    with getattr(gc, LIBRARY[name])(model=ref, target_layers=[dict(ref.named_modules())[layer]]) as method:
        if hasattr(method, "batch_size"):
            method.batch_size = 64
        return timed(lambda: method(input_tensor=x, targets=[ClassifierOutputTarget(target)]))


def bench(title: str, model: object, layer: str, x: torch.Tensor) -> None:
    net = getattr(model, "model", model)
    target = int(net(x).argmax())

    def forward_backward() -> None:
        xg = x.clone().requires_grad_(True)
        torch.autograd.grad(net(xg)[0, target], xg)

    t_fb = best_of(forward_backward, reps=5)
    print(f"\n{title}: one forward+backward {t_fb * 1e3:.1f} ms")
    print(f"{'method':24s} {'ours / t_fb':>12s} {'grad-cam / t_fb':>16s} {'max |diff|':>11s}")
    for name in (*LIBRARY, *OTHERS):
        if name in LIBRARY:
            explainers.explain(name, model, x, target, layer=layer)  # warm-up (the others run long enough without)
        sec, ours = timed(lambda name=name: explainers.explain(name, model, x, target, layer=layer))
        if name in LIBRARY:
            lib_sec, theirs = library_map(name, net, layer, x, target)
            print(f"{name:24s} {sec / t_fb:12.1f} {lib_sec / t_fb:16.1f} {affine_gap(ours[0], theirs[0]):11.1e}")
        else:
            print(f"{name:24s} {sec / t_fb:12.1f} {'-':>16s} {'-':>11s}")


def main() -> None:
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    lite0 = zoo.load_model("efficientnet_lite0")
    x = lite0.preprocess(zoo.sample_images()["chelsea"])
    bench("EfficientNet-Lite0, 224 px", lite0, lite0.cam_layer, x)
    if "--lite0-only" not in sys.argv:
        resnet = torchvision.models.resnet18(weights=None).eval()
        bench("ResNet-18 (random weights), 224 px", resnet, "layer4", torch.randn(1, 3, 224, 224))


if __name__ == "__main__":
    main()
