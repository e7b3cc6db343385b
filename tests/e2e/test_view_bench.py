"""The runs page's benchmark (issue 17, item 6; bench/view.py is the big version over 100,000
runs) at a tiny size: it reports every figure, and the page, the API and `guildctl runs`
agree on which runs come first. No timing is asserted."""

import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "bench"))
import view  # noqa: E402  (bench/ is a scripts dir, not a package)

RUNS = 300  # the deep page is then page 6 (of 50 runs), the last


@pytest.mark.skipif(not pathlib.Path(view.CHROMIUM).exists(), reason=f"no Chromium at {view.CHROMIUM}")
def test_the_view_bench_reports_every_figure_and_the_page_shows_the_latest_runs(tmp_path, capsys):
    res = view.run_bench(tmp_path, RUNS, repeat=1)
    assert res["checks"] == dict.fromkeys(res["checks"], True)
    assert set(res["checks"]) == {
        "the API counts every run", "the API's first runs are the ones `guildctl runs` shows",
        "the sort by loss puts the best run first", "the deep page holds its runs",
        "the page shows the API's first page", "the pager counts every run",
    }
    assert res["deep_page"] == 6
    figures = [res["cli"], *res["api"].values(), *res["rpc"].values(), res["page"]["cold"], res["page"]["warm"],
               res["page"]["dom_loaded"]]
    assert len(figures) == 12
    assert all(f["n"] == 1 and f["median"] > 0 and f["max"] >= f["median"] for f in figures)
    assert res["page_rows"] >= view.CLI_SHOWS
    view.print_report(res, sys.stdout)
    out = capsys.readouterr().out
    for name in ("`guildctl runs` (a)", "GET /api/runs first page", "sorted by loss", "filtered by op",
                 "deep page: page 6, 50 a page (e)", "page first screen, cold (d)", "page first screen, warm",
                 "page (d) / guildctl runs (a):"):
        assert name in out
