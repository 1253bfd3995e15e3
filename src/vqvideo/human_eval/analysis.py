"""Analyse the raters' judgements against the export's key: the numbers of the paper's Table 1.

Inputs: ``key.csv`` (``pair_id,left_model,right_model[,clip]``, written by ``export-pairs``), the page's
``pairs.csv`` beside it (``page/pairs.csv``: which media ids a pair shows) and one or more ``ratings.csv``
files (``rater_id,pair_id,choice``, choice in left|right|same) downloaded from the page.

Where ratings come from: the files given (``--ratings``, anywhere: they are the user's own arguments), else
every ``*.csv`` of the *ratings folder* ``<export folder>/<human_eval.ratings_dir>`` (``results/human_eval/ratings/``
by default; the export folder holds ``key.csv``). Ratings meant for another export are caught by their pair ids,
which the key does not know.

Nothing is dropped silently: every problem is reported as ``file:line: reason`` and the whole input is
refused — unknown pair ids, choices outside the three values, duplicate (rater, pair) rows (refused rather
than "last wins": the page writes each pair once per rater, so a duplicate means a file was collected twice
or a rater started over, which a person must resolve), missing or unexpected columns, empty files, rows with
and the wrong number of fields.

Statistics. Shares of "prefer A", "prefer B" and "indifferent" among all judgements with 95% intervals:
``ci95`` is the exact Clopper-Pearson binomial interval — chosen as the headline because it is exact at any
size, deterministic, and defined at 0 or n — which treats judgements as independent; ``ci95_bootstrap``
resamples raters and pairs (two-way, with replacement) and so also covers raters and videos that differ,
which the binomial interval ignores: when the two disagree, the bootstrap is the honest one. The sign test
of A vs B is the exact two-sided binomial test on the judgements that preferred one side (indifferent ones
excluded, as in any sign test).
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np

from vqvideo.errors import UserError

RATING_COLUMNS = ("rater_id", "pair_id", "choice")
KEY_COLUMNS = ("pair_id", "left_model", "right_model")
CHOICES = ("left", "right", "same")
OUTCOMES = ("prefer_a", "prefer_b", "indifferent")


class RatingsError(UserError, ValueError):
    """Input refused; the message lists every problem as ``file:line: reason``."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        shown = problems[:50] + ([f"... and {len(problems) - 50} more"] if len(problems) > 50 else [])
        super().__init__("refused:\n  " + "\n  ".join(shown))


# ------------------------------------------------------------------------------------------ reading
def _read_csv(path: Path, required: tuple[str, ...], exact: bool, problems: list[str]) -> list[tuple[int, dict]]:
    """Rows of a CSV as (line number, {column: value}); header problems go to ``problems``."""
    try:
        text = path.read_text(encoding="utf-8-sig")   # -sig: a file re-saved by a spreadsheet may start with a BOM
    except FileNotFoundError:
        problems.append(f"{path}: file not found")
        return []
    except (OSError, UnicodeDecodeError) as e:
        problems.append(f"{path}: cannot read ({e})")
        return []
    if not text.strip():
        problems.append(f"{path}:1: empty file")
        return []
    reader = csv.reader(text.splitlines(keepends=True))
    header = next(reader)
    missing = [c for c in required if c not in header]
    extra = [c for c in header if c not in required] if exact else []
    dupes = sorted({c for c in header if header.count(c) > 1})
    if missing or extra or dupes:
        why = "; ".join(filter(None, [missing and f"missing column(s) {', '.join(missing)}",
                                      extra and f"unexpected column(s) {', '.join(extra)}",
                                      dupes and f"repeated column(s) {', '.join(dupes)}"]))
        problems.append(f"{path}:1: {why} (expected {','.join(required)})")
        return []
    rows = []
    for fields in reader:
        line = reader.line_num
        if not fields:  # a blank line: harmless, nothing to drop
            continue
        if len(fields) != len(header):
            problems.append(f"{path}:{line}: expected {len(header)} fields, got {len(fields)}")
            continue
        rows.append((line, dict(zip(header, fields))))
    if not rows and not any(p.startswith(f"{path}:") for p in problems):
        problems.append(f"{path}:2: empty file (a header but no rows)")
    return rows


