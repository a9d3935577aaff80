"""Detection transfer (E8, the paper's Table 7): the `[detection]` table, its stage kinds, planning and run functions.

Each arm puts a classification backbone of the same seed into Faster R-CNN (train/detection.py)
and trains it on VOC (data/voc.py):

- `det_unpruned`: the unpruned classification model (`train_large`) transferred;
- `det_prune_c`: the pruned and fine-tuned classification model (`finetune`) transferred;
- `det_scratch_e` / `det_scratch_b`: the pruned architecture trained from scratch on
  classification (`scratch_e` / `scratch_b`), transferred;
- `det_prune_d`: the detector trained from the unpruned backbone (the `det_unpruned` stage),
  its backbone pruned by the method, then fine-tuned on detection (`det_prune` stage, the
  detection fine-tune recipe).

Results are VOC07 mAP (11-point, and the all-point area), recorded in each result's `info`
with `primary_acc` empty, so the classification tables skip them; report/detection.py
lays them out as the paper does.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from prunebench.errors import ConfigError
from prunebench.experiment.identity import non_default
from prunebench.experiment.resolve import recipe_of

if TYPE_CHECKING:
    from prunebench.experiment.graph import _Builder
    from prunebench.experiment.preset import MethodConfig

#: detection arm -> the classification arm whose model is transferred (None: Prune-D)
DETECTION_ARMS = {"unpruned": "unpruned", "prune_c": "finetuned", "prune_d": None, "scratch_e": "scratch_e", "scratch_b": "scratch_b"}
DETECTION_KINDS = {
    "det_train": "train Faster R-CNN on a transferred classification backbone (VOC)",
    "det_prune": "prune the detection-trained backbone, fine-tune the detector (Prune-D)",
}
_DETECTOR_KEYS = {"stages", "frozen_stages", "min_size", "max_size", "anchor_sizes", "aspect_ratios", "rpn_batch",
                  "box_batch", "representation", "warmup_iters", "hflip", "frozen_bn"}  # fmt: skip


def parse_detection(r: Any, raw: Any, arms: tuple[str, ...]) -> dict[str, Any] | None:
    """The preset's `[detection]` table (None when absent), checked key by key."""
    if raw is None:
        return None
    from prunebench.data.voc import TRAIN_SETS
    from prunebench.experiment.preset import _recipe

    t = r.table(raw, "detection", {"data", "arms", "train_subset", "test_subset", "recipe", "finetune", *_DETECTOR_KEYS})
    det_arms = r.get(t, "arms", "detection", r.list_of(r.choice(*DETECTION_ARMS), nonempty=True))
    for a in det_arms:
        need = DETECTION_ARMS[a] or "unpruned"
        if need not in arms:
            raise r.fail("detection.arms", f"{a!r} transfers the {need} classification arm: switch arms.{need} on")
    recipe = _recipe(r, r.get(t, "recipe", "detection", r.raw), "detection.recipe")
    finetune = _recipe(r, r.get(t, "finetune", "detection", r.raw, {"epochs": 1, "lr": recipe.lr / 10}), "detection.finetune", inherit=recipe)
    detector: dict[str, Any] = {}
    for k in sorted(_DETECTOR_KEYS & set(t)):
        check = {"anchor_sizes": r.list_of(r.pos_int, nonempty=True), "aspect_ratios": r.list_of(r.pos_num, nonempty=True),
                 "hflip": r.bool_, "frozen_bn": r.bool_, "frozen_stages": r.nonneg_int}.get(k, r.pos_int)  # fmt: skip
        detector[k] = r.get(t, k, "detection", check)
    return {
        "data": r.get(t, "data", "detection", r.choice(*TRAIN_SETS), "voc2007"),
        "arms": list(det_arms),
        "train_subset": r.get(t, "train_subset", "detection", r.pos_int, None),
        "test_subset": r.get(t, "test_subset", "detection", r.pos_int, None),
        "recipe": recipe.to_dict(), "finetune": finetune.to_dict(), "detector": detector,
    }  # fmt: skip


def _fingerprint(b: _Builder) -> dict[str, Any]:
    """What enters every detection stage's identity: data, subsets, detector settings (with the
    backbone's classification normalisation)."""
    d = b.preset.detection
    assert d is not None
    detector = {**d["detector"]}
    if b.data_fp.get("mean") is not None:
        detector["mean"], detector["std"] = list(b.data_fp["mean"]), list(b.data_fp["std"])
    return {"data": d["data"], "train_subset": d["train_subset"], "test_subset": d["test_subset"], "detector": detector}


def plan_detection(b: _Builder, m: MethodConfig, r: Any, seed: int) -> None:
    """The detection arms of one (method, seed): each transfers that seed's classification stage."""
    d = b.preset.detection
    if d is None:
        return
    fp = _fingerprint(b)
    recipe = non_default(recipe_of(d["recipe"]))

    def linked(arm: str) -> str:
        sids = [sid for lab, a, sid, _ in b.links if lab == m.label and a == arm and b.stages[sid].seed == seed]
        if not sids:
            raise ConfigError(f"{b.preset.file}: detection.arms: method {m.label!r} has no {arm} stage to transfer")
        return sids[0]

    unpruned = ""
    for arm, source in DETECTION_ARMS.items():
        if source is None or (arm not in d["arms"] and not (arm == "unpruned" and "prune_d" in d["arms"])):
            continue
        sid = b.add("det_train", seed, {"detection": fp, "recipe": recipe, "source": source}, {"backbone": linked(source)},
                    {"source": source}, m.label)  # fmt: skip
        if arm == "unpruned":
            unpruned = sid
        if arm in d["arms"]:
            b.link(m.label, f"det_{arm}", sid)
    if "prune_d" in d["arms"]:
        cfg = {"detection": fp, "recipe": non_default(recipe_of(d["finetune"])), "method": m.name, "options": r.options}
        sid = b.add("det_prune", seed, cfg, {"detector": unpruned}, {"method": m.name, "options": m.options}, m.label)
        b.link(m.label, "det_prune_d", sid)


