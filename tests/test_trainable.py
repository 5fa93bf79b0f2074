"""Which parameters each bundled recipe trains: every parameter of the model is in exactly one group
(tokenizer, shared, LoRA, one embodiment's heads) and each group is trained or frozen as the table says.

Catches a parameter the adaptation code forgets (a full fine-tune that left `camera_role` frozen did
exactly that), a new model parameter nobody assigned to a group, LoRA that leaves its base weights
trainable, and a recipe that trains another robot's heads."""

from __future__ import annotations

import pytest

from adapt.embodiment import load_embodiment
from adapt.model import build_model, model_config
from adapt.recipe import bundled_recipes, load_recipe
from adapt.train.finetune import set_trainable

TRAINED = {
    # recipe:        tokenizer shared  lora   target heads  base's other heads
    "play-30min": (False, False, True, True, False),
    "task-demos": (False, False, True, True, False),
    "mixed": (False, False, True, True, False),
    "action-only": (False, False, True, True, False),
    "video-only": (False, False, True, False, False),
    "heads-only": (False, False, False, True, False),
    "full-finetune": (False, True, False, True, False),
}
GROUPS = ("tokenizer", "shared", "lora", "target", "other")


def test_the_table_covers_every_bundled_recipe():
    assert set(TRAINED) == set(bundled_recipes())


def test_task_demos_is_what_the_benchmark_measured():
    """`task-demos` quotes the adaptation benchmark's `play-30min-donor` rows (play-30min with seeded heads);
    catches the two drifting apart (a change to play-30min's rate or LoRA not made to task-demos too)."""
    measured = load_recipe("play-30min").model_copy(update={"init_heads": "donor"})
    ignored = {"name", "description"}
    assert load_recipe("task-demos").model_dump(exclude=ignored) == measured.model_dump(exclude=ignored)


def _group(name: str, shared: list[str]) -> str:
    if "lora_" in name:
        return "lora"
    if name.startswith("tokenizer."):
        return "tokenizer"
    if name.startswith("heads.ur5e."):
        return "target"
    if name.startswith("heads."):
        return "other"
    if any(name == s or name.startswith(s + ".") for s in shared):
        return "shared"
    raise AssertionError(f"parameter {name} belongs to no group: add it to the model's shared_modules()")


@pytest.mark.parametrize("recipe_name", sorted(TRAINED))
def test_each_group_is_trained_or_frozen_as_the_recipe_says(recipe_name):
    recipe = load_recipe(recipe_name)
    model = build_model(model_config("tiny"), [load_embodiment("panda"), load_embodiment("ur5e")])
    set_trainable(model, recipe, "ur5e", new=["ur5e"])
    shared = list(model.shared_modules())
    seen: dict[str, set[bool]] = {g: set() for g in GROUPS}
    for name, parameter in model.named_parameters():
        seen[_group(name, shared)].add(parameter.requires_grad)
    expected = dict(zip(GROUPS, TRAINED[recipe_name], strict=True))
    for group, trained in expected.items():
        if group == "lora" and not trained:
            assert not seen["lora"], f"{recipe_name}: has LoRA parameters but no LoRA"
            continue
        assert seen[group] == {trained}, f"{recipe_name}: {group} parameters trained={seen[group]}, expected {trained}"