def read_key(key_path: Path, name_a: str, name_b: str) -> dict[str, tuple[str, str]]:
    """``{pair_id: (left_model, right_model)}``; both models must be ``name_a`` and ``name_b``."""
    problems: list[str] = []
    key: dict[str, tuple[str, str]] = {}
    for line, row in _read_csv(key_path, KEY_COLUMNS, exact=False, problems=problems):
        pid, left, right = row["pair_id"], row["left_model"], row["right_model"]
        if pid in key:
            problems.append(f"{key_path}:{line}: pair id '{pid}' appears twice")
        elif {left, right} != {name_a, name_b}:
            problems.append(f"{key_path}:{line}: models '{left}' and '{right}' are not '{name_a}' and '{name_b}' "
                            f"(set --name-a/--name-b as at export)")
        else:
            key[pid] = (left, right)
    if problems:
        raise RatingsError(problems)
    return key


def read_pair_videos(pairs_path: Path, key: dict) -> dict[str, tuple[str, str]] | None:
    """``{pair_id: (left_video, right_video)}`` from the page's pairs.csv, or None when it is absent."""
    if not pairs_path.exists():
        return None
    problems: list[str] = []
    videos = {}
    for line, row in _read_csv(pairs_path, ("pair_id", "left_video", "right_video"), exact=True, problems=problems):
        if row["pair_id"] not in key:
            problems.append(f"{pairs_path}:{line}: pair id '{row['pair_id']}' is not in the key")
        videos[row["pair_id"]] = (row["left_video"], row["right_video"])
    if not problems and set(videos) != set(key):
        problems.append(f"{pairs_path}: pairs differ from the key's ({len(videos)} vs {len(key)})")
    if problems:
        raise RatingsError(problems)
    return videos


def ratings_folder(key_path: Path, ratings_dir: str) -> Path:
    """``<export folder>/<ratings_dir>``, the export folder being the one that holds key.csv."""
    return (Path(key_path).resolve().parent / ratings_dir).resolve()


def read_ratings(paths: list[Path], key: dict) -> list[dict]:
    """All judgements ``{rater_id, pair_id, choice, file, line}``; refuses the lot on any problem."""
    problems: list[str] = []
    seen: dict[tuple[str, str], str] = {}
    out = []
    if not paths:
        problems.append("no ratings files given")
    for path in paths:
        path = Path(path)
        for line, row in _read_csv(path, RATING_COLUMNS, exact=True, problems=problems):
            where = f"{path}:{line}"
            rater, pid, choice = row["rater_id"], row["pair_id"], row["choice"]
            bad = []
            if not rater.strip():
                bad.append("empty rater_id")
            if pid not in key:
                bad.append(f"unknown pair id '{pid}' (not in key.csv)")
            if choice not in CHOICES:
                bad.append(f"choice '{choice}' is not one of {', '.join(CHOICES)}")
            if (rater, pid) in seen:
                bad.append(f"duplicate rating of pair '{pid}' by rater '{rater}' (first at {seen[(rater, pid)]}); "
                           "duplicates are refused, remove one")
            if bad:
                problems.extend(f"{where}: {b}" for b in bad)
                continue
            seen[(rater, pid)] = where
            out.append({"rater_id": rater, "pair_id": pid, "choice": choice, "file": str(path), "line": line})
    if problems:
        raise RatingsError(problems)
    return out


# ------------------------------------------------------------------------------------------ statistics
def clopper_pearson(k: int, n: int, level: float = 0.95) -> list[float] | None:
    """Exact binomial interval for k successes in n trials."""
    from scipy.stats import binomtest

    if n == 0:
        return None
    ci = binomtest(k, n).proportion_ci(confidence_level=level, method="exact")
    return [float(ci.low), float(ci.high)]