# -- running ----------------------------------------------------------------------------------

_VOC: dict[str, Any] = {}  # per process: every detection stage of an experiment reads the same sets


def _voc(fp: dict[str, Any], split: str, data_dir: str | None) -> Any:
    from prunebench.data.voc import load_voc

    key = f"{fp['data']}|{split}|{fp[split + '_subset']}|{data_dir}"
    if key not in _VOC:
        _VOC[key] = load_voc(fp["data"], split, data_dir, subset=fp[split + "_subset"])
    return _VOC[key]


def _config(fp: dict[str, Any]) -> Any:
    from prunebench.train.detection import DetectorConfig

    return DetectorConfig.from_dict(fp["detector"])


def _record(ctx: Any, arm: str, net: Any, result: Any, train_set: Any, test_set: Any, **extra: Any) -> tuple[str, dict[str, Any]]:
    from prunebench.measure import count_params

    params = count_params(net)
    ctx.store.add_metrics(ctx.stage.id, [{"epoch": i, **h} for i, h in enumerate(result.history)])
    info = {"task": "detection", "map11": result.map11, "map_all": result.map_all, "per_class": result.per_class,
            "train": train_set.source, "test": test_set.source, "train_digest": train_set.digest,
            "test_digest": test_set.digest, "train_images": len(train_set), "test_images": len(test_set), **extra}  # fmt: skip
    ctx.store.add_result(ctx.stage.id, arm, ctx.stage.seed, primary_acc=None, info=info, params_total=params.total,
                         params_nonzero=params.nonzero)  # fmt: skip
    ctx.store.set_budget(ctx.stage.id, epochs=result.epochs, lr=recipe_of(ctx.stage.config["recipe"]).lr,
                         optimizer_steps=result.iterations, images_seen=result.images_seen, wall_s=result.wall_s)  # fmt: skip
    return "physical", {"map11": result.map11, "map_all": result.map_all}


def _det_train(ctx: Any) -> tuple[str, dict[str, Any]]:
    from prunebench.data.voc import CLASSES
    from prunebench.train import load_model, seed_everything
    from prunebench.train.detection import build_detector, train_detector

    fp = ctx.stage.config["detection"]
    train_set, test_set = _voc(fp, "train", ctx.task.data_dir), _voc(fp, "test", ctx.task.data_dir)
    net, masks, _ = load_model(ctx.up("backbone") / "final")
    if masks:
        raise ConfigError("detection transfer needs a physically pruned backbone; this one is masked")
    seed_everything(ctx.stage.seed)
    cfg = _config(fp)
    detector = build_detector(net, cfg, len(CLASSES))
    result = train_detector(detector, train_set, test_set, recipe_of(ctx.stage.config["recipe"]), cfg, ctx.out,
                            seed=ctx.stage.seed, device=ctx.task.device)  # fmt: skip
    arm = {v: k for k, v in DETECTION_ARMS.items() if v}[ctx.stage.config["source"]]
    return _record(ctx, f"det_{arm}", net, result, train_set, test_set)


def _det_prune(ctx: Any) -> tuple[str, dict[str, Any]]:
    """Prune-D: the method prunes the detection-trained backbone (as it prunes a classifier; its
    data-driven criteria see no detection data), then the whole detector is fine-tuned on VOC."""
    from prunebench.experiment.stages import _method
    from prunebench.train import seed_everything
    from prunebench.train.detection import DETECTOR_DIR, backbone_net, load_detector, train_detector

    fp = ctx.stage.config["detection"]
    train_set, test_set = _voc(fp, "train", ctx.task.data_dir), _voc(fp, "test", ctx.task.data_dir)
    trained, _ = load_detector(ctx.up("detector") / DETECTOR_DIR)
    method, opts = _method(ctx.stage)
    seed_everything(ctx.stage.seed)
    res = method.prune(backbone_net(trained).cpu(), ctx.splits, opts, seed=ctx.stage.seed)
    if res.masks:
        raise ConfigError(f"Prune-D needs a method that prunes physically; {method.name} gave masks")
    detector, cfg = load_detector(ctx.up("detector") / DETECTOR_DIR, net=res.model)  # heads kept: same output width
    result = train_detector(detector, train_set, test_set, recipe_of(ctx.stage.config["recipe"]), cfg, ctx.out,
                            seed=ctx.stage.seed, device=ctx.task.device)  # fmt: skip
    return _record(ctx, "det_prune_d", res.model, result, train_set, test_set, kept=res.kept)


#: stage kind -> run function, merged into `stages._KINDS`
DETECTION_RUNNERS = {"det_train": _det_train, "det_prune": _det_prune}


def detector_settings(preset_detection: dict[str, Any]) -> dict[str, Any]:
    """The detector settings in force (defaults filled in), for the report's notes."""
    from prunebench.train.detection import DetectorConfig

    return {**asdict(DetectorConfig()), **preset_detection["detector"]}
