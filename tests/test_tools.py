"""The maintainers' tools that need no shipped weights: README splicing and the weights cards."""
from __future__ import annotations

import json

import pytest

from condiff.tools.cards import cards_markdown, model_card, ship, write_cards
from condiff.tools.readme import RESULTS_MARKERS, SAMPLERS_MARKERS, splice, update_readme

START, END = RESULTS_MARKERS


def test_splice_replaces_only_what_sits_between_the_markers():
    text = f"intro\n{START}\nold table\n{END}\noutro\n"
    assert splice(text, RESULTS_MARKERS, "new table") == f"intro\n{START}\nnew table\n{END}\noutro\n"


@pytest.mark.parametrize("text, missing", [(f"intro\n{END}\n", START), (f"intro\n{START}\n", END), ("intro\n", START)],
                         ids=["no-start", "no-end", "none"])
def test_a_missing_marker_is_named(text, missing):
    with pytest.raises(ValueError) as error:
        splice(text, RESULTS_MARKERS, "table", "README.md")
    assert missing in str(error.value) and "README.md" in str(error.value)


def test_markers_in_the_wrong_order_are_refused():
    with pytest.raises(ValueError, match="must come after"):
        splice(f"{END}\n{START}\n", RESULTS_MARKERS, "table")


def test_update_readme_without_its_markers_changes_nothing(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n{SAMPLERS_MARKERS[0]}\n{SAMPLERS_MARKERS[1]}\n")
    before = readme.read_text()
    with pytest.raises(ValueError, match="results"):
        update_readme({"rows": [], "settings": "x"}, readme, tmp_path)
    assert readme.read_text() == before


def test_cards_are_model_cards_from_the_runs_own_records(tmp_path, tiny_pipeline_dir):
    run = tmp_path / "run"
    ship_source = tiny_pipeline_dir
    run.mkdir()
    for item in ship_source.iterdir():
        (run / item.name).symlink_to(item, target_is_directory=item.is_dir())
    info = {"command": "python -m condiff train time_sum --max-steps 4", "commit": "abc1234", "hardware": "CPU: x",
            "processes": 1, "train_seconds": 60.0, "steps": 4, "images_seen": 32, "seed": 0, "final_loss": 0.5,
            "recipe": {"mode": "time_sum", "batch_size": 8, "snr_gamma": 5.0, "label_hidden_dim": None}}
    (run / "training.json").write_text(json.dumps(info))
    weights = tmp_path / "weights"
    ship(run, "time_sum", weights)
    assert not (weights / "time_sum" / "checkpoint").exists()
    write_cards(weights)
    card = model_card("time_sum", weights)
    assert (weights / "time_sum" / "README.md").read_text() == card.content
    assert card.data.library_name == "diffusers" and "time_sum" in card.data.tags
    for fact in ("`python -m condiff train time_sum --max-steps 4`", "abc1234", "CPU: x, 1 process(es)",
                 "wall time: 1.0 min", "images seen: 32", "Multi-label, time-sum (linear)", "batch_size=8",
                 "snr_gamma=5.0"):
        assert fact in card.text, fact
    assert "label_hidden_dim" not in card.text  # an unset setting is the default, not listed
    assert "`unet/diffusion_pytorch_model.safetensors`" in card.text and "`README.md`" not in card.text
    assert (weights / "README.md").read_text() == cards_markdown(weights)
    with pytest.raises(FileNotFoundError, match="no training.json"):
        ship(tmp_path / "nothing", "x", weights)


def test_train_evaluator_writes_a_loadable_judge_and_its_command(tmp_path, capsys):
    from condiff.__main__ import main
    from condiff.evaluate import load_evaluator

    main(["train-evaluator", "--out", str(tmp_path / "judge"), "--max-steps", "2", "--seed", "3"])
    info = json.loads((tmp_path / "judge" / "training.json").read_text())
    assert info["steps"] == 2 and info["seed"] == 3
    assert info["command"] == "python -m condiff train-evaluator --max-steps 2 --seed 3"
    assert 0 <= info["accuracy_on_fresh_scenes"] <= 1
    load_evaluator(tmp_path / "judge")
    assert f"saved to {tmp_path / 'judge'}" in capsys.readouterr().out

    (tmp_path / "judge" / "README.md").write_text("a card: this is now a shipped model\n")
    before = (tmp_path / "judge" / "training.json").read_bytes()
    with pytest.raises(SystemExit) as stop:
        main(["train-evaluator", "--out", str(tmp_path / "judge"), "--max-steps", "2"])
    assert stop.value.code == 2 and "refusing to train into" in capsys.readouterr().err
    assert (tmp_path / "judge" / "training.json").read_bytes() == before  # nothing trained, nothing lost
