"""HTML reports of a fitted detector and of a scoring run: one self-contained page each.

``fit_report(detector, X)`` shows whether training converged, where the threshold sits on
the held-out scores, the columns' roles and average contributions, and the latent space.
``score_report(detector, summary, accounting)`` shows a scoring run: its accounting, how
the batch's scores fall against the calibration scores and the threshold, the p-values,
the flagged rows and (with labels) ROC and precision-recall curves.

A page is one HTML string: figures are PNG images drawn by matplotlib (its Agg canvas,
no pyplot state) and embedded as ``data:`` URIs, with no script and no reference to
anything off the page, so it works offline, by e-mail and from a file share. matplotlib is
an optional extra: ``pip install "vae-anomaly[report]"`` (``require_matplotlib``).

Memory stays bounded on large runs: a scoring job feeds a ``ScoreSummary`` per chunk or
batch (anomaly scores counted in buckets of 1% relative width, p-values in 20 bins, the
``TOP_ROWS`` highest-scoring flagged rows in a heap) and, for images, an ``ImageGallery``
(a few images in heaps). Neither holds the scores of the run.
"""

from __future__ import annotations

import base64
import heapq
import html
import io
import itertools
import math
from collections import Counter
from datetime import UTC, datetime

import numpy as np

from .errors import UsageError

INSTALL_HINT = 'pip install "vae-anomaly[report]"'
TOP_ROWS = 100  # flagged rows kept and listed; the page says how many there were
P_VALUE_BINS = 20
GALLERY_SIZE = 6  # images per gallery row
MAX_FIT_ROWS = 2000  # training rows scored for the fit report's figures
DISPLAY_BINS = 60
SCORE_NAMES = {"elbo": "-ELBO", "iwae": "-IWAE", "exact": "-log p(x)"}
THRESHOLD_COLOUR, BATCH_COLOUR, CALIBRATION_COLOUR = "#c0392b", "#1f77b4", "#7f7f7f"


class MissingDependencyError(UsageError, ImportError):
    """An optional dependency of a requested output is not installed (exit status 2)."""


def require_matplotlib(what: str = "--html") -> None:
    """Raise ``MissingDependencyError`` with the install hint if matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as error:
        raise MissingDependencyError(
            f"{what} needs matplotlib, which is not installed: {INSTALL_HINT}."
        ) from error


def matplotlib_available() -> bool:
    try:
        require_matplotlib()
    except MissingDependencyError:
        return False
    return True


# ----------------------------------------------------------------------------- accumulators


class ScoreHistogram:
    """Counts of anomaly scores in buckets of relative width: mergeable, bounded, exact
    enough to draw.

    A score a falls in bucket k = sign(a) (1 + floor(ln(|a| / a0) / ln g)) when
    |a| >= a0, else in bucket 0, with a0 = ``SMALLEST`` and g = 1 + ``RELATIVE_WIDTH``:
    bucket k > 0 covers [a0 g^(k-1), a0 g^k). Each bucket spans 1% of its values, so the
    count of buckets grows with the logarithm of the scores' range (at most about 7,000
    for scores from 1e-3 to 1e12, whatever their number), not with the rows.
    """

    SMALLEST = 1e-3
    RELATIVE_WIDTH = 0.01

    def __init__(self) -> None:
        self.counts: Counter = Counter()
        self.low = math.inf
        self.high = -math.inf

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def _keys(self, scores: np.ndarray) -> np.ndarray:
        size = np.abs(scores)
        big = size >= self.SMALLEST
        keys = np.zeros(scores.shape, dtype=np.int64)
        steps = np.floor(np.log(size[big] / self.SMALLEST) / math.log1p(self.RELATIVE_WIDTH))
        keys[big] = np.sign(scores[big]).astype(np.int64) * (1 + steps.astype(np.int64))
        return keys

    def centre(self, keys) -> np.ndarray:
        """A representative score of each bucket: the geometric middle of its range."""
        keys = np.asarray(keys, dtype=np.float64)
        g = 1.0 + self.RELATIVE_WIDTH
        size = self.SMALLEST * g ** (np.abs(keys) - 0.5)
        return np.where(keys == 0, 0.0, np.sign(keys) * size)

    def bounds(self, keys) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) end of each bucket's range of scores."""
        keys = np.asarray(keys, dtype=np.float64)
        g = 1.0 + self.RELATIVE_WIDTH
        inner = np.where(keys == 0, -self.SMALLEST, self.SMALLEST * g ** (np.abs(keys) - 1))
        outer = np.where(keys == 0, self.SMALLEST, self.SMALLEST * g ** np.abs(keys))
        return np.where(keys < 0, -outer, inner), np.where(keys < 0, -inner, outer)

    def counts_in(self, edges) -> np.ndarray:
        """The count of scores in each bin between consecutive ``edges``, each bucket's
        count spread evenly over its range (clipped to the smallest and largest score),
        so that bins narrower or wider than the buckets show no aliasing stripes."""
        keys = np.array(sorted(self.counts), dtype=np.int64)
        if keys.size == 0:
            return np.zeros(len(edges) - 1)
        counts = np.array([self.counts[k] for k in keys], dtype=np.float64)
        lower, upper = self.bounds(keys)
        lower, upper = np.maximum(lower, self.low), np.minimum(upper, self.high)
        width = np.maximum(upper - lower, 1e-300)
        below = np.clip((np.asarray(edges)[:, None] - lower) / width, 0.0, 1.0)  # [edges, keys]
        below[:, upper <= lower] = (np.asarray(edges)[:, None] >= upper)[:, upper <= lower]
        return np.diff(below @ counts)

    def add(self, scores) -> None:
        scores = np.asarray(scores, dtype=np.float64).ravel()
        scores = scores[np.isfinite(scores)]
        if scores.size == 0:
            return
        keys, counts = np.unique(self._keys(scores), return_counts=True)
        self.counts.update(dict(zip(keys.tolist(), counts.tolist(), strict=True)))
        self.low = min(self.low, float(scores.min()))
        self.high = max(self.high, float(scores.max()))

    def merge(self, other: ScoreHistogram) -> None:
        self.counts.update(other.counts)
        self.low, self.high = min(self.low, other.low), max(self.high, other.high)

    def values_and_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """(bucket centres, counts), in increasing order; the extremes are the exact
        smallest and largest scores."""
        keys = np.array(sorted(self.counts), dtype=np.int64)
        counts = np.array([self.counts[k] for k in keys], dtype=np.int64)
        values = self.centre(keys)
        if values.size:
            values[0], values[-1] = max(values[0], self.low), min(values[-1], self.high)
        return values, counts

    def quantile(self, q: float) -> float:
        values, counts = self.values_and_counts()
        if not values.size:
            return math.nan
        position = np.searchsorted(np.cumsum(counts), q * counts.sum(), side="left")
        return float(values[min(position, values.size - 1)])

    def count_above(self, value: float) -> int:
        """How many scores are above ``value`` (to the buckets' resolution)."""
        return self.total - round(float(self.counts_in([-math.inf, value])[0]))

    def to_dict(self) -> dict:
        return {
            "counts": {str(k): int(v) for k, v in sorted(self.counts.items())},
            "low": self.low if math.isfinite(self.low) else None,
            "high": self.high if math.isfinite(self.high) else None,
        }

    @classmethod
    def from_dict(cls, data: dict) -> ScoreHistogram:
        histogram = cls()
        histogram.counts = Counter({int(k): int(v) for k, v in data["counts"].items()})
        histogram.low = math.inf if data["low"] is None else float(data["low"])
        histogram.high = -math.inf if data["high"] is None else float(data["high"])
        return histogram


