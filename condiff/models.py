"""The four denoisers, built from diffusers classes, and the label encoders that feed them.

| mode              | UNet                                        | label encoder output             | notebook |
|-------------------|---------------------------------------------|----------------------------------|----------|
| unconditional     | ``UNet2DModel``                             | (none)                           | 1        |
| cross_attention   | ``UNet2DConditionModel``                    | ``(B, 1, cross_attention_dim)``  | 2        |
| time_sum          | ``UNet2DModel(class_embed_type="identity")``| ``(B, time_embed_dim)``          | 3, 5     |
| concat            | ``UNet2DModel(in_channels=3 + num_labels)`` | ``(B, num_labels, H, W)``        | 4        |
| object_tokens     | ``UNet2DConditionModel``                    | ``(B, max_objects, cross_attention_dim)`` | 6 |

Labels are multi-hot (one-hot is the 1-object case) float tensors ``(B, num_labels)``; the all-zero
vector is the *null label* used for classifier-free guidance (notebook 3). Every encoder is a
``ModelMixin, ConfigMixin`` so that ``save_pretrained`` / ``from_pretrained`` carry it along with
the UNet. ``Denoiser`` holds a UNet and its encoder; its ``forward`` is the one place that knows how
each mode reaches the UNet.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from diffusers import ConfigMixin, ModelMixin, UNet2DConditionModel, UNet2DModel
from diffusers.configuration_utils import register_to_config
from torch import nn

from .data.labels import OBJECTS, check_label_tensor

MODES = ("unconditional", "cross_attention", "time_sum", "concat", "object_tokens")


class LabelEncoder(ModelMixin, ConfigMixin):
    """Multi-hot labels ``(B, num_labels)`` -> the conditioning the UNet of ``mode`` expects.

    - ``cross_attention``: a 2-layer MLP to ``out_dim`` = ``cross_attention_dim``, returned as a
      sequence of length 1, ``(B, 1, out_dim)``, for the UNet's cross-attention layers;
    - ``time_sum``: the same MLP to ``out_dim`` = ``time_embed_dim``, ``(B, out_dim)``, which the
      UNet adds to its timestep embedding (``class_embed_type="identity"``);
    - ``concat``: a linear map initialised to the identity (so it starts as the plain multi-hot
      vector), broadcast over the image as label maps, ``(B, out_dim, H, W)``;
    - ``object_tokens``: one learned token per asked object, ``(B, max_objects, out_dim)``, the empty
      slots filled with a learned null token (so the null label is ``max_objects`` null tokens). Each
      object keeps its own token, so cross-attention can bind "red" to "cube" at the place it draws it,
      where a sum of label embeddings mixes every object's colour and shape into one vector.

    ``label_names`` and ``max_objects`` travel in the config so a saved pipeline knows its
    vocabulary ("red cube", ...) and how many objects a scene may have.
    """

    @register_to_config
    def __init__(
        self,
        mode: str = "time_sum",
        num_labels: int = len(OBJECTS),
        out_dim: int = 128,
        image_size: int = 32,
        label_names: Sequence[str] = OBJECTS,
        max_objects: int = 3,
        hidden_dim: int | None = None,
    ):
        super().__init__()
        if mode not in MODES[1:]:
            raise ValueError(f"unknown label encoder mode {mode!r}; allowed: {', '.join(MODES[1:])}")
        if len(label_names) != num_labels:
            raise ValueError(f"{len(label_names)} label names for {num_labels} labels")
        if mode == "concat":
            self.mlp = nn.Linear(num_labels, out_dim)
            with torch.no_grad():
                self.mlp.weight.copy_(torch.eye(out_dim, num_labels))
                self.mlp.bias.zero_()
        elif mode == "object_tokens":
            self.tokens = nn.Embedding(num_labels + 1, out_dim)  # one per object, then the null token
        else:
            hidden = hidden_dim or out_dim
            self.mlp = nn.Sequential(nn.Linear(num_labels, hidden), nn.SiLU(), nn.Linear(hidden, out_dim))

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        labels = check_label_tensor(labels, self.config.num_labels).to(self.device, self.dtype)
        if self.config.mode == "object_tokens":
            return self.tokens(object_ids(labels, self.config.max_objects))  # (B, max_objects, out_dim)
        embedding = self.mlp(labels)  # (B, out_dim)
        if self.config.mode == "concat":
            size = self.config.image_size
            return embedding[:, :, None, None].expand(-1, -1, size, size)  # (B, out_dim, H, W)
        if self.config.mode == "cross_attention":
            return embedding[:, None, :]  # (B, 1, out_dim): a "sentence" of one token
        return embedding


def object_ids(labels: torch.Tensor, slots: int) -> torch.Tensor:
    """Multi-hot ``(B, L)`` -> the indices of its objects ``(B, slots)``, empty slots filled with ``L`` (null)."""
    present = labels > 0.5
    order = torch.argsort(present.to(torch.uint8), dim=1, descending=True, stable=True)[:, :slots]  # objects first
    return torch.where(present.gather(1, order), order, labels.shape[1])


def build_models(
    mode: str,
    image_size: int = 32,
    block_out_channels: Sequence[int] = (32, 64, 64),
    layers_per_block: int = 1,
    num_labels: int = len(OBJECTS),
    cross_attention_dim: int = 64,
    label_names: Sequence[str] = OBJECTS,
    max_objects: int = 3,
    attention_levels: int = 1,
    time_scale_shift: str = "default",
    label_hidden_dim: int | None = None,
) -> tuple[nn.Module, LabelEncoder | None]:
    """Return ``(unet, label_encoder)`` for ``mode``; the encoder is ``None`` when unconditional.

    All modes share one UNet layout (the same widths and depth), with self-attention in the
    ``attention_levels`` lowest resolutions, so notebooks compare conditioning methods and nothing else.
    ``time_scale_shift="scale_shift"``: the time (+ label) embedding scales and shifts the ResNets' norms.
    ``label_hidden_dim``: the hidden width of the time_sum and cross_attention label MLPs (default: their output).
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; allowed: {', '.join(MODES)}")
    channels = tuple(block_out_channels)
    if not 1 <= attention_levels <= len(channels):
        raise ValueError(f"attention_levels must be 1 to {len(channels)} (one per UNet level), got {attention_levels}")
    common = dict(
        sample_size=image_size,
        out_channels=3,
        block_out_channels=channels,
        layers_per_block=layers_per_block,
        norm_num_groups=8,
        resnet_time_scale_shift=time_scale_shift,
    )
    plain = len(channels) - attention_levels  # levels without self-attention, from the top
    down = ("DownBlock2D",) * plain + ("AttnDownBlock2D",) * attention_levels
    up = ("AttnUpBlock2D",) * attention_levels + ("UpBlock2D",) * plain
    time_embed_dim = channels[0] * 4
    encoder_args = dict(num_labels=num_labels, image_size=image_size, label_names=list(label_names),
                        max_objects=max_objects)
    if label_hidden_dim is not None and mode in ("time_sum", "cross_attention"):
        encoder_args["hidden_dim"] = label_hidden_dim

    if mode == "unconditional":
        return UNet2DModel(in_channels=3, down_block_types=down, up_block_types=up,
                           attention_head_dim=8, **common), None
    if mode == "time_sum":
        unet = UNet2DModel(in_channels=3, down_block_types=down, up_block_types=up,
                           attention_head_dim=8, class_embed_type="identity", **common)
        return unet, LabelEncoder("time_sum", out_dim=time_embed_dim, **encoder_args)
    if mode == "concat":
        unet = UNet2DModel(in_channels=3 + num_labels, down_block_types=down, up_block_types=up,
                           attention_head_dim=8, **common)
        return unet, LabelEncoder("concat", out_dim=num_labels, **encoder_args)
    # cross_attention: the lowest-resolution blocks (where the others have self-attention) and the
    # middle block attend to the label token. object_tokens: the same, but only the lowest level keeps
    # self-attention; above it (16x16 with attention_levels=2) the blocks attend to the object tokens
    # alone, since self-attention over 256 positions would halve the training speed on a CPU.
    only_cross = (False,) * plain + (mode == "object_tokens",) * (attention_levels - 1) + (False,)
    unet = UNet2DConditionModel(
        in_channels=3,
        down_block_types=("DownBlock2D",) * plain + ("CrossAttnDownBlock2D",) * attention_levels,
        up_block_types=("CrossAttnUpBlock2D",) * attention_levels + ("UpBlock2D",) * plain,
        mid_block_type="UNetMidBlock2DCrossAttn",
        cross_attention_dim=cross_attention_dim,
        only_cross_attention=only_cross,
        attention_head_dim=8,
        **common,
    )
    return unet, LabelEncoder(mode, out_dim=cross_attention_dim, **encoder_args)


