"""What the Dataset page shows, computed from a run's tables (pandas and numpy, no UI): accuracy per class, the
confusion matrix, suspected label errors (cleanlab), and the leaderboard over the run and per class."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from core.errors import DatasetError
from metrics.leaderboard import agreement, summarize


def per_class(pred: pd.DataFrame) -> pd.DataFrame:
    """A row per label class: images, correct, accuracy, mean confidence (p of the prediction), mean p(label)."""
    if pred.empty or pred["label"].isna().all():
        return pd.DataFrame(columns=["class", "images", "correct", "accuracy", "mean confidence", "mean p(label)"])
    g = pred.dropna(subset=["label"]).groupby("label_name", sort=True)
    out = pd.DataFrame(
        {
            "images": g.size(),
            "correct": g["correct"].sum().astype(int),
            "accuracy": g["correct"].mean().astype(float),
            "mean confidence": g["p_prediction"].mean().astype(float),
            "mean p(label)": g["p_label"].mean().astype(float),
        }
    )
    return out.rename_axis("class").reset_index()


def confusion(pred: pd.DataFrame) -> pd.DataFrame:
    """Counts: a row per label class, a column per predicted class (only the classes that occur)."""
    labelled = pred.dropna(subset=["label"])
    if labelled.empty:
        return pd.DataFrame()
    return pd.crosstab(labelled["label_name"], labelled["prediction_name"]).rename_axis(index="label", columns="prediction")


def label_issues(pred: pd.DataFrame, probs: np.ndarray) -> pd.DataFrame:
    """Images whose label looks wrong, by cleanlab's ``find_label_issues`` (confident learning, Northcutt et al.
    2021) on the model's probabilities, ranked by the label's self-confidence (lowest first). The probabilities are
    restricted to the classes that occur as labels and renormalized (a run on 10 ImageNet classes is a 10-class
    problem). Raises ``DatasetError`` on an unlabelled run or one with a single class."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    keep = pred["label"].notna().to_numpy()
    labels = pred.loc[keep, "label"].to_numpy(int)
    present = np.unique(labels)
    if present.size < 2:
        raise DatasetError("suspected label errors need labels of at least two classes")
    p = probs[keep][:, present].astype(np.float64) + 1e-12
    p /= p.sum(axis=1, keepdims=True)
    y = np.searchsorted(present, labels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "too few examples in class k": small runs
        ranked = find_label_issues(y, p, return_indices_ranked_by="self_confidence", n_jobs=1)
        quality = get_label_quality_scores(y, p, method="self_confidence")
    rows = pred.loc[keep].reset_index(drop=True).iloc[ranked]
    out = rows[["image", "label_name", "prediction_name", "p_label", "p_prediction", "correct"]].assign(label_quality=quality[ranked])
    return out.assign(rank=np.arange(1, len(out) + 1)).reset_index(drop=True)


COLUMNS = ["metric", "method", "mean", "ci_low", "ci_high", "n", "failed", "rank"]


def leaderboard(scores: pd.DataFrame, *, seed: int = 0, n_boot: int = 1000) -> pd.DataFrame:
    """Per metric and method: mean, 95% bootstrap interval, n, failures, rank (``metrics.leaderboard.summarize``)."""
    rows = summarize(scores[["image", "method", "metric", "value"]].to_dict("records"), seed=seed, n_boot=n_boot)
    return pd.DataFrame(rows, columns=COLUMNS)


def leaderboard_by_class(scores: pd.DataFrame, pred: pd.DataFrame, *, seed: int = 0, n_boot: int = 1000) -> pd.DataFrame:
    """``leaderboard`` within each target class (the label, or the prediction for unlabelled images)."""
    by_image = pred.set_index("image")
    cls = by_image["label_name"].fillna(by_image["prediction_name"])
    tagged = scores.assign(**{"class": scores["image"].map(cls)})
    parts = [leaderboard(g, seed=seed, n_boot=n_boot).assign(**{"class": c}) for c, g in tagged.groupby("class")]
    return pd.concat(parts, ignore_index=True)[["class", *COLUMNS]] if parts else pd.DataFrame(columns=["class", *COLUMNS])


def kendall(summary: pd.DataFrame) -> tuple[list[str], np.ndarray]:
    """Kendall tau between the metrics' rankings of the methods (``metrics.leaderboard.agreement``)."""
    return agreement(summary.to_dict("records"))
