"""Expand a preset into its stage graph: arms x methods x seeds.

    train_large(seed) [-> soft_train] -> prune(method, seed) -> finetune
                                       -> scratch_e, scratch_b, uniform_scratch,
                                          winning_ticket(lr), random_ticket(lr),
                                          uniform_sparse_scratch, guided_scratch, guided_sparse_scratch

Iterative magnitude pruning with reset (magnitude `iterative = "imp"`, k rounds) chains, per
ticket LR, prune -> winning_ticket -> imp_prune -> winning_ticket ...: round r's `imp_prune`
prunes round r-1's trained winning ticket; each round's tickets are the rows `<label>-r<r>`.

`soft_train` exists only for SFP from a pretrained model (`pretrained = true`): the
plain large model is the pretrain baseline, soft pruning continues from its weights.
`transferred_guided_scratch` (with a `[transfer]` table) adds the source preset's
train_large -> prune stages of the same seed, with the source's own data set, as
upstream `source_large` / `source_pruned`.

Every scratch-type stage hangs off the pruning run of the same seed (seed-paired,
docs/protocol.md §1 Arms), and records that run's identity as its `pruned` upstream.  Stages
with equal identity (the plain large model shared by L1-norm and magnitude
pruning) appear once and list every method that uses them.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from prunebench.errors import ConfigError
from prunebench.experiment.baselines import BASELINE_KINDS, large_rewind_config, plan_baselines
from prunebench.experiment.detection_stages import DETECTION_KINDS, plan_detection
from prunebench.experiment.identity import derived_seed, non_default, stage_identity
from prunebench.experiment.planned import planned_scratch_b
from prunebench.experiment.preset import PRETRAINED_SOFT_LR, MethodConfig, Preset, load_preset
from prunebench.experiment.resolve import ResolvedMethod, data_fingerprint, recipe_of, resolve_method
from prunebench.measure import BudgetPolicy

#: stage kind -> what it trains or computes, for the dry run
KINDS = {
    "train_large": "train the large model",
    "soft_train": "soft-pruning training starting from the pretrained large model (SFP)",
    "prune": "prune the large model (and evaluate it without fine-tuning)",
    "finetune": "fine-tune the pruned model",
    **BASELINE_KINDS,  # retraining-budget and random-selection baselines (experiment/baselines.py)
    "scratch_e": "train the pruned architecture from scratch, same epochs",
    "scratch_b": "train the pruned architecture from scratch, same compute",
    "uniform_scratch": "train a uniformly narrowed model of the same cost from scratch",
    "winning_ticket": "retrain the pruned model from the large model's own init",
    "random_ticket": "retrain the pruned model from a random init",
    "imp_prune": "prune the previous round's trained winning ticket again (iterative magnitude pruning, reset to θ₀)",
    "uniform_sparse_scratch": "train the full model from scratch under random masks of the pruned model's density",
    "guided_scratch": "train a model with the pruned model's per-stage average widths from scratch",
    "guided_sparse_scratch": "train the full model from scratch under masks with the pruned model's per-stage sparsity",
    "transferred_guided_scratch": "train a model with another experiment's pruned per-stage widths (or sparsity) from scratch",
    **DETECTION_KINDS,  # detection transfer, E8 (experiment/detection_stages.py)
}
#: architecture-search arm (= its stage kind) -> the pruning style it applies to; other runs skip it
_SEARCH_ARMS = {
    "uniform_sparse_scratch": "mask",
    "guided_scratch": "physical",
    "guided_sparse_scratch": "mask",
}


def folder_label(label: str) -> str:
    """A method label as it can stand in a folder name: `l1norm-50%` -> `l1norm-50`."""
    return re.sub(r"[^A-Za-z0-9._+-]+", "-", label).strip("-.")[:40] or "method"


@dataclass(frozen=True)
class Stage:
    """One unit of work. `config` (hashed) decides the output; `payload` says how to run it."""

    id: str
    kind: str
    seed: int
    config: dict[str, Any]
    upstream: dict[str, str]  # role -> stage id
    payload: dict[str, Any]
    methods: tuple[str, ...] = ()
    # the folder an existing experiment recorded for this stage (`with_folders`); "" = a new stage
    folder: str = ""

    @property
    def dirname(self) -> str:
        """`<kind>-<method label>-s<seed>-<id12>` (`shared` when several methods use the stage),
        unless the store recorded another folder for it (an experiment started by an older version)."""
        if self.folder:
            return self.folder
        label = folder_label(self.methods[0]) if len(self.methods) == 1 else "shared"
        return f"{self.kind}-{label}-s{self.seed}-{self.id[:12]}"

    def describe(self) -> str:
        who = f" {'+'.join(self.methods)}" if self.methods else ""
        lr = f" lr {self.payload['lr']:g}" if "lr" in self.payload else ""
        # a method's plain baseline and its own large training share a label: say which this is
        training = self.config.get("large_training", {}).get("kind") if self.kind == "train_large" else None
        how = f" ({training} training)" if training else ""
        return f"{self.kind}{who}{how}{lr} seed {self.seed}"


@dataclass
class Plan:
    preset: Preset
    stages: list[Stage]  # upstream stages always come first
    # (method label, arm, stage id, the stage's result row it reads): the plain baseline of a
    # slimming run is another method's "unpruned" train_large stage
    links: list[tuple[str, str, str, str]] = field(default_factory=list)

    def by_id(self) -> dict[str, Stage]:
        return {s.id: s for s in self.stages}


class _Builder:
    def __init__(self, preset: Preset, data_fp: dict[str, Any]) -> None:
        self.preset = preset
        self.data_fp = data_fp
        self.stages: dict[str, Stage] = {}
        self.links: list[tuple[str, str, str, str]] = []

    def add(
        self, kind: str, seed: int, config: dict[str, Any], upstream: dict[str, str], payload: dict[str, Any],
        method: str, *, data: dict[str, Any] | None = None,
    ) -> str:  # fmt: skip
        """Add (or share) a stage; `data` overrides the preset's data (a transfer source's stages)."""
        config = {"data": data or self.data_fp, **config}
        sid = stage_identity(kind, config, upstream, seed)
        old = self.stages.get(sid)
        if old is None:
            self.stages[sid] = Stage(sid, kind, seed, config, upstream, payload, (method,))
        elif method not in old.methods:
            self.stages[sid] = dataclasses.replace(old, methods=old.methods + (method,))
        return sid

    def link(self, method: str, arm: str, sid: str, result_arm: str | None = None) -> None:
        entry = (method, arm, sid, result_arm or arm)
        if entry not in self.links:
            self.links.append(entry)


def expand(preset: Preset, *, split_hash: str | None = None, source_split_hash: str | None = None) -> Plan:
    """The stage graph of `preset`. Without split hashes (dry run) no data is loaded;
    `source_split_hash` is that of the transfer source's data set."""
    b = _Builder(preset, data_fingerprint(preset, split_hash))
    large_recipe = non_default(recipe_of(preset.large.to_dict()))
    arms = set(preset.arms)
    source = _Source(b, source_split_hash) if "transferred_guided_scratch" in arms else None
    for m in preset.methods:
        r = resolve_method(preset, m)
        imp = _imp_rounds(preset, m)
        _check_reinit(preset, m, r)
        for seed in preset.seeds:
            rewind = large_rewind_config(preset)  # the epoch-t checkpoint of weight rewinding, when asked
            plain_cfg = {"model": r.plain_spec, "recipe": large_recipe, "large_training": {"kind": "plain"}, **rewind}
            plain_payload = {"method": m.name, "options": m.options, "plain": True}
            if r.pretrained:  # SFP from a pretrained model: plain pretraining, then soft pruning
                pre = b.add("train_large", seed, plain_cfg, {}, plain_payload, m.label)
                large = b.add(
                    "soft_train", seed,
                    {"model": r.large_spec, "recipe": _soft_recipe(preset), "large_training": r.large_training},
                    {"pretrained": pre}, {"method": m.name, "options": m.options}, m.label,
                )  # fmt: skip
                b.link(m.label, "unpruned", large)
                if "unpruned_plain" in arms:
                    b.link(m.label, "unpruned_plain", pre, "unpruned")
            else:
                pre = large = b.add(
                    "train_large",
                    seed,
                    {"model": r.large_spec, "recipe": large_recipe, "large_training": r.large_training, **rewind},
                    {},
                    {"method": m.name, "options": m.options},
                    m.label,
                )
                b.link(m.label, "unpruned", large)
                if "unpruned_plain" in arms and r.large_training["kind"] != "plain":  # docs/methods.md §5.7 prunebench rules for slimming
                    plain = b.add("train_large", seed, plain_cfg, {}, plain_payload, m.label)
                    b.link(m.label, "unpruned_plain", plain, "unpruned")
            if arms <= {"unpruned", "unpruned_plain"}:
                continue
            prune = b.add(
                "prune",
                seed,
                {"method": m.name, "options": _first_round(r.options, imp), **_plugin(m.name)},
                {"large": large},
                {"method": m.name, "options": _first_round(m.options, imp), "bn_recal": "pruned_no_ft_bnrecal" in arms,
                 "is_final": r.finetune is None, "precision": preset.large.precision},  # fmt: skip
                m.label,
            )
            for arm in ("pruned_no_ft", "pruned_no_ft_bnrecal"):
                if arm in arms:
                    b.link(m.label, arm, prune)
            if "finetuned" in arms:
                if r.finetune is None:  # SFP / SSS: the method's own output is the pruned arm
                    b.link(m.label, "finetuned", prune)
                else:
                    ft = b.add("finetune", seed, {"recipe": r.finetune, "method": m.name, "options": r.options},
                               {"pruned": prune}, {"method": m.name, "options": m.options}, m.label)  # fmt: skip
                    b.link(m.label, "finetuned", ft)
            if imp:
                _imp_chain(b, m, imp, seed, prune, pre, large_recipe)
            else:
                _scratch_arms(b, m, r, seed, prune, pre, large_recipe)
            plan_baselines(b, m, r, seed, prune, large, large_recipe)
            plan_detection(b, m, r, seed)  # E8: transfer this seed's backbones into Faster R-CNN
            if source is not None:
                src_large, src_prune = source.stages(seed)
                cfg = {"recipe": large_recipe, "init_seed": derived_seed(seed, "transferred_guided_scratch"),
                       "reinit": preset.scratch_reinit, "match": "params"}  # fmt: skip
                ups = {"pruned": prune, "large": pre, "source_pruned": src_prune, "source_large": src_large}
                sid = b.add("transferred_guided_scratch", seed, cfg, ups, {}, m.label)
                b.link(m.label, "transferred_guided_scratch", sid)
    stages = _upstream_first(sorted(b.stages.values(), key=lambda s: list(KINDS).index(s.kind)))
    order = {s.id: i for i, s in enumerate(stages)}
    links = sorted(b.links, key=lambda x: (order[x[2]], x[0], x[1]))
    return Plan(preset, stages, links)