def bootstrap_ci(counts: np.ndarray, replicates: int, seed: int, level: float = 0.95) -> list[list[float]] | None:
    """Two-way bootstrap of the three shares, resampling raters and pairs with replacement.

    ``counts``: ``[R, P, 3]`` judgements of rater r on pair p per outcome (0 or 1). A replicate weights
    rater r by how often it was drawn (w_r) and pair p likewise (v_p): outcome counts are
    ``sum_rp w_r v_p counts[r, p]``. Returns ``[[low, high]] * 3`` (percentile intervals).
    """
    n_r, n_p, _ = counts.shape
    if replicates == 0 or counts.sum() == 0:
        return None
    rng = np.random.default_rng(seed)
    w = rng.multinomial(n_r, np.full(n_r, 1 / n_r), size=replicates).astype(float)
    v = rng.multinomial(n_p, np.full(n_p, 1 / n_p), size=replicates).astype(float)
    totals = np.einsum("br,rpk,bp->bk", w, counts.astype(float), v)   # [B, 3]
    n = totals.sum(1, keepdims=True)
    shares = np.where(n > 0, totals / np.maximum(n, 1), np.nan)
    alpha = (1 - level) / 2 * 100
    lo, hi = np.nanpercentile(shares, [alpha, 100 - alpha], axis=0)
    return [[float(a), float(b)] for a, b in zip(lo, hi)]


def _shares(counter: Counter) -> dict:
    n = sum(counter[o] for o in OUTCOMES)
    return {"n": n, **{o: counter[o] for o in OUTCOMES},
            **{f"share_{o}": (counter[o] / n if n else None) for o in OUTCOMES}}


def analyze(key_path: str | Path, ratings_paths: list[str | Path], name_a: str = "ours", name_b: str = "copy_last",
            min_judgements: int = 13, bootstrap: int = 2000, seed: int = 0) -> dict:
    """Join ratings with the key and compute Table 1 with intervals, a sign test and breakdowns."""
    from scipy.stats import binomtest

    key_path = Path(key_path)
    key = read_key(key_path, name_a, name_b)
    videos = read_pair_videos(key_path.parent / "page" / "pairs.csv", key)
    judgements = read_ratings([Path(p) for p in ratings_paths], key)

    def outcome(j):
        if j["choice"] == "same":
            return "indifferent"
        left, right = key[j["pair_id"]]
        return "prefer_a" if (left if j["choice"] == "left" else right) == name_a else "prefer_b"

    total = Counter(outcome(j) for j in judgements)
    n = sum(total.values())
    raters = sorted({j["rater_id"] for j in judgements})
    pair_ids = list(key)
    counts = np.zeros((len(raters), len(pair_ids), 3), np.int64)
    r_index, p_index = {r: i for i, r in enumerate(raters)}, {p: i for i, p in enumerate(pair_ids)}
    for j in judgements:
        counts[r_index[j["rater_id"]], p_index[j["pair_id"]], OUTCOMES.index(outcome(j))] += 1
    boot = bootstrap_ci(counts, bootstrap, seed)

    decided = total["prefer_a"] + total["prefer_b"]
    sign = binomtest(total["prefer_a"], decided, 0.5, alternative="two-sided").pvalue if decided else None

    per_rater = []
    for r in raters:
        per_rater.append({"rater_id": r, **_shares(Counter(outcome(j) for j in judgements if j["rater_id"] == r))})

    per_pair = Counter(j["pair_id"] for j in judgements)
    per_video = []
    for pid in pair_ids:
        sides = videos[pid] if videos else (f"{pid}:left", f"{pid}:right")
        for side, vid, model in (("left", sides[0], key[pid][0]), ("right", sides[1], key[pid][1])):
            per_video.append({"video": vid, "pair_id": pid, "side": side, "model": model,
                              "judgements": per_pair[pid], "below_min": per_pair[pid] < min_judgements})

    return {
        "models": {"a": name_a, "b": name_b},
        "n_judgements": n,
        "n_raters": len(raters),
        "n_pairs": len(pair_ids),
        "n_pairs_rated": len(per_pair),
        "counts": {o: total[o] for o in OUTCOMES},
        "shares": {o: total[o] / n for o in OUTCOMES},
        "table1_percent": {o: round(100 * total[o] / n, 1) for o in OUTCOMES},
        "ci95": {o: clopper_pearson(total[o], n) for o in OUTCOMES},
        "ci95_method": "exact Clopper-Pearson binomial interval over all judgements (treats them as independent)",
        "ci95_bootstrap": dict(zip(OUTCOMES, boot)) if boot else None,
        "ci95_bootstrap_method": f"two-way percentile bootstrap over raters and pairs, {bootstrap} replicates, seed {seed}",
        "sign_test": {"prefer_a": total["prefer_a"], "prefer_b": total["prefer_b"], "n": decided,
                      "p_value": sign, "test": "exact two-sided binomial (p=0.5), indifferent judgements excluded"},
        "per_rater": per_rater,
        "min_judgements": min_judgements,
        "per_video": per_video,
        "videos_below_min": sorted({v["video"] for v in per_video if v["below_min"]}),
        "ratings_files": sorted({j["file"] for j in judgements}),
        "key": str(key_path),
    }


