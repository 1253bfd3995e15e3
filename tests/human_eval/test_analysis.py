"""analyze-ratings: Table 1 from constructed ratings with known answers, and every bad input refused with
file, line and reason."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binomtest

from vqvideo.cli import main
from vqvideo.human_eval.analysis import RatingsError, analyze, bootstrap_ci, clopper_pearson


def make_export(root: Path, n_pairs: int, a: str = "ours", b: str = "copy_last") -> dict[str, tuple[str, str]]:
    """key.csv and page/pairs.csv as export-pairs writes them; A is on the left in odd pairs."""
    key = {f"p{i:03d}": ((a, b) if i % 2 else (b, a)) for i in range(1, n_pairs + 1)}
    (root / "page").mkdir(parents=True, exist_ok=True)
    (root / "key.csv").write_text("pair_id,left_model,right_model,clip\n"
                                  + "".join(f"{p},{l},{r},{i}\n" for i, (p, (l, r)) in enumerate(key.items())))
    (root / "page" / "pairs.csv").write_text("pair_id,left_video,right_video\n"
                                             + "".join(f"{p},{p}L,{p}R\n" for p in key))
    (root / "ratings").mkdir(exist_ok=True)
    return key


def choice_for(outcome: str, sides: tuple[str, str], a: str = "ours") -> str:
    if outcome == "same":
        return "same"
    winner = a if outcome == "a" else next(m for m in sides if m != a)
    return "left" if sides[0] == winner else "right"


def write_ratings(path: Path, rows: list[tuple[str, str, str]], header: str = "rater_id,pair_id,choice") -> Path:
    path.write_text(header + "\n" + "".join(",".join(r) + "\n" for r in rows))
    return path


def test_paper_split_266_52_87(tmp_path):
    """15 raters x 27 pairs = 405 judgements split 266 / 52 / 87 give the paper's 65.7 / 12.8 / 21.5 %."""
    key = make_export(tmp_path, 27)
    outcomes = ["a"] * 266 + ["b"] * 52 + ["same"] * 87
    np.random.default_rng(0).shuffle(outcomes)
    files, k = [], 0
    for r in range(15):
        rows = []
        for pid, sides in key.items():
            rows.append((f"rater{r:02d}", pid, choice_for(outcomes[k], sides)))
            k += 1
        files.append(write_ratings(tmp_path / "ratings" / f"rater{r:02d}.csv", rows))
    res = analyze(tmp_path / "key.csv", files, bootstrap=500)
    assert res["n_judgements"] == 405 and res["n_raters"] == 15 and res["n_pairs"] == 27
    assert res["counts"] == {"prefer_a": 266, "prefer_b": 52, "indifferent": 87}
    assert res["table1_percent"] == {"prefer_a": 65.7, "prefer_b": 12.8, "indifferent": 21.5}
    assert res["shares"]["prefer_a"] == pytest.approx(266 / 405)
    for o in ("prefer_a", "prefer_b", "indifferent"):
        lo, hi = res["ci95"][o]
        assert lo < res["shares"][o] < hi
        blo, bhi = res["ci95_bootstrap"][o]
        assert blo <= res["shares"][o] <= bhi
    assert res["sign_test"]["n"] == 318
    assert res["sign_test"]["p_value"] == pytest.approx(binomtest(266, 318).pvalue) and res["sign_test"]["p_value"] < 1e-30
    assert all(v["judgements"] == 15 and not v["below_min"] for v in res["per_video"])
    assert len(res["per_video"]) == 54 and res["videos_below_min"] == []
    assert sum(r["n"] for r in res["per_rater"]) == 405