class _Source:
    """The transfer source's large-model and pruning stages (its own data set and identities),
    seed-paired with this preset's seeds; they are equal to the stages the source preset plans itself."""

    def __init__(self, b: _Builder, split_hash: str | None) -> None:
        t = b.preset.transfer
        assert t is not None  # parse_preset pairs the arm with a [transfer] table
        self.b = b
        self.preset = load_preset(t.source)
        if self.preset.transfer is not None or self.preset.unsupported:
            raise ConfigError(f"{b.preset.file}: transfer.source: {t.source} must be a runnable preset without its own transfer")
        method = next((m for m in self.preset.methods if m.label == t.method), None)
        if method is None:
            labels = ", ".join(m.label for m in self.preset.methods)
            raise ConfigError(f"{b.preset.file}: transfer.method: {t.source} has no method {t.method!r}; it has {labels}")
        self.method: MethodConfig = method
        self.resolved = resolve_method(self.preset, self.method)
        if self.resolved.pretrained:
            raise ConfigError(f"{b.preset.file}: transfer.method: a pretrained SFP source is not supported")
        self.data = data_fingerprint(self.preset, split_hash)
        self.label = f"{self.preset.name}:{t.method}"

    def stages(self, seed: int) -> tuple[str, str]:
        """(large, prune) stage ids of the source run of `seed`."""
        r, m = self.resolved, self.method
        recipe = non_default(recipe_of(self.preset.large.to_dict()))
        large = self.b.add(
            "train_large", seed, {"model": r.large_spec, "recipe": recipe, "large_training": r.large_training}, {},
            {"method": m.name, "options": m.options}, self.label, data=self.data,
        )  # fmt: skip
        prune = self.b.add(
            "prune", seed, {"method": m.name, "options": r.options}, {"large": large},
            {"method": m.name, "options": m.options, "bn_recal": False, "is_final": r.finetune is None}, self.label,
            data=self.data,
        )  # fmt: skip
        return large, prune


