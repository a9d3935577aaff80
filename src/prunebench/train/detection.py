"""Faster R-CNN on a prunebench ResNet backbone: building, training and evaluating the detector.

The detector is torchvision's `FasterRCNN` (RPN, RoIAlign box head) on the zoo ResNet's stem and
first `stages` stages (one feature map, the torchvision custom-backbone layout: an
`AnchorGenerator` over it and `MultiScaleRoIAlign` 7x7).  The backbone's output width is read
from its spec, so a pruned ResNet (other inner widths, possibly other stage widths) plugs in
as the unpruned one.  BatchNorm in the backbone is frozen (statistics and affine, as Detectron
and torchvision do for small detection batches) and the stem plus the first `frozen_stages`
stages do not train.

torchvision is imported inside the functions: the rest of prunebench imports without it.

A trained detector is saved as its backbone (a zoo checkpoint: `spec.json` + safetensors) and
its heads (`heads.safetensors`) with the detector settings (`detector.json`); never a pickle.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prunebench.data.voc import VOCImage, VOCSet, read_image
from prunebench.errors import CheckpointError, PrunebenchError
from prunebench.measure.voc_map import VOCResult, voc_map
from prunebench.models import attached_spec

DETECTOR_DIR = "detector"
RESULT_FILE = "result.json"
STATE_FILE = "state.pt"


@dataclass(frozen=True)
class DetectorConfig:
    """Detector settings (defaults: torchvision's Faster R-CNN and the Detectron VOC conventions)."""

    stages: int = 4  # backbone stages used (4: stride 32, the whole trunk)
    frozen_stages: int = 1  # stem + this many stages do not train (Detectron FREEZE_AT = 2)
    frozen_bn: bool = True  # False: BN trains (a backbone whose statistics do not fit the images, as in the toy test)
    min_size: int = 600  # shorter image side after resizing (the VOC convention)
    max_size: int = 1000
    anchor_sizes: tuple[int, ...] = (32, 64, 128, 256, 512)
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    rpn_batch: int = 256  # anchors sampled per image for the RPN loss
    box_batch: int = 128  # RoIs sampled per image for the box head (py-faster-rcnn / Detectron VOC)
    representation: int = 1024  # width of the box head's two fully connected layers (torchvision's)
    warmup_iters: int = 500  # linear LR warm-up from 1/3 (Detectron)
    hflip: bool = True
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)  # the backbone's classification normalisation
    std: tuple[float, ...] = (0.229, 0.224, 0.225)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DetectorConfig:
        tuples = {"anchor_sizes", "aspect_ratios", "mean", "std"}
        kw: dict[str, Any] = {k: tuple(v) if k in tuples else v for k, v in d.items()}
        return cls(**kw)


@dataclass
class DetectionResult:
    map11: float
    map_all: float
    per_class: dict[str, Any]
    epochs: int
    iterations: int
    images_seen: int
    wall_s: float
    history: list[dict[str, float]] = field(default_factory=list)


class ResNetBackbone(nn.Module):
    """The stem and first `stages` stages of a zoo ResNet as a one-feature-map detection backbone."""

    def __init__(self, net: nn.Module, stages: int, frozen_bn: bool = True) -> None:
        super().__init__()
        self.frozen_bn = frozen_bn
        spec: Any = attached_spec(net)  # a ResNetSpec (checked below)
        if spec.family != "resnet":
            raise PrunebenchError(f"the detector needs an ImageNet-style ResNet backbone, got {spec.label} ({spec.family})")
        if not 1 <= stages <= len(spec.blocks):
            raise PrunebenchError(f"detector stages must be in [1, {len(spec.blocks)}] for {spec.label}, got {stages}")
        self.net = net
        self.stages = stages
        expansion = 1 if spec.block == "basic" else 4
        self.out_channels = spec.planes[stages - 1] * expansion  # read from the spec: pruned nets differ

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.net
        x = n.get_submodule("maxpool")(n.get_submodule("relu")(n.get_submodule("bn1")(n.get_submodule("conv1")(x))))
        for s in range(self.stages):
            x = n.get_submodule(f"layer{s + 1}")(x)
        return x

    def freeze(self, frozen_stages: int) -> None:
        """No gradient for the stem and the first `frozen_stages` stages (and BN layers when frozen)."""
        frozen = ["conv1", "bn1", *(f"layer{s + 1}" for s in range(frozen_stages))] if frozen_stages else []
        for name, p in self.net.named_parameters():
            module = name.rsplit(".", 1)[0]
            bn = isinstance(self.net.get_submodule(module), nn.BatchNorm2d)
            if name.split(".")[0] in frozen or (bn and self.frozen_bn):
                p.requires_grad_(False)

    def train(self, mode: bool = True) -> ResNetBackbone:
        super().train(mode)
        if self.frozen_bn:  # frozen statistics: detection batches are a few images
            for m in self.net.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.eval()
        return self


