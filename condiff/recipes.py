"""Training recipes, one per notebook: model + data + noise schedule + budget, in one place.

    python -m condiff train time_sum            # the recipe of notebook 3
    python -m condiff train time_sum --max-steps 200 --out runs/try

Models that notebooks compare share one UNet size and one training budget, so each comparison
changes one thing: 3 vs 4 the conditioning, 3 vs 5 the noise schedule.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace


@dataclass(frozen=True)
class Recipe:
    name: str
    mode: str  # unconditional | cross_attention | time_sum | concat | object_tokens
    title: str  # the method's name in tables and cards
    max_objects: int = 3  # 1: one-hot single-object scenes (notebook 2)
    beta_schedule: str = "linear"  # or "squaredcos_cap_v2", the cosine schedule (notebook 5)
    image_size: int = 32
    block_out_channels: tuple[int, ...] = (48, 96, 96)  # 2.5M parameters, 10 MB of weights
    layers_per_block: int = 1
    attention_levels: int = 1  # self-attention in this many lowest-resolution levels (1: 8x8 only; 2: 16x16 too)
    time_scale_shift: str = "default"  # "scale_shift": the time embedding scales and shifts the norm (AdaGN)
    snr_gamma: float | None = None  # Min-SNR-gamma loss weighting (e.g. 5.0); None: plain MSE
    timestep_sampling: str = "uniform"  # or "high_noise": noisy timesteps drawn more often (train.sample_timesteps)
    label_hidden_dim: int | None = None  # width of the label MLP's hidden layer; None: its output width
    batch_size: int = 256
    learning_rate: float = 1e-3  # at reference_batch_size; training scales it (scaled_learning_rate)
    reference_batch_size: int = 256
    warmup_steps: int = 200
    max_steps: int = 2_100  # 537,600 images: the shipped weights (weights/README.md)
    ema_decay: float = 0.9995  # reached gradually (EMA warm-up), so short runs still get a useful average
    ema_warmup: str = "on"  # "off": ema_decay from the first step, for a warm restart (its start is an average)
    label_dropout: float = 0.1  # share of labels replaced by the null label: classifier-free guidance
    grad_clip: float = 1.0
    checkpoint_every: int = 250
    mixed_precision: str = "bf16"  # autocast on a GPU, and on a CPU with bf16 units (runinfo.bf16_on_cpu)
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    def with_overrides(self, **changes) -> Recipe:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def model_kwargs(self) -> dict:
        """The ``build_models`` arguments of this recipe's UNet (besides ``mode`` and the labels)."""
        keys = ("image_size", "block_out_channels", "layers_per_block", "attention_levels", "time_scale_shift",
                "label_hidden_dim")
        return {key: getattr(self, key) for key in keys}

    def scaled_learning_rate(self) -> float:
        """The peak rate training uses: ``learning_rate * sqrt(batch_size / reference_batch_size)``, Adam's
        square-root rule (Malladi et al., 2022): 4x the batch, 2x the rate, so large GPU batches learn alike."""
        return self.learning_rate * (self.batch_size / self.reference_batch_size) ** 0.5

    def tiny(self) -> Recipe:
        """This recipe's conditioning at toy size (16x16 scenes, a UNet of widths (8, 16), batch 8, 4 steps with
        a checkpoint every 2): trains in seconds on a CPU, for smoke tests, quick tool runs and the tests."""
        return self.with_overrides(image_size=16, block_out_channels=(8, 16), batch_size=8, warmup_steps=2,
                                   max_steps=4, checkpoint_every=2)

    def quick(self) -> Recipe:
        """The same model for 3 small steps: what notebooks run in CI (``CONDIFF_QUICK=1``)."""
        return self.with_overrides(max_steps=3, batch_size=8, warmup_steps=1, checkpoint_every=3)


# The models of the notebooks, in their order (notebooks 1 to 6). object_tokens is the CPU's recipe: batch 64
# (the batch a CPU learns most per image at, `python -m condiff compare`), 256,000 images.
RECIPES = {
    r.name: r
    for r in [
        Recipe("unconditional", "unconditional", "Unconditional DDPM"),
        Recipe("cross_attention", "cross_attention", "One-hot, cross-attention", max_objects=1),
        Recipe("time_sum", "time_sum", "Multi-label, time-sum (linear)"),
        Recipe("concat", "concat", "Multi-label, channel concat (linear)"),
        Recipe("time_sum_cosine", "time_sum", "Multi-label, time-sum (cosine)", beta_schedule="squaredcos_cap_v2"),
        Recipe("object_tokens", "object_tokens", "Multi-label, one token per object", attention_levels=2,
               batch_size=64, max_steps=4_000, checkpoint_every=125),
    ]
}


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; allowed: {', '.join(RECIPES)}")
    return RECIPES[name]