class ScoreSummary:
    """What a score report needs of a run, accumulated batch by batch in bounded memory.

    - ``scores``: a ``ScoreHistogram`` of every anomaly score;
    - ``p_counts``: p-values counted in ``P_VALUE_BINS`` equal bins of [0, 1] (the last
      bin includes 1);
    - ``flagged``: the ``top`` flagged rows with the highest anomaly scores (a heap), each
      an alert record (``row_id``, ``anomaly_score``, ``p_value``, ``top_features``);
    - ``n_flagged`` and ``feature_shares``: every flagged row counted, and the sum over
      them of each column's share of the row's excess negative log-likelihood.

    Summaries of chunks ``merge`` into the summary of the run, in any order.
    """

    def __init__(self, top: int = TOP_ROWS) -> None:
        self.top = top
        self.scores = ScoreHistogram()
        self.p_counts = np.zeros(P_VALUE_BINS, dtype=np.int64)
        self.n_flagged = 0
        self.feature_shares: Counter = Counter()
        self._heap: list = []  # (anomaly_score, tie, record), smallest first
        self._tie = itertools.count()

    def add(self, anomaly_scores, p_values=None, flagged_records=()) -> None:
        """Count a batch: its anomaly scores, p-values (NaN ones skipped) and the alert
        records of its flagged rows."""
        self.scores.add(anomaly_scores)
        if p_values is not None:
            p_values = np.asarray(p_values, dtype=np.float64)
            p_values = p_values[np.isfinite(p_values)]
            bins = np.minimum((p_values * P_VALUE_BINS).astype(np.int64), P_VALUE_BINS - 1)
            self.p_counts += np.bincount(bins, minlength=P_VALUE_BINS)
        for record in flagged_records:
            self.n_flagged += 1
            for feature in record.get("top_features", ()):
                self.feature_shares[feature["feature"]] += feature["share"]
            self._push(record)

    def _push(self, record: dict) -> None:
        item = (float(record["anomaly_score"]), next(self._tie), record)
        if len(self._heap) < self.top:
            heapq.heappush(self._heap, item)
        elif item[0] > self._heap[0][0]:
            heapq.heapreplace(self._heap, item)

    def merge(self, other: ScoreSummary) -> None:
        self.scores.merge(other.scores)
        self.p_counts += other.p_counts
        self.n_flagged += other.n_flagged
        self.feature_shares.update(other.feature_shares)
        for _, _, record in other._heap:
            self._push(record)

    @property
    def flagged(self) -> list[dict]:
        """The kept flagged rows, highest anomaly score first."""
        return [record for _, _, record in sorted(self._heap, key=lambda item: -item[0])]

    def to_dict(self) -> dict:
        return {
            "top": self.top,
            "scores": self.scores.to_dict(),
            "p_counts": self.p_counts.tolist(),
            "n_flagged": self.n_flagged,
            "feature_shares": dict(self.feature_shares),
            "flagged": self.flagged,
        }

    @classmethod
    def from_dict(cls, data: dict) -> ScoreSummary:
        summary = cls(int(data["top"]))
        summary.scores = ScoreHistogram.from_dict(data["scores"])
        summary.p_counts = np.asarray(data["p_counts"], dtype=np.int64)
        summary.n_flagged = int(data["n_flagged"])
        summary.feature_shares = Counter(data["feature_shares"])
        for record in data["flagged"]:
            summary._push(record)
        return summary


