"""`train --method M --option K=V`: a method's large-model training (slimming's |gamma| penalty, SFP's soft
pruning) from the command line, refusing what would not change it."""

from __future__ import annotations

import dataclasses
from typing import Any

from torch import nn

from prunebench.errors import ConfigError
from prunebench.models import attached_spec


def sparsity_training(name: str, items: list[str], model: nn.Module) -> list[Any]:
    """The callbacks method `name` trains its large model with, under the options `items` (KEY=VALUE).

    Refused: a method that trains its large model plainly (the flag would do nothing), and any option
    that leaves the training unchanged (a prune-time option such as slimming's ratio: give it to
    `prunebench prune`)."""
    from prunebench.commands.prune import parse_option
    from prunebench.experiment.resolve import callback_fingerprint
    from prunebench.prune import get_method

    method = get_method(name)
    spec = attached_spec(model)
    if method.large_training_kind not in ("sparsity", "soft") or method.prepare_large(spec, None) is not spec:
        raise ConfigError(f"--method {name}: its large model is trained plainly or needs another architecture; "
                          "train without --method (sparsity training: slimming, sfp)")  # fmt: skip
    raw = dict(parse_option(t) for t in items)
    try:
        opts = method.parse_options(raw)
    except ConfigError:
        if "ratio" in raw:
            raise
        opts = method.parse_options({**raw, "ratio": 0.5})  # a prune-time amount the training never reads
    fingerprint = callback_fingerprint(method.large_training(opts, spec))
    defaults = {f.name: f.default for f in dataclasses.fields(opts) if f.default is not dataclasses.MISSING}
    for key in method._resolve_aliases(dict(raw)):
        if key not in defaults or getattr(opts, key) == defaults[key]:
            continue  # the default, given explicitly, changes nothing either way
        other = dataclasses.replace(opts, **{key: defaults[key]})
        if callback_fingerprint(method.large_training(other, spec)) == fingerprint:
            raise ConfigError(
                f"--option {key}: does not change how {name} trains the large model (a prune-time option: "
                f"give it to `prunebench prune --method {name}`)"
            )
    return method.large_training(opts, spec)
