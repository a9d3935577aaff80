"""Measurement: parameters, FLOPs (reference and dispatch rules), latency, Scratch-B budgets."""

from prunebench.measure.budget import (
    FLOPS_RULES,
    Budget,
    BudgetPolicy,
    budget_flops_ratio,
    scratch_b_budget,
    standard_schedule,
)
from prunebench.measure.flops import COUNTER_VERSION, FlopCount, count_flops, flops_ratio
from prunebench.measure.latency import Latency, measure_latency
from prunebench.measure.params import ParamCount, count_params

__all__ = [
    "COUNTER_VERSION",
    "FLOPS_RULES",
    "Budget",
    "BudgetPolicy",
    "FlopCount",
    "Latency",
    "ParamCount",
    "budget_flops_ratio",
    "count_flops",
    "count_params",
    "flops_ratio",
    "measure_latency",
    "scratch_b_budget",
    "standard_schedule",
]
