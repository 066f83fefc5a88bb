from condiff.benchmark import report, training_throughput


def test_training_throughput_compares_both_steps():
    result = training_throughput(steps=1, rounds=1)
    assert result["naive"] > 0 and result["condiff"] > 0
    assert abs(result["ratio"] - result["condiff"] / result["naive"]) < 1e-9


def test_quick_report_has_both_tables():
    text = report(quick=True)
    assert "| ratio |" in text and "| ddim-5 |" in text
