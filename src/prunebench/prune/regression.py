"""Regression-based channel pruning (He, Zhang & Sun, ICCV 2017): LASSO selection + least squares.

Per layer, input to output.  For the consumer L of the group being pruned:

* X (N × C × K): L's input windows in the **current**, partly pruned network;
  Y (N × n): L's response in the **original** network at the same positions, so the
  error accumulated by earlier layers is compensated.
* Channel selection: with Z_i = X_i W_iᵀ, solve
  min_β (1/2N')‖Y − Σ_i β_i Z_i‖² + λ‖β‖₁ (N' = N·n), raising λ along a warm-started
  path until at most c′ coefficients are non-zero (bisection to land on c′; if it
  cannot, the top-c′ |β| of the last solution with more than c′ survivors).
  The problem only enters through G = ZᵀZ (C × C) and b = ZᵀY, which we get without
  ever forming the N·n × C matrix Z: G = blocksum_K((XᵀX) ⊙ (WᵀW)).  scikit-learn's
  `Lasso` then runs on the equivalent C-row problem (A = Λ^½Qᵀ, t = Λ^-½Qᵀb from G = QΛQᵀ).
* Reconstruction: W′ = argmin ‖Y − X′W′ᵀ‖² on the kept channels (float64 least squares,
  optional ridge), written into L after the producer's filters are removed.

Residual blocks (paper §4.1 multi-branch): only block-internal groups are pruned
(the groups never offer the residual width); a block-input "select" group is
pruned with the same criterion (its consumer reads fewer channels, the shortcut
all of them); the branch's last conv gets the residual-compensated target
Y₁ + (S − S′)/a, S/S′ the original/current shortcut output and a its BN scale.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from prunebench.errors import ConfigError, SpecError
from prunebench.models import ResNetSpec, attached_spec
from prunebench.prune.activations import (
    SamplingCache,
    Timer,
    as_channels,
    balanced_images,
    check_sampling_target,
    consumer_weight,
    plan_layers,
    sample_layer,
    solve_normal,
)
from prunebench.prune.base import PruneMethod, PruneResult, removed_from_kept
from prunebench.prune.registry import register
from prunebench.prune.surgery import prune_channels

TARGETS = ("vgg16-5x", "resnet50-2x")


@dataclass(frozen=True)
class RegressionOptions:
    """ratio: fraction of channels removed per layer (keeps floor(C·(1 − ratio)), at least 1; old name:
    keep_ratio, the fraction kept, converted); variant: `vgg16-5x` / `resnet50-2x`, hit exactly.

    images / locations: class-balanced sampling images and output positions per image.
    ridge: least-squares Tikhonov term relative to the mean diagonal of X′ᵀX′ (0 = plain).
    path_steps: λ values on the geometric path from 1e-4·λ_max to λ_max.
    prune_last: with a ratio, also prune VGG's last conv (its consumer is the classifier).
    residual_compensation: target Y₁ + (S − S′)/a for a residual branch's last conv.
    input_selection: with a ratio on a zoo ResNet, also prune what each block reads from its
      input through a channel-selection layer (the paper's feature-map sampling; `resnet50-2x` does).
    batch_size: images per forward pass while sampling.
    """

    ratio: float | None = None
    variant: str | None = None
    images: int = 200
    locations: int = 10
    ridge: float = 0.0
    path_steps: int = 20
    prune_last: bool = False
    residual_compensation: bool = True
    input_selection: bool = False
    batch_size: int = 128

    def validate(self) -> None:
        check_sampling_target("regression", self, TARGETS)
        if self.path_steps < 2:
            raise ConfigError("regression: path_steps must be >= 2")


@dataclass
class LassoTerms:
    """The LASSO problem in Gram form: ‖Y − Zβ‖² = βᵀGβ − 2bᵀβ + ‖Y‖²; rows = N·n."""

    gram: torch.Tensor
    b: torch.Tensor
    rows: int


def lasso_terms(x: torch.Tensor, weight: torch.Tensor, y: torch.Tensor) -> LassoTerms:
    """G_ij = Σ_s ⟨X_i[s]W_iᵀ, X_j[s]W_jᵀ⟩ and b_i = Σ_s ⟨X_i[s]W_iᵀ, Y[s]⟩, without forming Z.

    x: N × C × K, weight: n × C × K, y: N × n.  The two CK × CK products run in
    float32 (they only rank channels); the block sums and b in float64.
    """
    n_s, c, k = x.shape
    xf = x.reshape(n_s, c * k).float()
    wf = weight.reshape(weight.shape[0], c * k).float()
    gram = ((xf.T @ xf) * (wf.T @ wf)).double().reshape(c, k, c, k).sum((1, 3))
    b = (xf.double() * (y.double() @ wf.double())).reshape(n_s, c, k).sum((0, 2))
    return LassoTerms(gram=gram, b=b, rows=n_s * weight.shape[0])


def _reduced(terms: LassoTerms) -> tuple[Any, Any]:
    """An equivalent least-squares design with C rows: ‖t − Aβ‖² = βᵀGβ − 2bᵀβ + const."""
    evals, evecs = torch.linalg.eigh(terms.gram)
    good = evals > evals.max() * 1e-12
    root = evals[good].sqrt()
    a = root[:, None] * evecs[:, good].T
    t = (evecs[:, good].T @ terms.b) / root
    return a.numpy(), t.numpy()


@dataclass
class Selection:
    kept: list[int]
    lam: float  # in the paper's units: (1/2N')‖·‖² + λ‖β‖₁
    path: int  # LASSO fits solved
    exact: bool  # the LASSO itself left exactly c′ non-zeros (else top-|β| fallback)


def lasso_select(terms: LassoTerms, keep: int, steps: int = 20) -> Selection:
    """Raise λ along a warm-started geometric path until ≤ keep coefficients survive, then bisect."""
    # imported here: scikit-learn takes about a second to import and only this method needs it
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import Lasso

    a, t = _reduced(terms)
    rows = a.shape[0]
    c = terms.gram.shape[0]
    if keep >= c:
        return Selection(kept=list(range(c)), lam=0.0, path=0, exact=True)
    alpha_max = float(abs(terms.b).max()) / rows
    lasso = Lasso(alpha=alpha_max, fit_intercept=False, warm_start=True, max_iter=5000, tol=1e-6, selection="cyclic")
    fits = 0

    def fit(alpha: float) -> torch.Tensor:
        nonlocal fits
        fits += 1
        lasso.set_params(alpha=alpha)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            lasso.fit(a, t)
        return torch.from_numpy(lasso.coef_.copy())

    alphas = torch.logspace(-4, 0, steps, dtype=torch.float64) * alpha_max
    low, low_beta = 0.0, None  # last alpha with more than `keep` survivors
    high = alpha_max
    for alpha in alphas.tolist():
        beta = fit(alpha)
        nnz = int((beta != 0).sum())
        if nnz == keep:
            return _selection(beta, keep, alpha, rows, terms.rows, fits, True)
        if nnz < keep:
            high = alpha
            break
        low, low_beta = alpha, beta
    if low_beta is None:  # even the smallest λ keeps too few: rank the least-penalised solution
        low_beta = beta
    for _ in range(12):  # bisection between a λ with too many and one with too few survivors
        mid = (low + high) / 2 if low else high / 2
        beta = fit(mid)
        nnz = int((beta != 0).sum())
        if nnz == keep:
            return _selection(beta, keep, mid, rows, terms.rows, fits, True)
        if nnz > keep:
            low, low_beta = mid, beta
        else:
            high = mid
    return _selection(low_beta, keep, low, rows, terms.rows, fits, False)


def _selection(
    beta: torch.Tensor, keep: int, alpha: float, rows: int, paper_rows: int, fits: int, exact: bool
) -> Selection:
    """The top-`keep` |β| (stable: ties go to the lower channel index); λ converted to the paper's scale."""
    order = torch.sort(-beta.abs(), stable=True).indices[:keep]
    return Selection(kept=sorted(order.tolist()), lam=alpha * rows / paper_rows, path=fits, exact=exact)


def least_squares(x: torch.Tensor, y: torch.Tensor, kept: list[int], ridge: float = 0.0) -> torch.Tensor:
    """W′ (n × |kept| × K, float64) minimising ‖Y − X′W′ᵀ‖² over the kept channels' windows.

    With fewer samples than unknowns the minimum-norm solution X′ᵀ(X′X′ᵀ)⁻¹Y is taken in sample space.
    """
    xs = x[:, kept].reshape(x.shape[0], -1).double()
    yd = y.double()
    if xs.shape[0] >= xs.shape[1]:
        sol = solve_normal(xs.T @ xs, xs.T @ yd, ridge)
    else:
        sol = xs.T @ solve_normal(xs @ xs.T, yd, ridge)
    return sol.T.reshape(y.shape[1], len(kept), x.shape[2])


def relative_error(x: torch.Tensor, y: torch.Tensor, kept: list[int], weight: torch.Tensor) -> float:
    """‖Y − X′W′ᵀ‖² / ‖Y‖² on the samples."""
    pred = x[:, kept].reshape(x.shape[0], -1).double() @ weight.reshape(weight.shape[0], -1).double().T
    return float(((y.double() - pred) ** 2).sum() / (y.double() ** 2).sum().clamp_min(1e-300))


def response(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The consumer's bias-free response Y = X Wᵀ (N × n)."""
    return x.reshape(x.shape[0], -1).double() @ weight.reshape(weight.shape[0], -1).double().T


@register
class Regression(PruneMethod):
    name = "regression"
    description = "channel pruning by LASSO channel selection and least-squares reconstruction (He et al. 2017)"
    Options = RegressionOptions
    execution_options = frozenset({"batch_size"})  # sampling in bigger or smaller batches: the same samples
    # start each layer's sampling from cached activations (same samples); off only to measure or test it
    resume_sampling: bool = True
    aliases = {"keep_ratio": ("ratio", removed_from_kept)}

    def variants(self) -> list[str]:
        return list(TARGETS)

    def prune(self, model: nn.Module, splits: Any, opts: RegressionOptions, *, seed: int = 0) -> PruneResult:
        original = copy.deepcopy(model).eval()
        model = copy.deepcopy(model)
        if opts.input_selection or opts.variant == "resnet50-2x":
            model = _with_input_selection(model)
        modules = dict(model.named_modules())
        plan = plan_layers(
            attached_spec(model),
            ratio=None if opts.ratio is None else removed_from_kept(opts.ratio),  # plan_layers takes the kept share
            target_name=opts.variant,
            eligible=lambda g: len(g.consumers) == 1 and isinstance(modules[g.consumers[0]], nn.Conv2d | nn.Linear),
            allowed=TARGETS,
            default_skip=None if opts.prune_last else (lambda g: isinstance(modules[g.consumers[0]], nn.Linear)),
        )
        timer = Timer()
        with timer.phase("all", "images"):
            images = balanced_images(splits, opts.images, seed)
        layers: dict[str, dict[str, Any]] = {}
        kept_all: dict[str, list[int]] = {}
        sampling: dict[str, int] = {}
        # Each layer's passes start from cached activations (same samples): the current net's
        # from the input of the module this layer changes, the original's (never changed) likewise.
        caches = (SamplingCache(), SamplingCache()) if self.resume_sampling else (None, None)
        for index, name in enumerate(g.name for g in attached_spec(model).groups() if g.name in plan.keep):
            group = next(g for g in attached_spec(model).groups() if g.name == name)
            consumer = group.consumers[0]
            weight = consumer_weight(model.get_submodule(consumer), group.size)
            residual = _residual_points(model, consumer) if opts.residual_compensation else None
            changed = group.producer or consumer  # a "select" group changes its consumer's block only
            with timer.phase(name, "sampling"):
                points = residual.points if residual else ()
                cur = sample_layer(
                    model, consumer, images, locations=opts.locations, seed=seed + index,
                    points=points, batch_size=opts.batch_size, cache=caches[0], cache_at=changed,
                )  # fmt: skip
                orig = sample_layer(
                    original, consumer, images, locations=opts.locations, seed=seed + index,
                    points=points, batch_size=opts.batch_size, cache=caches[1], cache_at=changed,
                )  # fmt: skip
                x = as_channels(cur, group.size)
                y = response(orig.x, original.get_parameter(f"{consumer}.weight").detach())
                if residual:
                    y = y + (orig.points["shortcut"].double() - cur.points["shortcut"].double()) / residual.scale
            with timer.phase(name, "selection"):
                if residual:  # select in block-output units: a·(conv) is what reaches the sum
                    a = residual.scale.float()
                    terms = lasso_terms(x, weight * a[:, None, None], y * residual.scale)
                else:
                    terms = lasso_terms(x, weight, y)
                sel = lasso_select(terms, plan.keep[name], opts.path_steps)
            with timer.phase(name, "reconstruction"):
                new_w = least_squares(x, y, sel.kept, opts.ridge)
                err = relative_error(x, y, sel.kept, new_w)
            with timer.phase(name, "surgery"):
                model = prune_channels(model, {name: sel.kept})
                new_weight = model.get_parameter(f"{consumer}.weight")
                with torch.no_grad():
                    new_weight.copy_(new_w.reshape(new_weight.shape))
            kept_all[name] = sel.kept
            sampling = cur.record()
            layers[name] = {
                "kind": group.kind,
                "size": group.size,
                "kept": len(sel.kept),
                "lambda": sel.lam,
                "lasso_fits": sel.path,
                "lasso_exact": sel.exact,
                "relative_error": err,  # on the samples: optimistic when unknowns > samples
                "unknowns_per_filter": len(sel.kept) * x.shape[2],
                "residual_compensation": residual is not None,
            }
        info = {
            "method": self.name,
            "target": opts.variant,
            "ratio": opts.ratio,
            "ridge": opts.ridge,
            "sampling": sampling,
            "layers": layers,
            "timings": timer.record(),
            "notes": [
                "X from the current pruned net, Y from the original net at the same seeded positions",
                "LASSO: scikit-learn Lasso on the Gram-equivalent C-row problem, "
                "warm-started geometric λ path + bisection",
            ],
        }
        if plan.target is not None:
            _check_widths(attached_spec(model), plan.target)
        return PruneResult(model=model, kept=kept_all, info=info)


@dataclass
class _Residual:
    points: tuple[tuple[str, str, str], ...]
    scale: torch.Tensor  # per-channel scale a of BN (and gate) after the branch's last conv


def _residual_points(model: nn.Module, consumer: str) -> _Residual | None:
    """If `consumer` is the last conv of a zoo ResNet block's branch: where its shortcut is read, and a.

    Block output = relu(a·conv + c + shortcut) with a = gate·γ/√(var+ε) in eval mode, so the
    conv must produce Y₁ + (S − S′)/a to make the block output match the original.
    CIFAR option-A blocks have a functional shortcut and are not compensated.
    """
    block_name, _, conv_name = consumer.rpartition(".")
    spec = attached_spec(model)
    if not isinstance(spec, ResNetSpec) or block_name not in {b for b, _ in spec.block_names()}:
        return None
    block = model.get_submodule(block_name)
    last, bn_name = ("conv3", "bn3") if hasattr(block, "conv3") else ("conv2", "bn2")
    if conv_name != last:
        return None
    bn = getattr(block, bn_name)
    scale = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach().double().cpu()
    if hasattr(block, "gate"):
        scale = scale * float(block.get_parameter("gate.weight").detach())
    if (scale == 0).any():
        return None  # a dead channel cannot be compensated through its BN
    where = (f"{block_name}.downsample", "out") if hasattr(block, "downsample") else (block_name, "in")
    return _Residual(points=(("shortcut", *where),), scale=scale)


def _with_input_selection(model: nn.Module) -> nn.Module:
    """Block inputs are pruned through selection layers: give a zoo ResNet full ones (same function)."""
    spec = attached_spec(model)
    if not isinstance(spec, ResNetSpec):
        raise SpecError("input_selection needs a zoo ResNet (family 'resnet')")
    if spec.selections:
        return model
    wide = spec.replace(selections=((),) * sum(spec.blocks))
    new = wide.build()
    state = new.state_dict()
    state.update(model.state_dict())
    new.load_state_dict(state)
    return new.to(next(model.parameters()).device).train(model.training)


def _check_widths(spec: Any, target: Any) -> None:
    wanted = {g.name: g.size for g in target.groups()}
    got = {g.name: g.size for g in spec.groups()}
    wrong = [n for n in wanted if got.get(n) != wanted[n]]
    if wrong:
        raise SpecError(f"pruned widths differ from {target.name or 'the target'} at {', '.join(wrong[:5])}")
