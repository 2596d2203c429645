"""The bundled "blocks" model's world: synthetic toy-block scenes and their training."""

from segcli.models.blocks.scenes import (
    CATEGORIES,
    Scene,
    SceneObject,
    render_scene,
    scenes_to_coco,
    seed_case_scene,
)

TRAIN_SEEDS = range(0, 1_000_000)
"""Seeds the training script draws scenes from."""
HELDOUT_SEED_BASE = 1_000_000_000
"""Held-out (benchmark and test) scenes use seeds from here up; training never does."""

__all__ = [
    "CATEGORIES",
    "HELDOUT_SEED_BASE",
    "TRAIN_SEEDS",
    "Scene",
    "SceneObject",
    "render_scene",
    "scenes_to_coco",
    "seed_case_scene",
]