class ImageGallery:
    """A few images of a run with their heat maps, kept in bounded heaps as batches pass:
    the ``size`` highest anomaly scores, and the ``size`` nearest the threshold on each
    side (the highest at or below it, the lowest above it)."""

    def __init__(self, threshold: float, size: int = GALLERY_SIZE) -> None:
        self.threshold = float(threshold)
        self.size = size
        self._tie = itertools.count()
        self._heaps: dict[str, list] = {"highest": [], "below": [], "above": []}

    def add(self, ids, anomaly_scores, p_values, images, maps) -> None:
        """ids [n], anomaly_scores [n], p_values [n], images [n, H, W, C] in [0, 1],
        maps [n, H, W] (``images.heatmaps.pixel_anomaly``)."""
        anomaly_scores = np.asarray(anomaly_scores, dtype=np.float64)
        above = anomaly_scores > self.threshold
        keys = {  # larger key = wanted more
            "highest": anomaly_scores,
            "below": np.where(above, -np.inf, anomaly_scores),
            "above": np.where(above, -anomaly_scores, -np.inf),
        }
        for name, key in keys.items():
            candidates = np.flatnonzero(np.isfinite(key))
            if candidates.size > self.size:
                candidates = candidates[np.argpartition(-key[candidates], self.size)[: self.size]]
            heap = self._heaps[name]
            for i in candidates:
                item = (
                    float(key[i]),
                    next(self._tie),
                    (
                        str(ids[i]),
                        float(anomaly_scores[i]),
                        float(p_values[i]),
                        np.array(images[i]),
                        np.array(maps[i]),
                    ),  # copies, so that the batch is not kept
                )
                if len(heap) < self.size:
                    heapq.heappush(heap, item)
                elif item[0] > heap[0][0]:
                    heapq.heapreplace(heap, item)

    def scale(self) -> tuple[float, float]:
        """One colour scale for every heat map kept: the 1st to 99.9th percentile of
        their pixels, so that a bright pixel means the same in each gallery."""
        maps = [item[2][4] for heap in self._heaps.values() for item in heap]
        if not maps:
            return 0.0, 1.0
        low, high = np.percentile(np.concatenate([m.ravel() for m in maps]), [1, 99.9])
        return float(low), float(max(high, low + 1e-9))

    def flagged(self) -> list[tuple]:
        """The "highest" gallery's images above the threshold (the flagged ones), highest
        first: with fewer flagged images than ``size``, the others are not shown as such."""
        return [item for item in self.images("highest") if item[1] > self.threshold]

    def images(self, name: str) -> list[tuple]:
        """(id, anomaly score, p-value, image, map) of one gallery, by anomaly score
        (highest first for "highest"; increasing for "below" and "above")."""
        items = [item[2] for item in self._heaps[name]]
        return sorted(items, key=lambda item: -item[1] if name == "highest" else item[1])


# ----------------------------------------------------------------------------- figures


def _figure(width: float, height: float):
    """A matplotlib Figure on its own Agg canvas (no pyplot: no global state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _literal(text) -> str:
    """A name from the data as matplotlib text drawn as written: a "$" escaped, since a
    pair of them would start mathtext (a file named lot$^$7.png failed the report)."""
    return str(text).replace("$", r"\$")


def figure_uri(figure) -> str:
    """The figure as a PNG ``data:`` URI (for an ``<img src=...>``)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _score_label(detector) -> str:
    name = SCORE_NAMES.get(getattr(detector, "score_method", "elbo"), "-log p(x) bound")
    return f"anomaly score ({name}, nats; higher is stranger)"


def _legend_above(axes) -> None:
    """The legend in a row above the plot, where it covers no bar."""
    axes.legend(fontsize=8, loc="lower left", bbox_to_anchor=(0, 1.01), ncols=3, frameon=False)


def _threshold_line(axes, threshold: float, text: str) -> None:
    axes.axvline(threshold, color=THRESHOLD_COLOUR, linestyle="--", linewidth=1.5, label=text)


def best_epoch(detector) -> tuple[int | None, bool]:
    """(epoch of the weights kept, 0-based, or None without validation; whether early
    stopping ended training).

    With validation rows, ``fit`` keeps the weights of the epoch with the lowest
    validation loss from epoch ``kl_warmup_epochs`` on (Keras ``EarlyStopping`` with
    ``restore_best_weights``), and stops once ``n_iter_no_change`` epochs in a row have
    not improved on it: stopped early when n_epochs - 1 - best >= n_iter_no_change.
    """
    validation = detector.history_.get("val_loss")
    if not validation:
        return None, False
    start = min(int(detector.kl_warmup_epochs or 0), len(validation) - 1)
    best = start + int(np.argmin(validation[start:]))
    return best, len(validation) - 1 - best >= int(detector.n_iter_no_change)


def training_figure(detector):
    """Loss, reconstruction term and KL per epoch, training and validation."""
    history = detector.history_
    best, _ = best_epoch(detector)
    panels = [
        ("loss", "loss (-ELBO per row)"),
        ("reconstruction_loss", "reconstruction (-E log p(x|z))"),
        ("kl", "KL(q(z|x) ‖ p(z))"),
    ]
    panels = [(key, title) for key, title in panels if key in history]
    figure = _figure(3.6 * len(panels), 3.2)
    for axes, (key, title) in zip(
        figure.subplots(1, len(panels), squeeze=False)[0], panels, strict=True
    ):
        epochs = np.arange(1, len(history[key]) + 1)
        axes.plot(epochs, history[key], color=BATCH_COLOUR, label="training")
        if f"val_{key}" in history:
            axes.plot(epochs, history[f"val_{key}"], color="#ff7f0e", label="validation")
        if best is not None:
            axes.axvline(best + 1, color="#2ca02c", linestyle=":", label=f"kept: epoch {best + 1}")
        axes.set_title(title, fontsize=10)
        axes.set_xlabel("epoch")
        axes.set_ylabel("nats per row (scaled data)")
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    return figure


