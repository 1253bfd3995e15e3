"""vqvideo report-tables: the FVD/quality HTML shown by snakemake --report."""

import json

from vqvideo.cli import main
from vqvideo.report_tables import report_tables


def _fvd(resolution, value):
    entry = {"value": value, "std": 2.0, "folds": [value - 2, value + 2]}
    return {"metric": "FVD", "resolution": resolution, "value": value, "std": 2.0, "folds": entry["folds"],
            "fvd": entry, "fvd_star": {"value": value / 2, "std": 1.0},
            "kvd": {"value": 12.5, "std": 0.25, "folds": [12.25, 12.75]},
            "baselines": {"copy_last": {"fvd": {"value": 900.0, "std": 3.0}, "kvd": {"value": 31.0, "std": 1.0}},
                          "reconstructions": None},
            "sanity": {"warnings": ["FVD does not rank <b>"]}, "n_videos": {"clips": 16}}


def test_tables_hold_every_resolution_and_escape(tmp_path):
    (tmp_path / "fvd_64.json").write_text(json.dumps(_fvd(64, 250.5)))
    (tmp_path / "fvd_256.json").write_text(json.dumps(_fvd(256, 410.0)))
    (tmp_path / "quality.json").write_text(json.dumps({
        "predicted_frames": [5, 16], "samples": {"psnr": 21.25, "ssim": 0.61, "best_of_k_psnr": 22.5},
        "copy_last": {"psnr": 19.5}, "reconstructions": {"psnr": 25.75},
        "diagnostics": {"true_top_sampled_bottom": {"psnr": 23.125}},
        "aggregation": {"psnr": "PSNR of the mean MSE <per frame>"},
        "diversity": {"mean_pairwise_1_minus_ssim": 0.125}}))
    (tmp_path / "quality_per_frame.png").write_bytes(b"\x89PNG not really")
    html = report_tables(tmp_path, tmp_path / "report" / "results.html").read_text()
    assert html.index("64x64") < html.index("256x256")  # sorted by resolution
    assert "250.5 &plusmn; 2.0" in html and "125.2" in html and "900.0 &plusmn; 3.0" in html
    assert "12.5 &plusmn; 0.25" in html and "31 &plusmn; 1" in html
    assert "FVD does not rank &lt;b&gt;" in html and "<b>" not in html.replace("<b>Warning:</b>", "")
    assert all(v in html for v in ("21.25", "19.5", "25.75", "23.12", "22.5", "0.1250"))
    assert "mean MSE &lt;per frame&gt;" in html
    assert "data:image/png;base64," in html  # the per-frame curve, embedded


def test_cli_writes_under_results(tmp_path):
    (tmp_path / "fvd_64.json").write_text(json.dumps(_fvd(64, 1.0)))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"results: {tmp_path}\n")
    assert main(["report-tables", "--configfile", str(cfg)]) == 0
    assert (tmp_path / "report" / "results.html").is_file()