def _upstream_first(stages: list[Stage]) -> list[Stage]:
    """`stages` (in kind order) reordered only where a stage would precede its upstream (the
    rounds of iterative magnitude pruning alternate prune and ticket stages): at each step the
    first stage whose upstream is all placed.  An order that is already valid is kept as it is."""
    placed: set[str] = set()
    pending, out = list(stages), []
    while pending:
        i = next((i for i, s in enumerate(pending) if placed.issuperset(s.upstream.values())), 0)
        stage = pending.pop(i)
        placed.add(stage.id)
        out.append(stage)
    return out


#: arms a Frankle & Carbin IMP method gives (each round's winning and random tickets)
_IMP_ARMS = {"unpruned", "unpruned_plain", "winning_ticket", "random_ticket"}
#: arms that build a freshly initialised model of the pruned architecture or mask
_REINIT_ARMS = ("scratch_e", "scratch_b", "random_ticket")


def _imp_rounds(preset: Preset, m: MethodConfig) -> int:
    """Rounds of Frankle & Carbin's IMP (magnitude `iterative = "imp"`), 0 for every other method."""
    opts = m.parsed
    if opts is None or getattr(opts, "iterative", None) != "imp":
        return 0
    other = sorted(set(preset.arms) - _IMP_ARMS)
    if other or not {"winning_ticket", "random_ticket"} & set(preset.arms):
        raise ConfigError(
            f"{preset.file}: method {m.label!r}: iterative = 'imp' gives each round's winning_ticket/random_ticket "
            f"arms only{'; not ' + ', '.join(other) if other else ''} (use a one-shot entry at the same ratio for those)"
        )
    return int(opts.iterative_rounds)