def _display_edges(summary_hist: ScoreHistogram | None, calibration, threshold: float):
    """Bin edges for drawing scores (see ``_display_range``): 2 sqrt(n) bins for the
    smaller sample n, between 15 and ``DISPLAY_BINS``, so few scores are not all spikes."""
    sizes = [len(calibration)] if calibration is not None and len(calibration) else []
    if summary_hist is not None and summary_hist.total:
        sizes.append(summary_hist.total)
    bins = int(np.clip(2 * math.sqrt(min(sizes, default=DISPLAY_BINS**2)), 15, DISPLAY_BINS))
    low, high = _display_range(summary_hist, calibration, threshold)
    return np.linspace(low, high, bins + 1)


def _display_range(summary_hist: ScoreHistogram | None, calibration, threshold: float):
    """(low, high) of a score chart: from the lowest score (the calibration scores' and
    the run's 0.1% quantile) to the highest of the calibration scores and the run's 99%
    quantile, but at most as far above the threshold t as low is below it:
    high = min(high, t + (t - low)). Scores beyond are counted in the x label, not drawn."""
    lows, highs = [threshold], [threshold]
    if calibration is not None and len(calibration):
        lows.append(float(np.min(calibration)))
        highs.append(float(np.max(calibration)))
    if summary_hist is not None and summary_hist.total:
        lows.append(summary_hist.quantile(0.001))
        highs.append(summary_hist.quantile(0.99))
    low, high = min(lows), max(highs)
    bulk = max(threshold - low, 1e-9)
    high = min(high, threshold + bulk)  # at most as far above the threshold as below it
    if high <= low:
        high = low + 1.0
    margin = 0.02 * (high - low)
    return low - margin, high + margin


def calibration_figure(detector, training_scores=None):
    """The held-out (calibration) anomaly scores with the threshold; or, when the detector
    is not calibrated, the training scores given."""
    threshold = float(-detector.offset_)
    calibrated = bool(getattr(detector, "calibrated_", False))
    scores = detector.calibration_scores_ if calibrated else training_scores
    figure = _figure(9.5, 3.4)
    axes = figure.subplots()
    if scores is not None and len(scores):
        edges = _display_edges(None, scores, threshold)
        axes.hist(
            scores,
            bins=edges,
            color=CALIBRATION_COLOUR,
            label=(
                f"held-out calibration rows (n = {len(scores):,})"
                if calibrated
                else f"training rows (sample of {len(scores):,})"
            ),
        )
        beyond = int(np.sum(scores > edges[-1]))
        note = _beyond(beyond, edges[-1], float(np.max(scores)), "rows") if beyond else ""
    above = int(np.sum(np.asarray(scores) > threshold)) if scores is not None else 0
    share = f"{above:,} of {len(scores):,} above it" if scores is not None and len(scores) else ""
    if calibrated:
        text = (
            f"threshold {threshold:.4g} ({share}): false-alarm rate ≤ {detector.fpr_:g}, certified"
        )
    else:
        text = f"threshold {threshold:.4g} ({share}): not certified"
    _threshold_line(axes, threshold, text)
    axes.set_xlabel(_score_label(detector) + (note if scores is not None else ""))
    axes.set_ylabel("rows per bin")
    _legend_above(axes)
    axes.grid(alpha=0.3)
    return figure


def _beyond(count: int, edge: float, largest: float, unit: str) -> str:
    """A second line for the x label: what lies right of the chart."""
    what = unit if count != 1 else unit[:-1]
    return f"\n→ {count:,} {what} off the chart to the right: scores {edge:.4g} to {largest:.4g}"


def contributions_figure(names, mean_nll):
    """Mean -E_q[log p(x_j|z)] per column, largest first (a bar per column)."""
    order = np.argsort(mean_nll)  # barh draws from the bottom: largest on top
    figure = _figure(9.5, 0.8 + 0.28 * len(names))
    axes = figure.subplots()
    axes.barh(np.arange(len(names)), np.asarray(mean_nll)[order], color=BATCH_COLOUR)
    axes.set_yticks(np.arange(len(names)), [_literal(names[j]) for j in order], fontsize=9)
    axes.axvline(0, color="black", linewidth=0.8)
    axes.set_xlabel("mean -E_q[log p(x_j|z)] per row (nats; higher: the column costs more)")
    axes.grid(axis="x", alpha=0.3)
    return figure


def latent_figure(detector, Z, anomaly_scores):
    """The rows' posterior embeddings in 2-D (PCA when the latent has more dimensions),
    coloured by anomaly score (colour range: the scores' 1st to 99th percentile)."""
    Z = np.asarray(Z, dtype=np.float64)
    figure = _figure(6.5, 5.0)
    axes = figure.subplots()
    if Z.shape[1] == 1:
        x, y = Z[:, 0], anomaly_scores
        xlabel, ylabel = "z (posterior mean)", _score_label(detector)
    elif Z.shape[1] == 2:
        x, y = Z[:, 0], Z[:, 1]
        xlabel, ylabel = "z₁ (posterior mean)", "z₂ (posterior mean)"
    else:
        centred = Z - Z.mean(axis=0)
        _, singular, components = np.linalg.svd(centred, full_matrices=False)
        explained = singular**2 / max(float(np.sum(singular**2)), 1e-300)
        x, y = centred @ components[0], centred @ components[1]
        xlabel = f"first principal component ({100 * explained[0]:.0f}% of variance)"
        ylabel = f"second principal component ({100 * explained[1]:.0f}% of variance)"
    low, high = np.percentile(anomaly_scores, [1, 99])
    order = np.argsort(anomaly_scores)  # the strangest drawn last, on top
    points = axes.scatter(
        x[order],
        y[order],
        c=np.asarray(anomaly_scores)[order],
        cmap="viridis",
        vmin=low,
        vmax=max(high, low + 1e-9),
        s=10,
    )
    colorbar = figure.colorbar(points, ax=axes)
    colorbar.set_label(_score_label(detector))
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.grid(alpha=0.3)
    return figure


