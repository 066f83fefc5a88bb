import pytest
import torch
from diffusers import UNet2DConditionModel

from condiff.data.labels import to_label_batch
from condiff.models import MODES, Denoiser, LabelEncoder, build_denoiser, build_models, count_parameters, predict_noise

SMALL = dict(image_size=16, block_out_channels=(8, 16))


def _inputs(batch=2, size=16):
    g = torch.Generator().manual_seed(0)
    return torch.randn(batch, 3, size, size, generator=g), torch.tensor([10, 500])


@pytest.mark.parametrize("mode", MODES)
def test_shapes_and_dtypes(mode):
    unet, encoder = build_models(mode, **SMALL)
    x, t = _inputs()
    labels = None if encoder is None else to_label_batch(["red cube", "blue sphere, gray cube"])
    with torch.no_grad():
        out = predict_noise(unet, encoder, x, t, labels)
    assert out.shape == x.shape and out.dtype == torch.float32
    assert (encoder is None) == (mode == "unconditional")


@pytest.mark.parametrize("mode", MODES)
def test_denoiser_is_the_unet_and_its_encoder_as_one_module(mode):
    torch.manual_seed(0)
    denoiser = build_denoiser(mode, **SMALL)
    assert denoiser.mode == mode and (denoiser.encoder is None) == (mode == "unconditional")
    assert count_parameters(denoiser) == count_parameters(denoiser.unet, denoiser.encoder)
    x, t = _inputs()
    labels = to_label_batch(["red cube", "blue sphere, gray cube"])
    with torch.no_grad():
        out = denoiser(x, t, labels)  # an unconditional denoiser ignores the labels
        assert torch.equal(out, predict_noise(denoiser.unet, denoiser.encoder, x, t, labels))
    assert out.shape == x.shape


def test_unconditional_denoiser_needs_no_labels_and_a_conditional_one_asks_for_them():
    x, t = _inputs()
    with torch.no_grad():
        assert build_denoiser("unconditional", **SMALL)(x, t).shape == x.shape
        with pytest.raises(ValueError, match="pass labels"):
            Denoiser(*build_models("time_sum", **SMALL))(x, t)


def test_default_models_share_one_unet_size():
    sizes = {mode: count_parameters(*build_models(mode)) for mode in MODES}
    assert 1.0e6 < sizes["time_sum"] < 1.3e6
    # concat adds 24 input channels, time-sum a label MLP, cross-attention its attention layers.
    assert max(sizes.values()) / min(sizes.values()) < 1.35, sizes


@pytest.mark.parametrize("mode", ["cross_attention", "time_sum", "concat"])
def test_changing_the_label_changes_the_output(mode):
    torch.manual_seed(0)
    unet, encoder = build_models(mode, **SMALL)
    # Fresh diffusers UNets zero-initialise their output conv: perturb every weight so the test
    # sees whether the label reaches the network at all.
    with torch.no_grad():
        for p in [*unet.parameters(), *encoder.parameters()]:
            p.add_(0.05 * torch.randn_like(p))
    x, t = _inputs()
    a = predict_noise(unet, encoder, x, t, to_label_batch(["red cube", "red cube"]))
    b = predict_noise(unet, encoder, x, t, to_label_batch(["blue sphere", "blue sphere"]))
    null = predict_noise(unet, encoder, x, t, torch.zeros(2, 24))
    assert (a - b).abs().mean() > 1e-4
    assert (a - null).abs().mean() > 1e-4


def test_the_class_labels_pitfall_is_real():
    """UNet2DConditionModel without a class embedding silently ignores ``class_labels``."""
    torch.manual_seed(0)
    unet, _ = build_models("cross_attention", **SMALL)
    assert unet.class_embedding is None
    x, t = _inputs()
    context = torch.randn(2, 1, unet.config.cross_attention_dim)
    a = unet(x, t, encoder_hidden_states=context, class_labels=torch.tensor([1, 2])).sample
    b = unet(x, t, encoder_hidden_states=context, class_labels=torch.tensor([7, 9])).sample
    assert torch.equal(a, b)  # the labels never reached the network
    assert isinstance(unet, UNet2DConditionModel)


def test_label_encoder_outputs_and_errors():
    labels = to_label_batch(["red cube", "blue sphere"])
    assert LabelEncoder("cross_attention", out_dim=64)(labels).shape == (2, 1, 64)
    assert LabelEncoder("time_sum", out_dim=128)(labels).shape == (2, 128)
    maps = LabelEncoder("concat", out_dim=24, image_size=16)(labels)
    assert maps.shape == (2, 24, 16, 16) and maps[0, 1].eq(1).all() and maps[0, 0].eq(0).all()
    with pytest.raises(ValueError, match=r"shape \(batch, 24\)"):
        LabelEncoder("time_sum")(torch.zeros(2, 5))
    with pytest.raises(ValueError, match="unknown label encoder mode"):
        LabelEncoder("film")
    with pytest.raises(ValueError, match="unknown mode 'film'; allowed: unconditional"):
        build_models("film")
    unet, encoder = build_models("time_sum", **SMALL)
    x, t = _inputs()
    with pytest.raises(ValueError, match="pass labels"):
        predict_noise(unet, encoder, x, t, None)


def test_recipe_defaults_build_the_shipped_unet_exactly():
    """The variant fields' defaults leave the shipped architecture as it was (its weights load as before)."""
    import json

    from condiff import WEIGHTS_DIR
    from condiff.recipes import get_recipe

    recipe = get_recipe("time_sum_cosine")
    unet, encoder = build_models(recipe.mode, **recipe.model_kwargs())
    shipped = json.loads((WEIGHTS_DIR / "time_sum_cosine" / "unet" / "config.json").read_text())
    built = json.loads(json.dumps(dict(unet.config)))  # tuples as JSON lists, like the shipped file
    for key in ("down_block_types", "up_block_types", "block_out_channels", "resnet_time_scale_shift"):
        assert built[key] == shipped[key], key
    info = json.loads((WEIGHTS_DIR / "time_sum_cosine" / "training.json").read_text())
    assert count_parameters(unet, encoder) == info["parameters"]


def test_bad_unet_options_are_refused():
    with pytest.raises(ValueError, match="attention_levels must be 1 to 2"):
        build_models("time_sum", **SMALL, attention_levels=3)