def build_detector(net: nn.Module, cfg: DetectorConfig, num_classes: int) -> nn.Module:
    """Faster R-CNN over `net` (a zoo ResNet; its spec decides the widths) for `num_classes` object classes."""
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.ops import MultiScaleRoIAlign

    in_channels = attached_spec(net).in_channels
    if len(cfg.mean) != in_channels or len(cfg.std) != in_channels:
        raise PrunebenchError(f"detector mean/std need {in_channels} values (the backbone's input channels)")
    backbone = ResNetBackbone(net, cfg.stages, cfg.frozen_bn)
    backbone.freeze(cfg.frozen_stages)
    anchors = AnchorGenerator(sizes=(tuple(cfg.anchor_sizes),), aspect_ratios=(tuple(cfg.aspect_ratios),))
    roi = MultiScaleRoIAlign(featmap_names=["0"], output_size=7, sampling_ratio=2)
    head = TwoMLPHead(backbone.out_channels * 7 * 7, cfg.representation)
    return FasterRCNN(
        backbone, num_classes=None, rpn_anchor_generator=anchors, box_roi_pool=roi, box_head=head,
        box_predictor=FastRCNNPredictor(cfg.representation, num_classes + 1),
        min_size=cfg.min_size, max_size=cfg.max_size, image_mean=list(cfg.mean), image_std=list(cfg.std),
        rpn_batch_size_per_image=cfg.rpn_batch, box_batch_size_per_image=cfg.box_batch,
    )  # fmt: skip


def backbone_net(detector: nn.Module) -> nn.Module:
    """The zoo ResNet inside a detector."""
    return detector.get_submodule("backbone.net")


# -- data ---------------------------------------------------------------------------------------


def _image(im: VOCImage, channels: int) -> torch.Tensor:
    x = read_image(im).float().div_(255)
    return x.mean(0, keepdim=True) if channels == 1 else x


def _target(im: VOCImage, flip: bool, keep_difficult: bool) -> dict[str, torch.Tensor]:
    keep = torch.ones_like(im.difficult) if keep_difficult else ~im.difficult  # training skips difficult boxes
    boxes = im.boxes[keep].clone()
    if flip:
        boxes[:, [0, 2]] = im.width - boxes[:, [2, 0]]
    return {"boxes": boxes, "labels": im.labels[keep]}


def _batches(data: VOCSet, batch_size: int, channels: int, g: torch.Generator, hflip: bool) -> Iterator[tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]]:
    order = torch.randperm(len(data), generator=g).tolist()
    for i in range(0, len(order), batch_size):
        xs, ts = [], []
        for k in order[i : i + batch_size]:
            im = data.images[k]
            flip = hflip and bool(torch.rand(1, generator=g).item() < 0.5)
            x = _image(im, channels)
            xs.append(x.flip(-1) if flip else x)
            ts.append(_target(im, flip, keep_difficult=False))
        yield xs, ts


# -- training -------------------------------------------------------------------------------------


def _atomic_save(obj: Any, path: Path) -> None:
    from prunebench.outputs import tmp_name  # the temp form stage clean-up recognises

    tmp = tmp_name(path)
    torch.save(obj, tmp)
    os.replace(tmp, path)


