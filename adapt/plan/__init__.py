"""Sizing a training run before it starts (`adapt plan`): parameters, trainable parameters, memory per device and
step time of a base x recipe x devices x strategy x precision.

The model is built on the meta device (a 14B base costs nothing) and the recipe applied by finetune's own
`set_trainable` (peft's LoRA works on meta tensors), so the trainable set is the one `adapt finetune` trains.

- `adapt.plan.model`: the model on the meta device, its tokens, trainable set and FLOPs per sample;
- `adapt.plan.cost`: memory per device, line by line, and step time;
- `adapt.plan.verdict`: whether a run fits, what would, and the report `adapt plan` prints.
"""

from adapt.plan.cost import Memory, activation_parts, memory, saved_for_backward, step_seconds
from adapt.plan.model import (
    CPU_OVERHEAD_S,
    GIB,
    PRECISIONS,
    RATES,
    USABLE,
    Plan,
    Run,
    Shape,
    check_options,
    meta_model,
    plan,
    plan_model,
)
from adapt.plan.verdict import Verdict, fits, report, suggestions, verdict

__all__ = [
    "CPU_OVERHEAD_S",
    "GIB",
    "PRECISIONS",
    "RATES",
    "USABLE",
    "Memory",
    "Plan",
    "Run",
    "Shape",
    "Verdict",
    "activation_parts",
    "check_options",
    "fits",
    "memory",
    "meta_model",
    "plan",
    "plan_model",
    "report",
    "saved_for_backward",
    "step_seconds",
    "suggestions",
    "verdict",
]