def _first_round(options: dict[str, Any], imp: int) -> dict[str, Any]:
    """IMP's first round is one-shot pruning at `ratio`: its prune stage (and tickets) are those of
    a one-shot entry of the same ratio, shared with it."""
    if not imp:
        return options
    from prunebench.prune.magnitude import ROUND_OPTIONS

    return {k: v for k, v in options.items() if k not in ROUND_OPTIONS}


def _check_reinit(preset: Preset, m: MethodConfig, r: ResolvedMethod) -> None:
    """`scratch_reinit = "dense"` redraws masked weights; a physically pruned model has none."""
    if preset.scratch_reinit == "sparse" or r.style == "mask" or getattr(m.parsed, "mask_form", False):
        return
    arms = [a for a in _REINIT_ARMS if a in preset.arms]
    if arms:
        raise ConfigError(
            f"{preset.file}: arms.scratch_reinit: 'dense' re-initialises masked weights only, but method {m.label!r} "
            f"prunes physically ({', '.join(arms)} rebuild its spec); for structured tickets use l1norm's mask_form = true"
        )


def _imp_chain(b: _Builder, m: MethodConfig, rounds: int, seed: int, first: str, large: str, recipe: dict[str, Any]) -> None:
    """Frankle & Carbin's IMP, one stage per step so every round resumes: round 1 is `first` (one-shot
    pruning of the large model, at `ratio`); round k >= 2 (`imp_prune`) prunes `ratio` of the survivors
    by the magnitudes of round k-1's trained winning ticket, per ticket LR.  Every round's winning
    ticket (θ₀ under its mask) and random ticket train at each LR; the labels are `<label>-r<k>`."""
    p = b.preset
    for lr in p.lottery_lrs:
        prune, winning = first, ""
        for k in range(1, rounds + 1):
            label = f"{m.label}-r{k}"
            if k > 1:
                cfg = {"method": m.name, "options": non_default(m.parsed), "round": k, "lr": lr}
                ups = {"large": large, "previous": prune, "trained": winning}
                prune = b.add("imp_prune", seed, cfg, ups, {"method": m.name, "options": m.options, "lr": lr}, label)
            b.link(label, "unpruned", large)
            for kind in ("winning_ticket", "random_ticket"):
                if kind not in p.arms and not (kind == "winning_ticket" and k < rounds):
                    continue  # a winning ticket that is not an arm still trains: the next round prunes it
                cfg = {"recipe": {**recipe, "lr": lr}, "reinit": p.scratch_reinit, "init_seed": derived_seed(seed, kind)}
                sid = b.add(kind, seed, cfg, {"pruned": prune, "large": large}, {"lr": lr}, label)
                if kind in p.arms:
                    b.link(label, f"{kind}_lr{lr:g}", sid)
                if kind == "winning_ticket":
                    winning = sid