def train_detector(
    detector: nn.Module, train_set: VOCSet, test_set: VOCSet, recipe: Any, cfg: DetectorConfig, out_dir: Path, *,
    seed: int, device: str | None = None,
) -> DetectionResult:  # fmt: skip
    """SGD with the recipe's per-epoch LR (after a linear warm-up), resumable per epoch from
    `out_dir/state.pt`; then the VOC07 evaluation on `test_set`.  A finished run (its
    `result.json`) is returned as stored.  Writes the trained detector to `out_dir/detector/`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if (out_dir / RESULT_FILE).exists():
        return DetectionResult(**json.loads((out_dir / RESULT_FILE).read_text()))
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    detector.to(dev)
    params = [p for p in detector.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay, nesterov=recipe.nesterov)
    channels = attached_spec(backbone_net(detector)).in_channels
    g = torch.Generator().manual_seed(seed)
    start, it, history, wall = 0, 0, [], 0.0
    state_path = out_dir / STATE_FILE
    if state_path.exists():
        try:
            st = torch.load(state_path, weights_only=True, map_location=dev)
        except Exception as e:
            raise CheckpointError(f"{state_path}: cannot resume ({e})") from None
        detector.load_state_dict(st["model"])
        opt.load_state_dict(st["optimizer"])
        g.set_state(st["generator"])
        start, it, history, wall = st["epoch"], st["iterations"], json.loads(st["history"]), st["wall_s"]
    torch.manual_seed(seed)
    for epoch in range(start, recipe.epochs):
        t0 = time.perf_counter()
        detector.train()
        losses: dict[str, float] = {}
        n = 0
        for xs, ts in _batches(train_set, recipe.batch_size, channels, g, cfg.hflip):
            warm = min(1.0, (1 + 2 * it / cfg.warmup_iters) / 3) if it < cfg.warmup_iters else 1.0
            for group in opt.param_groups:
                group["lr"] = recipe.lr_at(epoch) * warm
            loss_dict = detector([x.to(dev) for x in xs], [{k: v.to(dev) for k, v in t.items()} for t in ts])
            loss = sum(loss_dict.values())
            if not torch.isfinite(loss):
                raise PrunebenchError(f"detector training diverged at epoch {epoch} (loss {float(loss)}); lower the LR")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            for k, v in loss_dict.items():
                losses[k] = losses.get(k, 0.0) + float(v.detach()) * len(xs)
            n += len(xs)
            it += 1
        wall += time.perf_counter() - t0
        history.append({"loss": sum(losses.values()) / max(n, 1), **{k: v / max(n, 1) for k, v in losses.items()},
                        "lr": recipe.lr_at(epoch)})  # fmt: skip
        _atomic_save({"model": detector.state_dict(), "optimizer": opt.state_dict(), "generator": g.get_state(),
                      "epoch": epoch + 1, "iterations": it, "history": json.dumps(history), "wall_s": wall}, state_path)  # fmt: skip
    save_detector(out_dir / DETECTOR_DIR, detector, cfg)
    voc = evaluate_detector(detector, test_set, device=str(dev))
    result = DetectionResult(voc.map11, voc.map_all, voc.to_dict()["per_class"], recipe.epochs, it,  # type: ignore[arg-type]
                             recipe.epochs * len(train_set), wall, history)  # fmt: skip
    from prunebench.outputs import atomic_write_text

    atomic_write_text(out_dir / RESULT_FILE, json.dumps(asdict(result), indent=1))
    state_path.unlink(missing_ok=True)  # the detector folder holds the weights now
    return result


@torch.no_grad()
def evaluate_detector(detector: nn.Module, test_set: VOCSet, *, device: str | None = None, batch_size: int = 4) -> VOCResult:
    """VOC07 AP (11-point and all-point) of `detector` on `test_set`, difficult boxes ignored."""
    dev = torch.device(device or "cpu")
    detector.to(dev).eval()
    channels = attached_spec(backbone_net(detector)).in_channels
    preds, targets = [], []
    ims = test_set.images
    for i in range(0, len(ims), batch_size):
        chunk = ims[i : i + batch_size]
        outs = detector([_image(im, channels).to(dev) for im in chunk])
        for im, o in zip(chunk, outs):
            preds.append((o["boxes"].cpu().numpy(), o["scores"].cpu().numpy(), o["labels"].cpu().numpy()))
            targets.append((im.boxes.numpy(), im.labels.numpy(), im.difficult.numpy()))
    return voc_map(preds, targets, test_set.classes)


# -- saving ------------------------------------------------------------------------------------


def save_detector(folder: Path, detector: nn.Module, cfg: DetectorConfig) -> None:
    """Backbone as a zoo checkpoint, heads as safetensors, settings as JSON (all atomic)."""
    from safetensors.torch import save_file

    from prunebench.outputs import atomic_write_text, tmp_name
    from prunebench.train.checkpoint import save_model

    folder.mkdir(parents=True, exist_ok=True)
    net = backbone_net(detector)
    save_model(folder / "backbone", net.cpu())
    heads = {k: v.detach().cpu().contiguous() for k, v in detector.state_dict().items() if not k.startswith("backbone.")}
    tmp = tmp_name(folder / "heads.safetensors")
    save_file(heads, str(tmp))
    os.replace(tmp, folder / "heads.safetensors")
    num_classes = int(getattr(detector.get_submodule("roi_heads.box_predictor.cls_score"), "out_features")) - 1
    atomic_write_text(folder / "detector.json", json.dumps({"config": asdict(cfg), "num_classes": num_classes}, indent=1))


def load_detector(folder: Path, net: nn.Module | None = None) -> tuple[nn.Module, DetectorConfig]:
    """The detector saved in `folder`; `net` replaces its backbone (a pruned one: heads must still fit)."""
    from safetensors.torch import load_file

    from prunebench.train.checkpoint import load_model

    try:
        meta = json.loads((folder / "detector.json").read_text())
        heads = load_file(str(folder / "heads.safetensors"))
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{folder}: not a saved detector ({e})") from None
    cfg = DetectorConfig.from_dict(meta["config"])
    if net is None:
        net = load_model(folder / "backbone")[0]
    detector = build_detector(net, cfg, meta["num_classes"])
    try:
        missing = detector.load_state_dict(heads, strict=False)
    except RuntimeError as e:
        raise CheckpointError(f"{folder}: the saved heads do not fit this backbone ({str(e).splitlines()[0]})") from None
    bad = [k for k in missing.missing_keys if not k.startswith("backbone.")] + list(missing.unexpected_keys)
    if bad:
        raise CheckpointError(f"{folder}: heads.safetensors does not match the detector ({bad[:3]})")
    return detector, cfg
