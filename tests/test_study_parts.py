"""The study's parts: x0 from any scheduler, token positions, recorders, measures, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import yaml
from PIL import Image, ImageFilter
from study_support import finetuned_lora

from headshot.errors import HeadshotError
from headshot.families import attention
from headshot.samples import grace_hopper
from headshot.study import trajectory
from headshot.study.measures import (
    change_to_final,
    face_embeddings,
    high_frequency_energy,
    identity_to_final,
)
from headshot.study.model import load_study_model
from headshot.study.run import render_image

PROMPT = "a professional headshot photo of sks person with hair, earrings and glasses"


@pytest.fixture(scope="module")
def sd15_model(tiny_sd15):
    return load_study_model(None, str(tiny_sd15))


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
def test_x0_formulas_agree_with_the_schedulers_own(prediction):
    from diffusers import DDIMScheduler, EulerDiscreteScheduler

    torch.manual_seed(0)
    output, sample = torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 8)
    ddim = DDIMScheduler(prediction_type=prediction, clip_sample=False)
    ddim.set_timesteps(10)
    t = ddim.timesteps[3]
    expected = ddim.step(output, t, sample).pred_original_sample
    assert torch.allclose(trajectory.predicted_x0(ddim, output, t, sample, None), expected, atol=1e-5)

    euler = EulerDiscreteScheduler(prediction_type=prediction)
    euler.set_timesteps(10)
    t = euler.timesteps[3]
    euler._step_index = 3
    sigma = trajectory.current_sigma(euler, t)
    expected = euler.step(output, t, sample).pred_original_sample
    assert torch.allclose(trajectory.predicted_x0(euler, output, t, sample, sigma), expected, atol=1e-5)


def test_recorders_leave_the_render_unchanged(sd15_model):
    def render():
        return np.asarray(render_image(sd15_model, PROMPT, "", 64, seed=3, steps=3, guidance_scale=6.0))

    plain = render()
    positions = attention.token_positions(sd15_model.pipeline, PROMPT, ["hair"])
    scheduler = sd15_model.pipeline.scheduler
    with (
        trajectory.X0Recorder(scheduler) as x0,
        attention.CrossAttentionRecorder(sd15_model.pipeline, positions, (8, 8)) as maps,
    ):
        recorded = render()
    assert "step" not in vars(scheduler)  # the scheduler's own step is back
    assert np.abs(recorded.astype(int) - plain.astype(int)).max() <= 1
    assert len(x0.steps) == len(scheduler.timesteps) and maps.per_step().shape == (len(x0.steps), 1, 8, 8)
    again = render()
    assert np.array_equal(again, plain)  # the attention processors were restored


def test_an_attention_map_is_softmax_of_queries_times_keys_computed_by_hand(sd15_model):
    """The recorded map of step 0 against softmax(Q K^T / sqrt(d)) computed here from each
    cross-attention layer's own inputs: the prompt's half of the guided batch, averaged over
    heads, the word's probability at every pixel, each layer's grid resized to the latent
    grid (bilinear), averaged over the layers."""
    import torch.nn.functional as F

    pipe = sd15_model.pipeline
    positions = attention.token_positions(pipe, PROMPT, ["hair", "earrings"])
    layers = [m for m in pipe.unet.modules() if getattr(m, "is_cross_attention", False)]
    inputs = {}  # layer -> (hidden states, text states) of its first call: step 0

    def keep(layer):
        def hook(module, args, kwargs):
            hidden = args[0] if args else kwargs["hidden_states"]
            inputs.setdefault(
                layer, (hidden.detach().double(), kwargs["encoder_hidden_states"].detach().double())
            )

        return hook

    hooks = [m.register_forward_pre_hook(keep(i), with_kwargs=True) for i, m in enumerate(layers)]
    try:
        with attention.CrossAttentionRecorder(pipe, positions, (8, 8)) as recorder:
            render_image(sd15_model, PROMPT, "", 64, seed=3, steps=2, guidance_scale=6.0)
    finally:
        for hook in hooks:
            hook.remove()
    recorded = recorder.per_step()[0]  # (words, 8, 8)

    expected = np.zeros_like(recorded, dtype=np.float64)
    for index, module in enumerate(layers):
        hidden, text = inputs[index]
        hidden, text = hidden[hidden.shape[0] // 2 :], text[text.shape[0] // 2 :]  # the prompt's half
        q = hidden @ module.to_q.weight.detach().double().T
        k = text @ module.to_k.weight.detach().double().T
        heads = module.heads
        q = q.reshape(q.shape[0], q.shape[1], heads, -1).transpose(1, 2)  # (batch, heads, pixels, d)
        k = k.reshape(k.shape[0], k.shape[1], heads, -1).transpose(1, 2)  # (batch, heads, tokens, d)
        scores = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1).mean(dim=(0, 1))
        side = math.isqrt(scores.shape[0])
        for row, word in enumerate(positions):
            grid = scores[:, positions[word]].sum(dim=-1).reshape(1, 1, side, side)
            expected[row] += F.interpolate(grid, size=(8, 8), mode="bilinear", align_corners=False)[
                0, 0
            ].numpy()
    expected /= len(layers)
    assert len(layers) >= 3 and expected.std() > 1e-4
    np.testing.assert_allclose(recorded, expected, rtol=1e-4, atol=1e-6)


def test_token_positions_sum_split_words_and_agree_across_sdxl_tokenizers(tiny_sdxl):
    model = load_study_model(None, str(tiny_sdxl))
    pipe = model.pipeline
    prompt = PROMPT + " and spectacles"  # a word outside the tiny vocabulary: several pieces
    positions = attention.token_positions(pipe, prompt, ["sks", "spectacles"])
    assert positions["sks"] == [6]
    pieces = len(pipe.tokenizer.tokenize("spectacles"))
    assert pieces > 1 and positions["spectacles"] == list(
        range(positions["spectacles"][0], positions["spectacles"][0] + pieces)
    )
    # SDXL joins the two encoders along channels: one position means the same token in both.
    embeds = pipe.encode_prompt(PROMPT, device="cpu", do_classifier_free_guidance=False)[0]
    widths = pipe.text_encoder.config.hidden_size + pipe.text_encoder_2.config.hidden_size
    assert tuple(embeds.shape) == (1, pipe.tokenizer.model_max_length, widths)
    with pytest.raises(HeadshotError, match="token 'necklace' is not in the prompt"):
        attention.token_positions(pipe, PROMPT, ["necklace"])


def test_trajectory_measures_on_a_real_photo_sharpening_into_focus():
    photo = grace_hopper().convert("RGB").resize((256, 320))
    frames = [photo.filter(ImageFilter.GaussianBlur(radius)) for radius in (1.5, 1.0, 0.6)] + [photo]
    energy = [high_frequency_energy(frame) for frame in frames]
    assert energy == sorted(energy) and energy[-1] > 3 * energy[0]
    change = change_to_final(frames)
    assert change == sorted(change, reverse=True) and change[-1] == 0.0
    identity = identity_to_final(face_embeddings(frames))
    assert identity[-1] == 0.0 and all(value is not None for value in identity[1:])
    assert identity[1] > identity[-2] > 0.0
    assert trajectory.settle_step([5.0, 3.0, 1.2, 1.05, 1.0]) == 2
    assert trajectory.settle_step([None, None]) is None


def test_contact_sheet_downscales_to_the_tile_size():
    frames = [Image.new("RGB", (300, 150), (i * 40, 0, 0)) for i in range(5)]
    sheet = trajectory.contact_sheet(frames, tile=100, columns=2)
    assert sheet.size == (200, 150)  # 3 rows of 100x50 tiles
    assert sheet.getpixel((150, 25))[0] == 40 and sheet.getpixel((50, 125))[0] == 160


def test_unknown_token_is_a_clear_error_before_any_file(run_cli, tiny_sd15, tmp_path):
    result = run_cli("study", "-m", tiny_sd15, "--out", tmp_path / "s", "--tokens", "sks,necklace")
    assert result.code == 1
    assert "token 'necklace' is not in the prompt" in result.err and "Traceback" not in result.err
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"steps": "many"}, "field 'steps': expected an integer"),
        ({"sweep": {"grid": 3}}, "field 'sweep.grid': unknown field"),
        ({"sweep": {"lora_scales": [-1]}}, "field 'sweep.lora_scales'"),
        ({"metrics": ["sparkle"]}, "unknown metric 'sparkle'"),
        ({"prompt": "a photo of {name}"}, "field 'prompt': bad placeholder"),
    ],
)
def test_bad_config_names_the_file_and_field(run_cli, tiny_sd15, tmp_path, content, message):
    config = tmp_path / "study.yaml"
    config.write_text(yaml.safe_dump(content))
    result = run_cli("study", "-m", tiny_sd15, "--out", tmp_path / "s", "--config", config)
    assert result.code == 1
    assert message in result.err and "Traceback" not in result.err
    if "metric" in message:
        assert str(config) in result.err


def test_study_needs_a_place_to_write(run_cli, tiny_sd15):
    result = run_cli("study", "-m", tiny_sd15)
    assert result.code == 1 and "--subject NAME" in result.err


def test_a_lora_on_the_wrong_family_is_refused(run_cli, tiny_sd15, tiny_sdxl, tmp_path):
    lora = finetuned_lora(tiny_sd15, "sd15", tmp_path, steps=1, checkpoint_steps=0)
    result = run_cli("study", lora, "-m", tiny_sdxl, "--no-sweep")
    assert result.code == 1
    assert "trained on a sd15 model" in result.err and str(lora) in result.err


def test_metrics_from_one_features_function_measure_each_image_once():
    from headshot.study.measures import measure, metrics_from_features, rms_contrast

    calls = []

    def features(image):
        calls.append(image)
        if image.width < 32:
            return None  # e.g. no face found
        return {
            "detail": high_frequency_energy(image),
            "contrast": rms_contrast(image),
            "broken": float("nan"),
        }

    metrics = metrics_from_features(features, ["detail", "contrast", "broken", "absent"])
    photo = grace_hopper().convert("RGB").resize((64, 80))
    values = measure(photo, metrics)
    assert len(calls) == 1
    assert values["contrast"] == pytest.approx(rms_contrast(photo)) and values["detail"] > 0
    assert values["broken"] is None and values["absent"] is None
    assert measure(photo.resize((16, 20)), metrics) == dict.fromkeys(metrics)
    assert len(calls) == 2


def test_the_audits_metrics_along_a_trajectory_against_the_subjects_photos(tmp_path, sample_selfies):
    from audit_support import prepared

    from headshot.analysis.metrics import METRICS
    from headshot.study.artifacts import artifact_metrics
    from headshot.study.measures import trajectory_curves

    dataset = prepared(sample_selfies, tmp_path / "outputs")
    metrics = artifact_metrics(dataset)
    assert list(metrics) == [spec.name for spec in METRICS]  # identity, tone and gaze included
    photo = grace_hopper().convert("RGB").resize((400, 469))
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 255, (469, 400, 3), dtype=np.uint8))
    frames = [noise, photo.filter(ImageFilter.GaussianBlur(2.0)), photo]
    curves = trajectory_curves(frames, metrics)
    assert curves["identity_relative"][0] is None  # no face in pure noise
    assert 0 < curves["identity_relative"][2] < 1.6  # the subject: within the audit's likeness limit
    # Blur flattens the cheeks' texture: what the trajectory shows as plastic skin forming.
    assert curves["skin_texture"][1] < curves["skin_texture"][2]


def test_the_shipped_study_configs_are_valid():
    from headshot.config import configs_root
    from headshot.study.config import load_study_config

    shipped = load_study_config(configs_root() / "study.yaml")
    assert shipped.tokens == ["{identifier}", "earrings", "glasses", "hair"] and shipped.sweep.mode == "grid"
    demo = load_study_config(configs_root() / "demo" / "study.yaml", lora="outputs/demo/lora")
    assert demo.steps <= 4 and demo.sweep.mode == "axes"


def test_an_sdxl_lora_and_finetunes_checkpoints_load_and_switch(tiny_sdxl, tmp_path):
    from headshot.training.checkpoints import checkpoint_lora_layers, read_checkpoint

    # Text-encoder LoRAs too, and alpha != rank: the checkpoint's scale must be folded in.
    lora = finetuned_lora(tiny_sdxl, "sdxl", tmp_path, train_text_encoder=True, rank=4, alpha=8)
    assert sorted(p.name for p in (lora / "checkpoints").iterdir()) == ["step-000003", "step-000006"]
    model = load_study_model(lora, None)
    assert model.family == "sdxl" and [c.label for c in model.checkpoints] == ["step-000003", "final"]
    assert model.skipped_checkpoints == []

    def render(label, scale):
        model.use_lora(label, scale)
        return np.asarray(render_image(model, PROMPT, "", 64, seed=0, steps=2, guidance_scale=5.0), dtype=int)

    off, final, early = render("final", 0.0), render("final", 1.0), render("step-000003", 1.0)
    assert np.array_equal(off, render("step-000003", 0.0))
    assert np.abs(final - off).mean() > 0.5 and np.abs(final - early).mean() > 0.1

    # A checkpoint renders as the LoRA exported at its step: the step-6 one is the final LoRA.
    last = read_checkpoint(lora / "checkpoints" / "step-000006")
    model.pipeline.load_lora_weights(checkpoint_lora_layers(last.lora, 8 / 4), adapter_name="step_6")
    model.pipeline.set_adapters(["step_6"], adapter_weights=[1.0])
    again = np.asarray(render_image(model, PROMPT, "", 64, seed=0, steps=2, guidance_scale=5.0), dtype=int)
    assert np.abs(again - final).max() <= 1, np.abs(again - final).max()


@pytest.mark.parametrize("plot", ["trajectory", "sweep"])
def test_a_plot_names_every_measure_without_a_value_inside_the_figure(plot):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from headshot.analysis.metrics import METRICS
    from headshot.study.sweeps import plot_knob
    from headshot.study.trajectory import plot_curves

    faceless = [spec.name for spec in METRICS]  # a faceless render: no face metric has a value
    if plot == "trajectory":
        curves = {"rms_contrast": [0.1, 0.2, 0.2], **{name: [None] * 3 for name in faceless}}
        figure = plot_curves(curves, [999.0, 500.0, 1.0], {"rms_contrast": 1})
    else:
        entries = [
            {"steps": steps, "metrics": {"rms_contrast": 0.1 * steps, **dict.fromkeys(faceless)}}
            for steps in (2, 4)
        ]
        figure = plot_knob(entries, "steps", ["rms_contrast", *faceless], {"mode": "grid"})
    FigureCanvasAgg(figure).draw()
    title = figure.get_suptitle()
    assert all(name in title.replace("\n", " ") for name in faceless)
    box = figure._suptitle.get_window_extent()
    assert box.x0 >= 0 and box.x1 <= figure.bbox.width, (box, figure.bbox)
