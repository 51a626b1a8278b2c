import numpy as np
import pandas as pd
import pytest
from hamilton import driver
from hamilton.data_quality.base import DataValidationError

from hamilton_pipelines import ml_pipeline as ml


def _build():
    return driver.Builder().with_modules(ml).build()


def test_raw_dataset_is_the_bundled_wine_data():
    raw = ml.raw_dataset()
    assert raw.shape == (178, 14)
    assert raw["target"].value_counts().sort_index().tolist() == [59, 71, 48]


def test_engineered_features():
    assert ml.phenol_ratio(pd.Series([3.0, 1.0]), pd.Series([2.0, 4.0])).tolist() == [1.5, 0.25]
    assert ml.color_hue_ratio(pd.Series([5.0]), pd.Series([0.5])).tolist() == [10.0]
    assert ml.log_proline(pd.Series([1.0, np.e**7])).tolist() == pytest.approx([0.0, 7.0])


def test_feature_matrix_adds_features_and_excludes_target():
    raw = pd.DataFrame({"alcohol": [13.0, 12.0], "target": [0, 1]})
    features = ml.feature_matrix(raw, pd.Series([1.0, 0.5]), pd.Series([4.0, 9.0]), pd.Series([7.0, 6.0]))
    engineered = ["phenol_ratio", "color_hue_ratio", "log_proline"]
    assert features.columns.tolist() == ["alcohol", *engineered]
    assert features["color_hue_ratio"].tolist() == [4.0, 9.0]


def test_split_is_stratified_disjoint_and_reproducible():
    features = pd.DataFrame({"x": range(40)})
    target = pd.Series([0] * 20 + [1] * 20)

    split = ml.train_test_data(features, target, test_size=0.25, random_state=0)
    assert len(split["train_features"]) == 30 and len(split["test_features"]) == 10
    assert split["test_target"].value_counts().tolist() == [5, 5]
    assert set(split["train_features"].index).isdisjoint(split["test_features"].index)
    assert split["train_target"].index.equals(split["train_features"].index)

    again = ml.train_test_data(features, target, test_size=0.25, random_state=0)
    assert again["test_features"].index.equals(split["test_features"].index)


def test_evaluation_metrics_by_hand():
    metrics = ml.evaluation_metrics(pd.Series([0, 1, 2, 2]), pd.Series([0, 1, 2, 1]))

    # class 0: f1 1; class 1: precision 1/2, recall 1; class 2: precision 1, recall 1/2
    assert metrics == pytest.approx(
        {
            "accuracy": 0.75,
            "balanced_accuracy": 5 / 6,
            "f1_macro": 7 / 9,
            "precision_macro": 5 / 6,
            "recall_macro": 5 / 6,
        }
    )
    assert all(type(v) is float for v in metrics.values())


def test_prediction_check_rejects_unknown_cultivars():
    class Stub:
        def predict(self, features):
            return np.full(len(features), 7)

    with pytest.raises(DataValidationError, match=r"\[predictions:values_in_validator\]"):
        _build().execute(
            ["predictions"],
            overrides={"trained_model": Stub(), "test_features": pd.DataFrame({"x": [1.0, 2.0]})},
        )


def test_dataflow_end_to_end_is_accurate_and_deterministic():
    dr = _build()
    out = dr.execute(["evaluation_metrics", "predictions", "train_features", "test_target"])

    assert len(out["train_features"]) == 133 and len(out["predictions"]) == 45
    assert {"phenol_ratio", "color_hue_ratio", "log_proline"} <= set(out["train_features"].columns)
    assert out["predictions"].index.equals(out["test_target"].index)
    assert out["evaluation_metrics"]["accuracy"] >= 0.9
    assert dr.execute(["evaluation_metrics"]) == {"evaluation_metrics": out["evaluation_metrics"]}

    half = dr.execute(["predictions"], inputs={"test_size": 0.5, "random_state": 1})
    assert len(half["predictions"]) == 89
