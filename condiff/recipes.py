"""Training recipes, one per notebook: model + data + noise schedule + budget, in one place.

    python -m condiff train time_sum            # the recipe of notebook 3
    python -m condiff train time_sum --max-steps 200 --out runs/try

Models that notebooks compare share one UNet size and one training budget, so each comparison
changes one thing: 3 vs 4 the conditioning, 3 vs 5 the noise schedule.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace


@dataclass(frozen=True)
class Recipe:
    name: str
    mode: str  # unconditional | cross_attention | time_sum | concat
    notebook: str
    max_objects: int = 3  # 1: one-hot single-object scenes (notebook 2)
    beta_schedule: str = "linear"  # or "squaredcos_cap_v2", the cosine schedule (notebook 5)
    image_size: int = 32
    block_out_channels: tuple[int, ...] = (48, 96, 96)  # 2.5M parameters, 10 MB of weights
    layers_per_block: int = 1
    attention_levels: int = 1  # self-attention in this many lowest-resolution levels (1: 8x8 only; 2: 16x16 too)
    time_scale_shift: str = "default"  # "scale_shift": the time embedding scales and shifts the norm (AdaGN)
    snr_gamma: float | None = None  # Min-SNR-gamma loss weighting (e.g. 5.0); None: plain MSE
    batch_size: int = 256
    learning_rate: float = 1e-3
    warmup_steps: int = 200
    max_steps: int = 2_100  # 537,600 images: the shipped weights (weights/README.md)
    ema_decay: float = 0.9995  # reached gradually (EMA warm-up), so short runs still get a useful average
    label_dropout: float = 0.1  # share of labels replaced by the null label: classifier-free guidance
    grad_clip: float = 1.0
    checkpoint_every: int = 250
    mixed_precision: str = "bf16"  # used on a GPU only; CPU training stays in fp32
    seed: int = 0
    notes: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def with_overrides(self, **changes) -> Recipe:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def command(self) -> str:
        """The CLI call that trains this recipe: its name plus every setting that differs from it."""
        flags = {"max_steps": "--max-steps", "batch_size": "--batch-size", "learning_rate": "--learning-rate",
                 "seed": "--seed"}
        base = RECIPES.get(self.name)
        parts = [f"python -m condiff train {self.name}"]
        for key, flag in flags.items():
            if base is None or getattr(self, key) != getattr(base, key) or key == "max_steps":
                parts.append(f"{flag} {getattr(self, key)}")
        return " ".join(parts)

    def model_kwargs(self) -> dict:
        """The ``build_models`` arguments of this recipe's UNet (besides ``mode`` and the labels)."""
        return dict(image_size=self.image_size, block_out_channels=self.block_out_channels,
                    layers_per_block=self.layers_per_block, attention_levels=self.attention_levels,
                    time_scale_shift=self.time_scale_shift)

    def variant(self, *names: str) -> Recipe:
        """This recipe with the changes of ``VARIANTS[name]`` for each name (training-speed experiments)."""
        recipe = self
        for name in names:
            if name not in VARIANTS:
                raise ValueError(f"unknown variant {name!r}; allowed: {', '.join(VARIANTS)}")
            recipe = replace(recipe, **VARIANTS[name](recipe))
        return recipe

    def quick(self) -> Recipe:
        """The same model for 3 small steps: what notebooks run in CI (``CONDIFF_QUICK=1``)."""
        return self.with_overrides(max_steps=3, batch_size=8, warmup_steps=1, checkpoint_every=3)


RECIPES = {
    r.name: r
    for r in [
        Recipe("unconditional", "unconditional", "01_unconditional_ddpm"),
        Recipe("cross_attention", "cross_attention", "02_cross_attention_onehot", max_objects=1),
        Recipe("time_sum", "time_sum", "03_time_sum_multilabel"),
        Recipe("concat", "concat", "04_channel_concat"),
        Recipe("time_sum_cosine", "time_sum", "05_cosine_schedule", beta_schedule="squaredcos_cap_v2"),
        # A seconds-long recipe for tests and CI: tiny UNet, 16x16 scenes.
        Recipe("tiny", "time_sum", "tests", image_size=16, block_out_channels=(8, 16), batch_size=8,
               warmup_steps=2, max_steps=4, checkpoint_every=2),
    ]
}


# Changes that the literature reports to speed up learning and binding, compared at equal images by
# ``python -m condiff train-all --variants ...`` (issue 8): each maps a recipe to the fields it changes.
VARIANTS = {
    "scale_shift": lambda r: {"time_scale_shift": "scale_shift"},  # adaptive group norm (Dhariwal & Nichol)
    "min_snr": lambda r: {"snr_gamma": 5.0},  # Min-SNR-gamma weighting (Hang et al. 2023)
    "wide": lambda r: {"block_out_channels": tuple(8 * round(c * 4 / 3 / 8) for c in r.block_out_channels)},
    "attn16": lambda r: {"attention_levels": min(2, len(r.block_out_channels))},  # self-attention at 16x16 too
}


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; allowed: {', '.join(RECIPES)}")
    return RECIPES[name]
