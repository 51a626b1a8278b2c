"""Wine cultivar classifier dataflow: dataset -> engineered features -> split -> model -> metrics.

Every public function is a Hamilton node. Uses scikit-learn's bundled wine dataset (offline,
178 wines, 13 chemical measurements, 3 cultivars labelled 0/1/2).
"""

import numpy as np
import pandas as pd
from hamilton.function_modifiers import check_output, extract_columns, extract_fields
from sklearn.datasets import load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    f1_score,
    precision_score,
    recall_score,
)
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

CULTIVARS = (0, 1, 2)


@extract_columns("flavanoids", "total_phenols", "color_intensity", "hue", "proline")
def raw_dataset() -> pd.DataFrame:
    """The wine measurements plus a ``target`` cultivar column, as bundled with scikit-learn."""
    return load_wine(as_frame=True).frame


def phenol_ratio(flavanoids: pd.Series, total_phenols: pd.Series) -> pd.Series:
    """Share of phenols that are flavanoids; about half as high for cultivar 2 as for the others."""
    return flavanoids / total_phenols


def color_hue_ratio(color_intensity: pd.Series, hue: pd.Series) -> pd.Series:
    """Colour intensity relative to hue; roughly 2-4x higher for cultivar 2."""
    return color_intensity / hue


def log_proline(proline: pd.Series) -> pd.Series:
    """Log of proline, taming its long right tail (raw values span ~280 to ~1700)."""
    return np.log(proline)


def feature_matrix(
    raw_dataset: pd.DataFrame,
    phenol_ratio: pd.Series,
    color_hue_ratio: pd.Series,
    log_proline: pd.Series,
) -> pd.DataFrame:
    """All raw measurements plus the engineered features, one row per wine."""
    return raw_dataset.drop(columns="target").assign(
        phenol_ratio=phenol_ratio, color_hue_ratio=color_hue_ratio, log_proline=log_proline
    )


def target(raw_dataset: pd.DataFrame) -> pd.Series:
    """The cultivar label (0, 1 or 2) to predict."""
    return raw_dataset["target"]


@extract_fields(
    {
        "train_features": pd.DataFrame,
        "test_features": pd.DataFrame,
        "train_target": pd.Series,
        "test_target": pd.Series,
    }
)
def train_test_data(
    feature_matrix: pd.DataFrame,
    target: pd.Series,
    test_size: float = 0.25,
    random_state: int = 42,
) -> dict:
    """Stratified, reproducible train/test split of features and target."""
    train_x, test_x, train_y, test_y = train_test_split(
        feature_matrix, target, test_size=test_size, random_state=random_state, stratify=target
    )
    return {
        "train_features": train_x,
        "test_features": test_x,
        "train_target": train_y,
        "test_target": test_y,
    }


def trained_model(train_features: pd.DataFrame, train_target: pd.Series) -> Pipeline:
    """Standardised multinomial logistic regression fitted on the training split (deterministic)."""
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    return model.fit(train_features, train_target)


@check_output(values_in=CULTIVARS, importance="fail")
def predictions(trained_model: Pipeline, test_features: pd.DataFrame) -> pd.Series:
    """Predicted cultivar for each held-out wine, indexed like ``test_features``."""
    return pd.Series(
        trained_model.predict(test_features), index=test_features.index, name="predicted_cultivar"
    )


def evaluation_metrics(test_target: pd.Series, predictions: pd.Series) -> dict[str, float]:
    """Held-out accuracy and macro-averaged scores, as plain python floats."""
    scores = {
        "accuracy": accuracy_score(test_target, predictions),
        "balanced_accuracy": balanced_accuracy_score(test_target, predictions),
        "f1_macro": f1_score(test_target, predictions, average="macro"),
        "precision_macro": precision_score(test_target, predictions, average="macro"),
        "recall_macro": recall_score(test_target, predictions, average="macro"),
    }
    return {name: float(value) for name, value in scores.items()}