def test_small_set_by_hand(tmp_path):
    """Two raters, three pairs: every number computed by hand."""
    make_export(tmp_path, 3)   # p001: ours left; p002: copy_last left; p003: ours left
    f1 = write_ratings(tmp_path / "ratings" / "r1.csv", [("r1", "p001", "left"),    # ours
                                                         ("r1", "p002", "left")])   # copy_last
    f2 = write_ratings(tmp_path / "ratings" / "r2.csv", [("r2", "p001", "right"),   # copy_last
                                                         ("r2", "p002", "right")])  # ours
    res = analyze(tmp_path / "key.csv", [f1, f2], min_judgements=2, bootstrap=0)
    assert res["counts"] == {"prefer_a": 2, "prefer_b": 2, "indifferent": 0}
    assert res["sign_test"]["p_value"] == pytest.approx(1.0)
    r1 = next(r for r in res["per_rater"] if r["rater_id"] == "r1")
    assert (r1["n"], r1["prefer_a"], r1["prefer_b"], r1["share_prefer_a"]) == (2, 1, 1, 0.5)
    per = {v["video"]: v for v in res["per_video"]}
    assert per["p001L"]["model"] == "ours" and per["p002L"]["model"] == "copy_last"
    assert per["p001L"]["judgements"] == 2 and not per["p001L"]["below_min"]
    assert per["p003R"]["judgements"] == 0 and per["p003R"]["below_min"]   # never rated: listed and flagged
    assert res["videos_below_min"] == ["p003L", "p003R"]
    assert res["ci95_bootstrap"] is None and res["n_pairs_rated"] == 2


def test_clopper_pearson_closed_forms():
    # at k = 0 and k = n the exact interval has a closed form: 1 - (alpha/2)^(1/n)
    assert clopper_pearson(0, 10) == pytest.approx([0.0, 1 - 0.025 ** 0.1])
    assert clopper_pearson(10, 10) == pytest.approx([0.025 ** 0.1, 1.0])
    assert clopper_pearson(0, 0) is None


def test_bootstrap_degenerate_and_seeded():
    counts = np.zeros((4, 5, 3), np.int64)
    counts[..., 0] = 1   # everyone prefers A everywhere: no resampling can change that
    assert bootstrap_ci(counts, 200, seed=0) == [[1.0, 1.0], [0.0, 0.0], [0.0, 0.0]]
    rng = np.random.default_rng(1)
    counts = np.eye(3, dtype=np.int64)[rng.integers(0, 3, (6, 8))]
    assert bootstrap_ci(counts, 300, seed=3) == bootstrap_ci(counts, 300, seed=3)


# ------------------------------------------------------------------------------------------ bad input
def refused(tmp_path, files, match, **kw):
    with pytest.raises(RatingsError) as e:
        analyze(tmp_path / "key.csv", files, bootstrap=0, **kw)
    assert any(m in str(e.value) for m in ([match] if isinstance(match, str) else match)), str(e.value)
    return str(e.value)


@pytest.fixture
def export(tmp_path):
    make_export(tmp_path, 3)
    return tmp_path


def test_unknown_pair_id(export):
    f = write_ratings(export / "ratings" / "r.csv", [("r1", "p001", "left"), ("r1", "p999", "left")])
    assert f"{f}:3: unknown pair id 'p999'" in refused(export, [f], "unknown pair id")


def test_choice_outside_the_three(export):
    f = write_ratings(export / "ratings" / "r.csv", [("r1", "p001", "Left"), ("r1", "p002", "both")])
    msg = refused(export, [f], "choice")
    assert f"{f}:2: choice 'Left' is not one of left, right, same" in msg and f"{f}:3: choice 'both'" in msg


def test_duplicates_are_refused_within_and_across_files(export):
    f1 = write_ratings(export / "ratings" / "a.csv", [("r1", "p001", "left"), ("r1", "p001", "right")])
    assert f"{f1}:3: duplicate rating of pair 'p001' by rater 'r1' (first at {f1}:2)" in refused(export, [f1], "duplicate")
    f2 = write_ratings(export / "ratings" / "b.csv", [("r1", "p002", "left")])
    f3 = write_ratings(export / "ratings" / "c.csv", [("r1", "p002", "same")])
    assert f"{f3}:2: duplicate rating" in refused(export, [f2, f3], "duplicate")
    f4 = write_ratings(export / "ratings" / "d.csv", [("r2", "p002", "same")])   # another rater: fine
    assert analyze(export / "key.csv", [f2, f4], bootstrap=0)["n_judgements"] == 2