def _plugin(method: str) -> dict[str, str]:
    """A third-party method's distribution and version, for its pruning stage's identity (a new
    release of the plugin is new code, as a new prunebench is); nothing for built-in methods."""
    from prunebench.prune.registry import method_origin

    origin = method_origin(method)
    return {"plugin": origin} if origin else {}


def _soft_recipe(preset: Preset) -> dict[str, Any]:
    """The soft-pruning recipe after pretraining: the preset's, else the large one at the pretrained LR."""
    soft = preset.soft_from_pretrained or dataclasses.replace(preset.large, lr=PRETRAINED_SOFT_LR)
    return non_default(recipe_of(soft.to_dict()))


def _scratch_arms(b: _Builder, m: MethodConfig, r: ResolvedMethod, seed: int, prune: str, large: str, recipe: dict[str, Any]) -> None:
    """The from-scratch arms of one pruning run; `large` is the plainly trained (or pretrained) large model."""
    p = b.preset
    reinit = p.scratch_reinit
    finetune = r.finetune
    if "scratch_e" in p.arms:
        cfg = {"recipe": recipe, "reinit": reinit, "init_seed": derived_seed(seed, "scratch_e")}
        b.link(m.label, "scratch_e", b.add("scratch_e", seed, cfg, {"pruned": prune}, {}, m.label))
    if "scratch_b" in p.arms:
        budget = dataclasses.asdict(p.budget)
        if budget["flops_rule"] == "soft_zeroed" and r.large_training["kind"] != "soft":
            raise ConfigError(
                f"{p.file}: budget.flops_rule: 'soft_zeroed' counts a soft-zeroed model, which method "
                f"{m.label!r} ({m.name}) does not train; use 'pruned'"
            )
        # SFP from a pretrained model: pretraining + soft pruning (200 + 200 for the CIFAR recipe)
        soft = _soft_recipe(p)["epochs"] if r.pretrained else 0
        budget["base_epochs"] = (budget["base_epochs"] or recipe["epochs"]) + soft
        budget["finetune_epochs"] = finetune["epochs"] if finetune else 0
        budget = non_default(BudgetPolicy(**budget))
        cfg = {"recipe": recipe, "budget": budget, "reinit": reinit, "init_seed": derived_seed(seed, "scratch_b")}
        b.link(m.label, "scratch_b", b.add("scratch_b", seed, cfg, {"pruned": prune, "large": large}, {}, m.label))
    if "uniform_scratch" in p.arms:
        cfg = {"recipe": recipe, "match": "params", "init_seed": derived_seed(seed, "uniform")}
        b.link(m.label, "uniform_scratch", b.add("uniform_scratch", seed, cfg, {"pruned": prune, "large": large}, {}, m.label))
    for kind in ("winning_ticket", "random_ticket"):
        if kind not in p.arms:
            continue
        for lr in p.lottery_lrs:
            cfg = {"recipe": {**recipe, "lr": lr}, "reinit": reinit, "init_seed": derived_seed(seed, kind)}
            sid = b.add(kind, seed, cfg, {"pruned": prune, "large": large}, {"lr": lr}, m.label)
            b.link(m.label, f"{kind}_lr{lr:g}", sid)
    for arm, style in _SEARCH_ARMS.items():
        if arm not in p.arms or (r.style == "mask") != (style == "mask"):
            continue
        cfg = {"recipe": recipe, "init_seed": derived_seed(seed, arm)}
        if style == "mask":
            cfg["reinit"] = reinit
        else:
            cfg["match"] = "params"
        b.link(m.label, arm, b.add(arm, seed, cfg, {"pruned": prune, "large": large}, {}, m.label))


