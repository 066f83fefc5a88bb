"""The committed splits, the i-CLEVR folder format and its loader, and the README's data snippets.

The renderer itself is tested in test_scenes.py.
"""
import json
from pathlib import Path

import pytest
import torch
from tiny import write_iclevr_folder, write_sprites_fixture

from condiff.data.iclevr import SPLITS_DIR, ICLEVRDataset, held_out_combinations, load_split
from condiff.data.labels import MAX_OBJECTS, OBJECTS, names_to_multihot
from condiff.data.scenes import ProceduralScenes
from condiff.tools.splits import make_splits, other_label_files


def test_committed_splits_are_the_documented_ones():
    made = make_splits()
    for name, cases in made.items():
        assert json.loads((SPLITS_DIR / f"{name}.json").read_text()) == cases
    assert len(made["test"]) >= 32 and len(made["new_test"]) >= 32
    assert all(2 <= len(c) <= 3 for c in made["new_test"])


def test_other_label_files_are_fixed_valid_and_not_the_committed_splits():
    files = other_label_files()
    assert files == other_label_files()  # the same files every time: scores can be compared across runs
    assert len(files) == 4 and all(len(cases) == 32 for cases in files)
    committed = [load_split("test"), load_split("new_test")]
    for cases in files:
        assert cases not in committed and cases[:8] not in [c[:8] for c in committed]
        assert {len(c) for c in cases} == {1, 2, 3}  # 1 to 3 objects, as in i-CLEVR's test.json
        for case in cases:
            assert len(set(case)) == len(case) and names_to_multihot(case).sum() == len(case)
    assert other_label_files(files=2, num_cases=5, seed=8) != other_label_files(files=2, num_cases=5)


def test_new_test_combinations_never_appear_in_training():
    held_out = held_out_combinations()
    seen = {frozenset(c) for c in load_split("test")}
    assert not seen & held_out  # test: seen combinations, new_test: new ones
    data = ProceduralScenes(exclude=held_out, seed=0)
    for step in range(20):
        _, labels = data.batch(step, 256)
        assert not {frozenset(OBJECTS[i] for i in v.nonzero().flatten().tolist()) for v in labels} & held_out


def test_iclevr_folder_round_trip(tmp_path):
    root = write_iclevr_folder(tmp_path / "iclevr", num_train=12, size=32)
    train = ICLEVRDataset(root, size=16)  # resized on load
    image, label = train[0]
    assert len(train) == 12 and image.shape == (3, 16, 16) and label.shape == (24,)
    assert -1 <= image.min() and image.max() <= 1
    names = json.loads((root / "train.json").read_text())["CLEVR_train_000000_0.png"]
    assert torch.equal(label, names_to_multihot(names))
    images, labels = train.batch(step=0, batch_size=5)
    assert images.shape == (5, 3, 16, 16) and labels.shape == (5, 24)
    assert load_split(root / "new_test.json") == load_split("new_test")  # its test labels: the committed split


def test_iclevr_batches_follow_the_seed(tmp_path):
    root = write_iclevr_folder(tmp_path / "iclevr", num_train=64, size=16)
    batches = [ICLEVRDataset(root, size=16, seed=seed).batch(step=3, batch_size=16)[1] for seed in (0, 0, 1)]
    assert torch.equal(batches[0], batches[1])  # one seed, one batch
    assert not torch.equal(batches[0], batches[2])  # another seed, another batch


def test_iclevr_missing_and_bad_files_raise_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing objects.json"):
        ICLEVRDataset(tmp_path)
    root = write_iclevr_folder(tmp_path / "d", num_train=2)
    (root / "images" / "CLEVR_train_000001_0.png").unlink()
    with pytest.raises(FileNotFoundError, match="CLEVR_train_000001_0.png listed in train.json is missing"):
        ICLEVRDataset(root)
    (root / "train.json").write_text("[[")
    with pytest.raises(ValueError, match="not valid JSON"):
        ICLEVRDataset(root)


def test_load_split_checks_its_input(tmp_path):
    assert max(len(c) for c in load_split("test")) <= MAX_OBJECTS
    with pytest.raises(FileNotFoundError, match="no split file"):
        load_split("nope")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([["red cube", "pink cube"]]))
    with pytest.raises(ValueError, match="unknown label 'pink cube'"):
        load_split(bad)
    bad.write_text(json.dumps({"a": 1}))
    with pytest.raises(ValueError, match="list of object lists"):
        load_split(bad)


def test_readme_recipes_train_on_an_iclevr_folder_and_your_own_data(tmp_path):
    """The README's two snippets: a real i-CLEVR folder, and the sprites class (run as written, on a fixture)."""
    from condiff.pipeline import load_pipeline
    from condiff.recipes import get_recipe
    from condiff.train import train

    data = ICLEVRDataset(write_iclevr_folder(tmp_path / "iclevr", num_train=8), size=32)
    summary = train(get_recipe("time_sum").quick(), tmp_path / "run_iclevr", data=data, progress=False)
    assert summary["steps"] == 3

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    snippet = next(block for block in readme.split("```python")[1:] if "class Sprites" in block).split("```")[0]
    snippet = (snippet.replace("path/to/folder", str(write_sprites_fixture(tmp_path / "sprites")))
               .replace('"runs/sprites"', repr(str(tmp_path / "run_sprites")))
               .replace('name="sprites")', 'name="sprites").quick()'))
    assert snippet.count(str(tmp_path)) == 2 and ".quick()" in snippet  # the snippet still reads as the test expects
    namespace = {}
    exec(snippet, namespace)  # trains 3 steps
    batch = namespace["Sprites"](tmp_path / "sprites").batch(step=7, batch_size=4)
    assert torch.equal(batch[0], namespace["Sprites"](tmp_path / "sprites").batch(step=7, batch_size=4)[0])
    pipe = load_pipeline(tmp_path / "run_sprites")
    assert tuple(pipe.label_encoder.config.label_names) == ("hero", "non-hero", "food", "spell", "side-facing")
    images = pipe(["hero", "food"], num_inference_steps=2, output_type="np").images
    assert images.shape == (2, 16, 16, 3)