def scores_figure(detector, summary: ScoreSummary, unit: str = "rows"):
    """This batch's anomaly scores beside the calibration scores (each as a share of its
    rows, on the same bins), with the threshold."""
    threshold = float(-detector.offset_)
    calibration = getattr(detector, "calibration_scores_", None)
    edges = _display_edges(summary.scores, calibration, threshold)
    figure = _figure(9.5, 3.6)
    axes = figure.subplots()
    total, note = summary.scores.total, ""
    if total:
        batch = summary.scores.counts_in(edges)
        axes.stairs(
            batch / total,
            edges,
            fill=True,
            alpha=0.5,
            color=BATCH_COLOUR,
            label=f"this run (n = {total:,})",
        )
        beyond = summary.scores.count_above(edges[-1])
        if beyond > 0:
            note = _beyond(beyond, edges[-1], summary.scores.high, unit)
    if calibration is not None and len(calibration):
        held, _ = np.histogram(calibration, bins=edges)
        axes.stairs(
            held / len(calibration),
            edges,
            color="black",
            linewidth=1.2,
            label=f"calibration {unit} at fit (n = {len(calibration):,})",
        )
    _threshold_line(axes, threshold, f"threshold {threshold:.4g}: flagged above it")
    axes.set_xlabel(_score_label(detector) + note)
    axes.set_ylabel(f"share of {unit} per bin")
    _legend_above(axes)
    axes.grid(alpha=0.3)
    return figure


def p_values_figure(summary: ScoreSummary, unit: str = "rows"):
    """Counts of p-values in 20 bins, with the count expected per bin if every row were
    normal (uniform p-values)."""
    edges = np.linspace(0.0, 1.0, P_VALUE_BINS + 1)
    total = int(summary.p_counts.sum())
    figure = _figure(9.5, 3.2)
    axes = figure.subplots()
    axes.stairs(summary.p_counts, edges, fill=True, alpha=0.6, color=BATCH_COLOUR, label=unit)
    axes.axhline(
        total / P_VALUE_BINS,
        color="black",
        linestyle="--",
        linewidth=1,
        label=f"expected if every {unit[:-1]} were normal (uniform)",
    )
    axes.set_xlim(0, 1)
    axes.set_xlabel(f"conformal p-value (small: stranger than the calibration {unit})")
    axes.set_ylabel(f"{unit} per bin of {1 / P_VALUE_BINS:g}")
    _legend_above(axes)
    axes.grid(alpha=0.3)
    return figure


def features_figure(summary: ScoreSummary, count: int = 15):
    """The columns that make flagged rows unlikely: each column's share of the excess
    negative log-likelihood, averaged over the flagged rows (top columns of each row)."""
    shares = summary.feature_shares.most_common(count)
    names = [name for name, _ in shares][::-1]
    values = [share / max(summary.n_flagged, 1) for _, share in shares][::-1]
    figure = _figure(9.5, 0.9 + 0.3 * len(names))
    axes = figure.subplots()
    axes.barh(np.arange(len(names)), values, color=THRESHOLD_COLOUR)
    axes.set_yticks(np.arange(len(names)), [_literal(n) for n in names], fontsize=9)
    axes.set_xlim(0, 1)
    axes.set_xlabel(
        f"average share of a flagged row's excess -log-likelihood ({summary.n_flagged:,} rows)"
    )
    axes.grid(axis="x", alpha=0.3)
    return figure


def labels_figure(y_true, anomaly_scores, unit: str = "rows"):
    """ROC and precision-recall curves of the anomaly scores against known labels."""
    from sklearn.metrics import (
        average_precision_score,
        precision_recall_curve,
        roc_auc_score,
        roc_curve,
    )

    figure = _figure(9.0, 4.0)
    roc, pr = figure.subplots(1, 2)
    false_positive, true_positive, _ = roc_curve(y_true, anomaly_scores)
    auroc = roc_auc_score(y_true, anomaly_scores)
    roc.plot(false_positive, true_positive, color=BATCH_COLOUR, label=f"AUROC = {auroc:.3f}")
    roc.plot([0, 1], [0, 1], color="grey", linestyle=":", label="chance")
    roc.set_xlabel(f"false-positive rate (normal {unit} flagged)")
    roc.set_ylabel("true-positive rate (anomalies flagged)")
    roc.set_title("ROC", fontsize=10)
    precision, recall, _ = precision_recall_curve(y_true, anomaly_scores)
    ap = average_precision_score(y_true, anomaly_scores)
    pr.plot(recall, precision, color=BATCH_COLOUR, label=f"average precision = {ap:.3f}")
    pr.axhline(np.mean(y_true), color="grey", linestyle=":", label="chance (share of anomalies)")
    pr.set_xlabel("recall (anomalies flagged)")
    pr.set_ylabel(f"precision (flagged {unit} that are anomalies)")
    pr.set_title("precision-recall", fontsize=10)
    for axes in (roc, pr):  # a margin, so that a curve along an edge is not hidden by it
        axes.set_xlim(-0.02, 1.02)
        axes.set_ylim(-0.02, 1.02)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8, loc="lower right" if axes is roc else "lower left")
    return figure, auroc, ap