class Denoiser(nn.Module):
    """The noise predictor eps_theta(x_t, t, labels): a UNet and the label encoder that feeds it.

    An unconditional model is a Denoiser without an encoder; it ignores ``labels``. Training, the EMA,
    copying and counting parameters handle this one module; a pipeline saves its two parts as its
    ``unet`` and ``label_encoder`` components.
    """

    def __init__(self, unet: nn.Module, encoder: LabelEncoder | None = None):
        super().__init__()
        self.unet = unet
        self.encoder = encoder

    @property
    def mode(self) -> str:
        return "unconditional" if self.encoder is None else self.encoder.config.mode

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """The predicted noise ``(B, 3, H, W)`` for noisy ``x_t`` ``(B, 3, H, W)`` at timesteps ``t``, given
        multi-hot ``labels`` ``(B, num_labels)`` (all zeros: the null label). The only code that knows how
        each conditioning mode reaches the UNet."""
        if self.encoder is None:
            return self.unet(x_t, t).sample
        if labels is None:
            raise ValueError("this model is conditional: pass labels (use zeros for the null label)")
        condition = self.encoder(labels)
        if self.mode in ("cross_attention", "object_tokens"):
            return self.unet(x_t, t, encoder_hidden_states=condition.to(x_t.dtype)).sample
        if self.mode == "time_sum":
            return self.unet(x_t, t, class_labels=condition.to(x_t.dtype)).sample
        return self.unet(torch.cat([x_t, condition.to(x_t)], dim=1), t).sample  # concat


def build_denoiser(mode: str, **kwargs) -> Denoiser:
    """``Denoiser(*build_models(mode, **kwargs))``: the model that ``train`` trains."""
    return Denoiser(*build_models(mode, **kwargs))


def predict_noise(
    unet: nn.Module,
    label_encoder: LabelEncoder | None,
    sample: torch.Tensor,
    timestep: torch.Tensor,
    labels: torch.Tensor | None = None,
) -> torch.Tensor:
    """``Denoiser(unet, label_encoder)(sample, timestep, labels)``, for a pipeline's two components."""
    return Denoiser(unet, label_encoder)(sample, timestep, labels)


def count_parameters(*modules: nn.Module | None) -> int:
    return sum(p.numel() for m in modules if m is not None for p in m.parameters())
