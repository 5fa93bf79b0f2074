"""LoRA on the backbone, through peft: the backbone becomes a `PeftModel`, saved and loaded in peft's
own format (`adapter_config.json` + `adapter_model.safetensors`) so stock peft reads our adapters."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from adapt.errors import AdaptError
from adapt.recipe import LoraSettings


def lora_target_modules(backbone: nn.Module, targets: list[str]) -> list[str]:
    """Expand group names (`attention`, `mlp`) to module-name suffixes and check each matches a Linear."""
    groups = getattr(backbone, "lora_targets", {})
    suffixes = [s for t in targets for s in groups.get(t, [t])]
    linear = [name for name, module in backbone.named_modules() if isinstance(module, nn.Linear)]
    for suffix in suffixes:
        if not any(name == suffix or name.endswith("." + suffix) for name in linear):
            raise AdaptError(
                f"LoRA target '{suffix}' matches no linear layer of the backbone; use a group "
                f"({', '.join(groups)}) or a suffix such as {', '.join(sorted({n.split('.', 2)[-1] for n in linear}))}"
            )
    return suffixes


def add_lora(backbone: nn.Module, settings: LoraSettings) -> nn.Module:
    """Wrap `backbone` in a peft `PeftModel` with LoRA on `settings.targets`; base weights frozen."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=settings.rank,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=lora_target_modules(backbone, settings.targets),
    )
    return get_peft_model(backbone, config)


def unwrapped(backbone: nn.Module) -> nn.Module:
    """The backbone itself, under peft's `PeftModel` wrapper when LoRA was added (switches such as
    `gradient_checkpointing` and attributes such as `blocks` live there, not on the wrapper)."""
    return backbone.get_base_model() if hasattr(backbone, "get_base_model") else backbone


def load_lora(backbone: nn.Module, folder: Path) -> nn.Module:
    """The backbone with the peft adapter saved in `folder` (stock `PeftModel.from_pretrained`)."""
    from peft import PeftModel

    try:
        return PeftModel.from_pretrained(backbone, str(folder))
    except Exception as error:  # peft raises ValueError/KeyError/safetensors errors for damaged adapters
        raise AdaptError(f"{folder}: cannot load the LoRA adapter: {error}") from None