def gallery_figure(items, scale: tuple[float, float]):
    """Images (top row) above their heat maps (bottom row), each captioned with its name,
    anomaly score and p-value; the maps share the colour ``scale`` (low, high)."""
    figure = _figure(1.7 * max(len(items), 3) + 0.8, 4.0)
    grid = figure.subplots(2, max(len(items), 3), squeeze=False)
    for axes in grid.ravel():
        axes.set_axis_off()
    for column, (name, score, p_value, image, anomaly) in enumerate(items):
        picture = image[..., 0] if image.shape[-1] == 1 else image[..., :3]
        grid[0, column].imshow(picture, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        short = name.rsplit("/", 1)[-1]
        short = short if len(short) <= 22 else short[:10] + "…" + short[-11:]
        p_text = "" if math.isnan(p_value) else f"\np = {p_value:.3g}"
        title = f"{_literal(short)}\nscore {score:.4g}{p_text}"
        grid[0, column].set_title(title, fontsize=7)
        shown = grid[1, column].imshow(
            anomaly, cmap="inferno", vmin=scale[0], vmax=scale[1], interpolation="nearest"
        )
    grid[0, 0].text(-0.1, 0.5, "image", transform=grid[0, 0].transAxes, rotation=90,
                    ha="right", va="center", fontsize=8)  # fmt: skip
    grid[1, 0].text(-0.1, 0.5, "heat map\n-E log p(xᵢⱼ|z)", transform=grid[1, 0].transAxes,
                    rotation=90, ha="right", va="center", fontsize=8)  # fmt: skip
    if items:
        bar = figure.colorbar(shown, ax=grid[1, :], shrink=0.9, pad=0.01)
        bar.set_label("nats per pixel", fontsize=7)
        bar.ax.tick_params(labelsize=7)
    return figure


# ----------------------------------------------------------------------------- the page

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto;
       max-width: 1000px; padding: 1em 2em; color: #222; background: #fff; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { font-size: 1.2em; margin-top: 1.6em;
     border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
.meta { color: #666; font-size: 0.9em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; height: auto; display: block; margin: 0.5em 0; }
.warning { background: #fff4d6; border: 1px solid #e0b84c; padding: 0.6em 0.9em; }
.note { color: #555; font-size: 0.9em; }
.scroll { max-height: 36em; overflow-y: auto; border: 1px solid #ddd; }
"""


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _table(header, rows, numeric=()) -> str:
    """A table; ``header`` None: rows of (name, value), the names as row headings."""
    if header is None:
        body = "".join(f"<tr><th>{_e(name)}</th><td>{_e(value)}</td></tr>" for name, value in rows)
        return f"<table><tbody>{body}</tbody></table>"
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{_e(cell)}</td>' if j in numeric else f"<td>{_e(cell)}</td>"
            for j, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _img(figure, alt: str) -> str:
    return f'<img src="{figure_uri(figure)}" alt="{_e(alt)}">'


def _page(title: str, subtitle: str, sections: list[tuple[str, str]]) -> str:
    body = "".join(f"<section><h2>{_e(name)}</h2>{content}</section>" for name, content in sections)
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>"
        f'<h1>{_e(title)}</h1><p class="meta">{_e(subtitle)} · written {generated} by '
        f"vae-anomaly</p>{body}</body></html>\n"
    )


def _p_text(value) -> str:
    return (
        "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4g}"
    )


def _threshold_text(detector) -> str:
    threshold = float(-detector.offset_)
    if getattr(detector, "calibrated_", False):
        n = len(detector.calibration_scores_)
        return (
            f"<p>Threshold: anomaly score {threshold:.6g}. It certifies a false-alarm rate of "
            f"at most {detector.fpr_:g} on normal rows (split-conformal, {n:,} held-out "
            "rows): a normal row is flagged with probability at most that.</p>"
        )
    reason = getattr(detector, "calibration_reason_", "") or "no calibration rows"
    return (
        f'<p class="warning">Threshold: anomaly score {threshold:.6g}, <b>not certified</b>: '
        f"{_e(reason.rstrip('.'))}. p-values are not available.</p>"
    )


def _sample_rows(X, max_rows: int, random_state: int):
    n = len(X)
    if n <= max_rows:
        return X
    rows = np.sort(np.random.default_rng(random_state).choice(n, max_rows, replace=False))
    return X.iloc[rows] if hasattr(X, "iloc") else np.asarray(X)[rows]


def fit_report(
    detector,
    X=None,
    *,
    title: str = "vae-anomaly fit report",
    details: dict | None = None,
    columns: list[dict] | None = None,
    feature_names=None,
    max_rows: int = MAX_FIT_ROWS,
    random_state: int = 0,
) -> str:
    """The HTML page of a fitted detector.

    Parameters
    ----------
    detector : fitted VAEAnomalyDetector
    X : array-like of shape (n_samples, n_features), optional
        Training rows (at most ``max_rows`` of them, drawn at random, are scored) for the
        column contributions and the latent map; without X those are left out.
    details : dict, optional
        Facts to list first (e.g. the fit job's report: inputs, rows used and rejected).
    columns : list of dict, optional
        Column roles: ``column``, ``role``, ``reason`` (and ``levels``), e.g.
        ``TabularSchema.report()``.
    feature_names : sequence of str, optional
        Names of the columns of ``score_features`` (for the contributions); without them
        (and for images) the contributions are left out.

    Returns
    -------
    html : str
        One self-contained page: training curves, the calibration histogram with the
        threshold, the column roles, mean contributions
        mean_i(-E_q[log p(x_ij|z)]) per column j, and the latent map.
    """
    require_matplotlib("the HTML report")
    detector._check_threshold_scoring()  # the threshold drawn is a score of that estimator
    best, stopped = best_epoch(detector)
    n_epochs = int(detector.n_epochs_)
    sections = []
    facts = [
        (key, value)
        for key, value in (details or {}).items()
        if not isinstance(value, (dict, list)) or key == "inputs"
    ]
    facts += [
        ("epochs run", n_epochs),
        ("latent dimensions", getattr(detector, "latent_dim_", "")),
        ("score", f"{SCORE_NAMES.get(detector.score_method, detector.score_method)} "
                  f"({detector.score_method})"),
    ]  # fmt: skip
    rows = [(k.replace("_", " "), _fmt(v)) for k, v in facts]
    sections.append(("The model", _table(None, rows)))

    if best is None:
        training = "<p>No validation rows: every epoch ran; the last weights were kept.</p>"
    elif stopped:
        training = (
            f"<p>Early stopping ended training after {n_epochs} epochs: the validation loss "
            f"had not improved for {detector.n_iter_no_change} epochs. The weights of epoch "
            f"{best + 1}, the lowest validation loss, were kept.</p>"
        )
    else:
        training = (
            f"<p>Training ran all {n_epochs} epochs without early stopping; the weights of "
            f"epoch {best + 1}, the lowest validation loss, were kept. If the curves are "
            "still falling, more epochs may help.</p>"
        )
    training += _img(training_figure(detector), "training curves")
    training += (
        '<p class="note">Losses are means per training row, on the scaled data (without '
        "the scaling's log-Jacobian), so they differ from the anomaly scores by a constant."
        "</p>"
    )
    sections.append(("Training", training))

    sample = scores = None
    if X is not None:
        sample = _sample_rows(X, max_rows, random_state)
        scores = -detector.score_samples(sample)
    calibration = _threshold_text(detector) + _img(
        calibration_figure(detector, scores), "calibration scores and threshold"
    )
    sections.append(("Calibration and threshold", calibration))

    if columns:
        rows = [(c["column"], c["role"], c.get("levels", ""), c.get("reason", "")) for c in columns]
        sections.append(("Columns", _table(["column", "role", "levels", "why"], rows)))
    if sample is not None and feature_names is not None:
        mean_nll = -np.mean(detector.score_features(sample), axis=0)
        sections.append(
            (
                "What each column costs",
                f"<p>Mean over {len(sample):,} training rows of each column's term "
                "-E_q[log p(x_j|z)] in the anomaly score (a categorical column's one-hot "
                "group counts as one column). Columns with large terms dominate the "
                "score.</p>" + _img(contributions_figure(list(feature_names), mean_nll), "columns"),
            )
        )
    if sample is not None:
        sections.append(
            (
                "Latent space",
                f"<p>The posterior mean of {len(sample):,} training rows (<code>transform</code>), "
                "coloured by anomaly score. Rows far from the bulk are the ones the model "
                "finds unusual.</p>"
                + _img(latent_figure(detector, detector.transform(sample), scores), "latent"),
            )
        )
    return _page(title, f"{n_epochs} epochs", sections)


def _fmt(value) -> str:
    if isinstance(value, list):
        return ", ".join(map(str, value))
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def score_report(
    detector,
    summary: ScoreSummary,
    accounting: dict,
    *,
    unit: str = "rows",
    title: str = "vae-anomaly score report",
    details: dict | None = None,
    labels=None,
    gallery: ImageGallery | None = None,
) -> str:
    """The HTML page of a scoring run.

    Parameters
    ----------
    detector : fitted VAEAnomalyDetector
    summary : ScoreSummary
        The run's scores, p-values and flagged rows, accumulated as it went.
    accounting : dict
        ``read``, ``scored``, ``rejected``, ``flagged`` and ``rejected_by_reason``
        (``{reason: count}``): read = scored + rejected.
    unit : str
        What was scored: "rows" or "images".
    details : dict, optional
        Facts to list first (inputs, outputs, seconds).
    labels : tuple (y_true, anomaly_scores, flagged) of arrays, optional
        The known answers of the labelled rows (true for an anomaly), their anomaly
        scores and whether they were flagged: ROC and precision-recall curves (AUROC,
        average precision) and the confusion table at the threshold.
    gallery : ImageGallery, optional
        For images: the highest-scoring images and those nearest the threshold.

    Returns
    -------
    html : str
    """
    require_matplotlib()
    detector._check_threshold_scoring()  # the threshold drawn is a score of that estimator
    single = unit[:-1]
    sections = []
    read, scored, rejected = accounting["read"], accounting["scored"], accounting["rejected"]
    if read != scored + rejected:
        raise ValueError(f"accounting: read {read} != scored {scored} + rejected {rejected}.")
    counts = [
        (f"{unit} read", read),
        (f"{unit} scored", scored),
        (f"{unit} rejected", rejected),
        (f"{unit} flagged (anomaly score above the threshold)", accounting["flagged"]),
    ]
    content = _table([unit, "count"], [(k, f"{v:,}") for k, v in counts], numeric=(1,))
    content += f"<p>{read:,} read = {scored:,} scored + {rejected:,} rejected.</p>"
    reasons = sorted(accounting.get("rejected_by_reason", {}).items(), key=lambda kv: -kv[1])
    if reasons:
        content += "<p>Rejected, by reason:</p>" + _table(
            ["reason", f"{unit}"], [(r, f"{n:,}") for r, n in reasons], numeric=(1,)
        )
    facts = [(k, _fmt(v)) for k, v in (details or {}).items() if v is not None]
    if facts:
        content += _table(None, facts)
    sections.append(("This run", content))

    if summary.scores.total:
        sections.append(
            (
                "Scores against the threshold",
                _threshold_text(detector)
                + _img(scores_figure(detector, summary, unit), "anomaly scores")
                + (
                    f'<p class="note">Each histogram is a share of its own {unit}, so the two '
                    "shapes compare whatever the sizes. If this run's normal "
                    f"{unit} look like the calibration {unit}, the shapes agree left of "
                    "the threshold.</p>"
                ),
            )
        )
    if summary.p_counts.sum():
        sections.append(
            (
                "p-values",
                "<p>For normal " + unit + " the conformal p-values are uniform: the bars "
                "stay near the dashed line. A pile-up at the left is what the anomalies "
                "(and a drift away from the training data) look like.</p>"
                + _img(p_values_figure(summary, unit), "p-values"),
            )
        )
    calibration = getattr(detector, "calibration_scores_", None)
    content = _flagged_section(summary, unit, single, gallery)
    if calibration is not None and summary.n_flagged:
        content += (
            f'<p class="note">The smallest p-value {len(calibration):,} calibration {unit} '
            f"can give is 1/{len(calibration) + 1:,} = {1 / (len(calibration) + 1):.4g}: every "
            f"{single} scoring above all of them gets it.</p>"
        )
    sections.append(("Flagged " + unit, content))
    if labels is not None:
        sections.append(("Against the labels", _labels_section(detector, labels, unit)))
    if gallery is not None:
        content = ""
        for name, caption in (
            ("below", f"The highest-scoring {unit} at or below the threshold (not flagged)"),
            ("above", f"The lowest-scoring {unit} above the threshold (flagged)"),
        ):
            items = gallery.images(name)
            content += f"<p>{caption}:</p>" + (
                _img(gallery_figure(items, gallery.scale()), caption) if items else "<p>none</p>"
            )
        sections.append(("Near the threshold", content))
    return _page(title, f"{read:,} {unit} read, {accounting['flagged']:,} flagged", sections)


def _flagged_section(summary: ScoreSummary, unit: str, single: str, gallery) -> str:
    flagged = summary.flagged
    if not summary.n_flagged:
        return f"<p>No {single} was flagged.</p>"
    content = ""
    # The highest anomaly scores of the run, those above the threshold: flagged only.
    shown = [] if gallery is None else gallery.flagged()
    if shown:
        content += (
            f"<p>The {len(shown)} highest-scoring of the {summary.n_flagged:,} flagged "
            f"{unit}, with their heat maps (bright: the pixels the model finds least likely; "
            "every heat map of this page has the same colour scale):</p>"
            + _img(gallery_figure(shown, gallery.scale()), "most anomalous")
        )
    if summary.feature_shares:
        content += (
            "<p>The columns that make the flagged rows unlikely: each flagged row's "
            "excess -log-likelihood is split among its top columns; the bars average these "
            "shares over the flagged rows.</p>" + _img(features_figure(summary), "columns")
        )
    if len(flagged) < summary.n_flagged:
        content += (
            f'<p class="note">Showing the {len(flagged):,} highest-scoring of '
            f"{summary.n_flagged:,} flagged {unit}; every one is in the output file (and "
            "the alerts file).</p>"
        )
    else:
        content += f"<p>All {summary.n_flagged:,} flagged {unit}, highest score first.</p>"
    rows = [
        (
            r["row_id"],
            f"{r['anomaly_score']:.6g}",
            _p_text(r.get("p_value")),
            "; ".join(
                f"{f['feature']} ({100 * f['share']:.0f}%)" for f in r.get("top_features", ())
            ),
        )
        for r in flagged
    ]
    header = ["id", "anomaly score", "p-value"] + (
        ["top columns (share)"] if summary.feature_shares else []
    )
    rows = [row[: len(header)] for row in rows]
    return content + f'<div class="scroll">{_table(header, rows, numeric=(1, 2))}</div>'


def _labels_section(detector, labels, unit: str) -> str:
    y_true, anomaly_scores, flagged = (np.asarray(a) for a in labels)
    y_true, flagged = y_true.astype(bool), flagged.astype(bool)
    content = (
        f"<p>{len(y_true):,} scored {unit} have a label; {int(y_true.sum()):,} are anomalies.</p>"
    )
    if 0 < y_true.sum() < len(y_true):
        figure, auroc, ap = labels_figure(y_true, anomaly_scores, unit)
        content += (
            f"<p>AUROC {auroc:.3f} (the chance that an anomaly scores above a normal "
            f"{unit[:-1]}); average precision {ap:.3f}.</p>" + _img(figure, "ROC and PR")
        )
    else:
        content += "<p>ROC and precision-recall need both anomalies and normal ones.</p>"
    threshold = float(-detector.offset_)
    confusion = [
        ("anomaly", f"{int((y_true & flagged).sum()):,}", f"{int((y_true & ~flagged).sum()):,}"),
        ("normal", f"{int((~y_true & flagged).sum()):,}", f"{int((~y_true & ~flagged).sum()):,}"),
    ]
    content += f"<p>At the threshold ({threshold:.6g}):</p>" + _table(
        ["label", "flagged", "not flagged"], confusion, numeric=(1, 2)
    )
    return content