# ------------------------------------------------------------------------------------------ outputs
def plot_chart(result: dict, path: str | Path) -> Path:
    """Bar chart of the three shares with their exact 95% intervals, counts on the bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    a, b = result["models"]["a"], result["models"]["b"]
    labels = [f"prefer {a}", f"prefer {b}", "indifferent"]
    shares = [100 * result["shares"][o] for o in OUTCOMES]
    lo = [100 * result["shares"][o] - 100 * result["ci95"][o][0] for o in OUTCOMES]
    hi = [100 * result["ci95"][o][1] - 100 * result["shares"][o] for o in OUTCOMES]
    fig, ax = plt.subplots(figsize=(5.5, 3.8), dpi=120)
    bars = ax.bar(labels, shares, yerr=[lo, hi], capsize=6, color=["#3b7dd8", "#d8813b", "#9a9a9a"])
    for bar, o, s, h in zip(bars, OUTCOMES, shares, hi):
        ax.text(bar.get_x() + bar.get_width() / 2, s + h + 1.5, f"{s:.1f}% ({result['counts'][o]})",
                ha="center", va="bottom", fontsize=9)
    ax.set_ylabel("share of judgements (%), exact 95% CI")
    ax.set_ylim(0, 110)
    p = result["sign_test"]["p_value"]
    ax.set_title(f"{result['n_judgements']} judgements, {result['n_raters']} raters"
                 + (f"; sign test p = {p:.2g}" if p is not None else ""), fontsize=10)
    fig.tight_layout()
    from vqvideo.runtime.files import atomic_path

    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    return Path(path)


def analyze_ratings(key: str | Path, ratings: list[str | Path], json_out: str | Path, chart: str | Path | None = None,
                    **kwargs) -> dict:
    """Analyse, write the JSON (and the chart), print the Table 1 line; return the result."""
    from vqvideo.runtime.files import atomic_write_text

    result = analyze(key, ratings, **kwargs)
    atomic_write_text(json_out, json.dumps(result, indent=2) + "\n")
    if chart:
        plot_chart(result, chart)
    t = result["table1_percent"]
    print(f"prefer {result['models']['a']}: {t['prefer_a']}%  prefer {result['models']['b']}: {t['prefer_b']}%  "
          f"indifferent: {t['indifferent']}%  ({result['n_judgements']} judgements, {result['n_raters']} raters, "
          f"sign test p = {result['sign_test']['p_value']})")
    return result
