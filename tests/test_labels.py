import pytest
import torch

from condiff.data.labels import (
    NUM_LABELS,
    OBJECTS,
    check_label_tensor,
    index_to_onehot,
    names_to_multihot,
    parse_objects,
    to_label_batch,
)


def test_vocabulary_follows_iclevr_order():
    assert NUM_LABELS == 24
    assert OBJECTS[0] == "gray cube" and OBJECTS[1] == "red cube" and OBJECTS[8] == "gray sphere"
    assert OBJECTS[23] == "yellow cylinder"


def test_names_multihot_round_trip():
    vector = names_to_multihot(["red cube", "blue sphere"])
    assert vector.shape == (24,) and vector.sum() == 2
    assert [OBJECTS[i] for i in vector.nonzero().flatten().tolist()] == ["red cube", "blue sphere"]
    assert torch.equal(names_to_multihot("red cube,  blue   sphere"), vector)
    assert parse_objects(" red cube , blue sphere ,") == ["red cube", "blue sphere"]


def test_onehot():
    onehot = index_to_onehot(torch.tensor([0, 23]))
    assert onehot.shape == (2, 24) and onehot[1, 23] == 1 and onehot.sum() == 2
    with pytest.raises(ValueError, match="out of range"):
        index_to_onehot(24)


@pytest.mark.parametrize(
    "names, message",
    [
        (["red cub"], r"unknown label 'red cub'; allowed labels are: gray cube"),
        (["red cube", "red cube"], "appears twice"),
        (["red cube", "blue cube", "gray cube", "cyan cube"], "1 to 3 objects, got 4"),
        ([], "1 to 3 objects, got 0"),
    ],
)
def test_bad_names_raise_clear_errors(names, message):
    with pytest.raises(ValueError, match=message):
        names_to_multihot(names)


def test_bad_tensors_raise_clear_errors():
    with pytest.raises(ValueError, match=r"shape \(batch, 24\), got \(2, 23\)"):
        check_label_tensor(torch.zeros(2, 23))
    with pytest.raises(ValueError, match=r"shape \(batch, 24\), got \(24,\)"):
        check_label_tensor(torch.zeros(24))
    with pytest.raises(ValueError, match="only 0 and 1"):
        check_label_tensor(torch.full((1, 24), 0.5))
    with pytest.raises(ValueError, match="must be a tensor"):
        check_label_tensor([[0] * 24])


def test_to_label_batch_accepts_every_form():
    batch = to_label_batch(["red cube", ["blue sphere", "gray cylinder"]])
    assert batch.shape == (2, 24) and batch.sum(1).tolist() == [1, 2]
    assert to_label_batch("red cube, blue sphere").shape == (1, 24)
    assert torch.equal(to_label_batch(batch), batch)
    with pytest.raises(ValueError, match="non-empty list"):
        to_label_batch([])