def test_missing_and_unexpected_columns(export):
    f = write_ratings(export / "ratings" / "r.csv", [("r1", "p001")], header="rater_id,pair_id")
    assert f"{f}:1: missing column(s) choice" in refused(export, [f], "missing column")
    g = write_ratings(export / "ratings" / "s.csv", [("r1", "p001", "left", "x")],
                      header="rater_id,pair_id,choice,comment")
    assert f"{g}:1: unexpected column(s) comment" in refused(export, [g], "unexpected column")
    h = write_ratings(export / "ratings" / "t.csv", [("r1", "p001", "left", "more")])
    assert f"{h}:2: expected 3 fields, got 4" in refused(export, [h], "fields")


def test_empty_files(export):
    f = export / "ratings" / "empty.csv"
    f.write_text("")
    assert f"{f}:1: empty file" in refused(export, [f], "empty file")
    g = write_ratings(export / "ratings" / "header_only.csv", [])
    assert f"{g}:2: empty file (a header but no rows)" in refused(export, [g], "empty file")
    assert "no ratings files given" in refused(export, [], "no ratings")


def test_ratings_given_anywhere_are_read(export, tmp_path_factory):
    """Files named on the command line are the user's own: read wherever they lie (symlinks too)."""
    good = write_ratings(export / "ratings" / "ok.csv", [("r1", "p001", "left")])
    beside_key = write_ratings(export / "stray.csv", [("r2", "p002", "left")])
    elsewhere = write_ratings(tmp_path_factory.mktemp("other") / "r.csv", [("r3", "p003", "left")])
    link = export / "ratings" / "link.csv"
    os.symlink(elsewhere, link)
    assert analyze(export / "key.csv", [good, beside_key, elsewhere], bootstrap=0)["n_judgements"] == 3
    assert "duplicate rating" in refused(export, [elsewhere, link], "duplicate")  # the same file twice


def test_key_problems(export):
    f = write_ratings(export / "ratings" / "r.csv", [("r1", "p001", "left")])
    assert "set --name-a/--name-b as at export" in refused(export, [f], "are not", name_a="mine")
    (export / "key.csv").write_text("pair_id,left_model\np001,ours\n")
    assert f"{export / 'key.csv'}:1: missing column(s) right_model" in refused(export, [f], "missing column")


def test_all_problems_reported_at_once(export):
    f = write_ratings(export / "ratings" / "r.csv", [("r1", "p001", "up"), ("", "p002", "left"), ("r1", "nope", "same")])
    msg = refused(export, [f], "choice")
    assert f"{f}:2:" in msg and f"{f}:3: empty rater_id" in msg and f"{f}:4: unknown pair id" in msg


# ------------------------------------------------------------------------------------------ CLI
def test_cli_writes_json_and_chart(tmp_path, capsys):
    export = tmp_path / "res" / "human_eval"
    key = make_export(export, 4)
    rows = [(f"r{r}", p, choice_for("a" if (r + i) % 3 else "same", s)) for r in range(3)
            for i, (p, s) in enumerate(key.items())]
    for r in range(3):
        write_ratings(export / "ratings" / f"r{r}.csv", [x for x in rows if x[0] == f"r{r}"])
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"results: {tmp_path / 'res'}\nhuman_eval: {{bootstrap: 100}}\n")
    assert main(["analyze-ratings", "--configfile", str(cfg), "--chart", str(tmp_path / "res" / "he.png")]) == 0
    res = json.loads((tmp_path / "res" / "human_eval.json").read_text())   # defaults: every CSV in ratings/
    assert res["n_judgements"] == 12 and res["counts"]["prefer_b"] == 0 and res["n_raters"] == 3
    assert (tmp_path / "res" / "he.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "prefer ours" in capsys.readouterr().out
    (export / "ratings" / "r9.csv").write_text("rater_id,pair_id,choice\nr9,p001,maybe\n")
    assert main(["analyze-ratings", "--configfile", str(cfg)]) == 2
    assert f"{export / 'ratings' / 'r9.csv'}:2: choice 'maybe'" in capsys.readouterr().err
