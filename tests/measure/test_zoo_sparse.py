"""Sparse counts on zoo models: a channel-masked model against its physically pruned twin."""

from __future__ import annotations

from prunebench.data import dataset_info
from prunebench.measure import count_flops, count_params, flops_ratio
from prunebench.models import variant
from prunebench.prune.surgery import channel_masks, prune_channels


def test_masked_resnet_costs_at_least_its_physical_twin() -> None:
    model = variant("resnet20", dataset_info("digits")).build()
    kept = {g.name: list(range(0, g.size, 2)) for g in model.spec.groups()}  # half of every block's conv1
    masks = channel_masks(model, kept)
    physical = prune_channels(model, kept)
    masked_flops = count_flops(model, masks=masks)
    assert masked_flops.sparse
    # Masking removes each conv1 filter's work exactly, but its conv2 input slices stay dense.
    assert masked_flops.flops > count_flops(physical).flops
    assert count_flops(model).flops > masked_flops.flops
    dispatch = [count_flops(m, mode="dispatch", masks=k).flops for m, k in ((model, None), (model, masks), (physical, None))]
    assert dispatch[0] > dispatch[1] > dispatch[2]  # per-layer density scaling reaches nested modules
    assert 1 < flops_ratio(model, model, masks) < flops_ratio(model, physical)
    # The masks zero the same conv1 filters, BN γ/β the physical model drops.
    dropped = sum(int((~m).sum()) for m in masks.values())
    assert count_params(model, masks).nonzero == count_params(model).total - dropped
    assert count_params(physical).total < count_params(model, masks).nonzero