def stage_recipe(stage: Stage) -> Any | None:
    """The `Recipe` a training stage runs (a Scratch-B stage: the large recipe its budget stretches);
    None for stages that do not train (pruning)."""
    raw = stage.config.get("recipe")
    if raw is None:
        return None
    recipe = recipe_of(raw)
    if stage.kind in ("winning_ticket", "random_ticket"):
        from prunebench.prune.lottery import lottery_recipe  # the ticket's own schedule, as the stage runs it

        recipe = lottery_recipe(recipe, stage.payload["lr"])
    return recipe


def recipe_text(recipe: Any) -> str:
    """`4 epochs, lr 0.05, LR x0.1 at epochs 2, 3, batch 64` (0-based epochs)."""
    if recipe.milestones:
        mults = recipe.lr_multipliers or (recipe.gamma,) * len(recipe.milestones)
        steps = ", ".join(f"x{m:g} at {e}" for e, m in zip(recipe.milestones, mults))
        schedule = f"LR {steps}" if len(set(mults)) > 1 else f"LR x{mults[0]:g} at epochs {', '.join(map(str, recipe.milestones))}"
    else:
        schedule = "constant LR"
    return f"{recipe.epochs} epochs, lr {recipe.lr:g}, {schedule}, batch {recipe.batch_size}"


def format_plan(plan: Plan, status: dict[str, str] | None = None, note: str | None = None) -> str:
    """The dry run: every stage with its folder, its recipe (Scratch-B: its budget), its upstream and,
    for an existing experiment folder, its `status`; then the stage counts per kind. `note` says
    why the ids may differ from the run's."""
    p = plan.preset
    status = status or {}
    lines = [f"preset {p.name} ({p.file}): {p.description}".rstrip(": ")]
    lines.append(f"data {p.data.name}, model {p.model.label}, seeds {list(p.seeds)}")
    lines.append(f"methods: {', '.join(f'{m.label} ({m.name})' for m in p.methods)}; arms: {', '.join(p.arms)}")
    if p.unsupported:
        lines.append(f"not supported yet: {p.unsupported}")
    if p.transfer is not None:
        lines.append(f"transferred patterns: {p.transfer.method} of preset {p.transfer.source} (its stages are upstream)")
    short = {s.id: s.dirname for s in plan.stages}
    budgets = planned_scratch_b(plan)
    from prunebench.experiment.grouping import planned_groups  # it reads the stage kinds (stages.py)

    groups = planned_groups(plan)
    for i, s in enumerate(plan.stages, 1):
        ups = ", ".join(f"{role}={short[u]}" for role, u in s.upstream.items())
        tail = f"  <- {ups}" if ups else ""
        stub = "  [not supported yet]" if p.unsupported else ""
        state = f"  [{status[s.id]}]" if s.id in status else ""
        together = f"  (group of {groups[s.id]})" if s.id in groups else ""
        lines.append(f"  {i:3d}. {s.dirname}  {s.describe()}{together}{tail}{stub}{state}")
        recipe = stage_recipe(s)
        if recipe is not None:
            base = ""
            if s.kind == "scratch_b":  # the budget line (when plannable) gives the stretched epochs
                base = " (the large recipe; " + ("the budget below sets the epochs)" if s.id in budgets else "stretched by the FLOPs ratio after pruning)")
            lines.append(f"         recipe: {recipe_text(recipe)}{base}")
        if s.id in budgets:  # Scratch-B: the epochs the budget rule gives, when known before pruning
            lines.append(f"         {budgets[s.id]}")
    counts: dict[str, int] = {}
    for s in plan.stages:
        counts[s.kind] = counts.get(s.kind, 0) + 1
    lines.append(f"{len(plan.stages)} stages: " + ", ".join(f"{k} {n}" for k, n in counts.items()))
    if status:
        done = sum(1 for st in status.values() if st == "done")
        lines.append(f"already in the experiment folder: {len(status)} of these stages, {done} done")
    for line in p.notes:
        lines.append(f"note: {line}")
    if note:
        lines.append(f"note: {note}")
    return "\n".join(lines)
