"""The evaluation tables the CLI prints."""

from linalgformer.tables import evaluation_table, method_table


def test_baselines_reported_under_a_prefix_become_rows():
    metrics = {"cos_1": 0.9, "mean_abs_cos": 0.8, "eigh_cos_1": 1.0, "eigh_mean_abs_cos": 1.0,
               "power6_cos_1": 0.95, "power6_mean_abs_cos": 0.91, "note": "x"}
    lines = method_table(metrics).splitlines()
    assert lines[0].split() == ["method", "cos_1", "mean_abs_cos"]
    assert [line.split()[0] for line in lines[2:]] == ["model", "eigh", "power6"]
    assert lines[4].split() == ["power6", "0.95", "0.91"]


def test_metrics_without_prefixes_stay_one_line():
    assert method_table({"loss": 0.5, "accuracy": 0.75}) == "loss 0.5  accuracy 0.75"


def test_charton_metrics_give_the_tolerance_table():
    table = evaluation_table({"acc@0.05": 0.5, "acc@0.02": 0.25, "acc@0.01": 0.1, "acc@0.005": 0.0, "exact": 0.0,
                              "invalid": 0.0, "count": 4, "by_law": {"gaussian": {"acc@0.05": 0.5, "count": 4}}})
    assert table.splitlines()[0].split()[:3] == ["group", "tol", "0.05"] and "law gaussian" in table
