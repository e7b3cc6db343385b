"""`guildctl view` in a real browser (Debian's headless Chromium driven by Playwright): getting
in with the printed URL, runs appearing and tailing live, stopping, cloning, labelling and
tagging from the page, the queue and GPU pages, and the scalar and batch plots, each checked
against what the CLI says.

Skips, saying why, without /usr/bin/chromium or the playwright package. With
GUILD_VIEW_SCREENSHOTS=1, the scalars test also rewrites README's two images in docs/images/.
"""

import getpass
import json
import os
import pathlib
import time

import pytest

from tests.conftest import wait_for
from tests.e2e import viewlib
from tests.e2e.conftest import Guild
from tests.e2e.viewlib import WAIT_MS

REASON = viewlib.browser_skip_reason()
pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")
if REASON is None:
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=WAIT_MS)

IMAGES = pathlib.Path(__file__).resolve().parents[2] / "docs" / "images"
VIEWPORT = {"width": 1200, "height": 700}


@pytest.fixture(scope="module")
def guild(tmp_path_factory):
    """A daemon on two simulated GPUs whose processes a YAML file lists (guild.gpus_file)."""
    base = tmp_path_factory.mktemp("view-browser")
    proj = viewlib.write_project(base / "proj")
    gpus_file = base / "gpus.yml"
    gpus_file.write_text("gpus: 2x80G\n")
    g = Guild(base / "guild-home", proj, extra_env={"GUILD_SIMULATED_GPUS": str(gpus_file)})
    g.gpus_file = gpus_file
    g.start_daemon()
    yield g
    g.stop()


@pytest.fixture(scope="module")
def view(guild):
    return viewlib.start_view(lambda *args: guild.ctl(*args, check=False))


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(**viewlib.launch_options())
        yield b
        b.close()


@pytest.fixture
def page(browser, view, tmp_path):
    """A fresh browser context logged in through the printed URL, on the runs page. Errors the
    page's scripts threw are printed (pytest shows them when the test fails), and the page as
    the test left it is saved (at-end.png in the test's tmp_path)."""
    context = browser.new_context(viewport=VIEWPORT)
    pg = context.new_page()
    pg.set_default_timeout(WAIT_MS)
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(view.url)
    expect(pg.locator("table[data-testid=runs-table]")).to_be_visible(timeout=WAIT_MS)
    yield pg
    print("page errors:", errors)
    pg.screenshot(path=str(tmp_path / "at-end.png"))
    context.close()


def _background(guild, *args):
    r = guild.ctl("run", *args, "--background", "-y")
    return r.stdout.split(" as ")[1].split()[0]


def _open_run(page, view, run_id):
    page.goto(f"{view.base}/#/runs/{run_id}")
    expect(page.locator("[data-testid=run-status]")).to_be_visible(timeout=WAIT_MS)


def _row(page, run_id):
    return page.locator(f'tr[data-run-id="{run_id}"]')


def _confirm_if_asked(page, gone):
    """Clicks the page's confirm button if it asks, until `gone` (a locator) has left."""
    deadline = time.monotonic() + WAIT_MS / 1000
    confirm = page.locator("[data-testid=confirm-ok]")
    while gone.count() and time.monotonic() < deadline:
        if confirm.is_visible():
            confirm.click()
        page.wait_for_timeout(100)
    expect(gone).to_have_count(0, timeout=WAIT_MS)


def _prompt(page, action, value):
    page.locator(f"[data-testid={action}]").click()
    form = page.locator("form[data-testid=prompt]")
    form.locator("input[name=value]").fill(value)
    form.locator("[data-testid=prompt-ok]").click()
    expect(form).to_be_hidden(timeout=WAIT_MS)


def test_the_page_needs_the_printed_url_then_keeps_working(browser, view, tmp_path):
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    answer = page.goto(f"{view.base}/")
    assert answer.status == 401
    expect(page.locator("body")).to_contain_text("401")
    expect(page.locator("body")).to_contain_text("Open the URL that 'guildctl view' printed")
    page.goto(view.url)
    expect(page.locator("table[data-testid=runs-table]")).to_be_visible(timeout=WAIT_MS)
    assert "token" not in page.url and page.url.startswith(view.base)
    expect(page.locator("[data-testid=user]")).to_contain_text(getpass.getuser(), timeout=WAIT_MS)
    page.reload()
    expect(page.locator("table[data-testid=runs-table]")).to_be_visible(timeout=WAIT_MS)
    page.screenshot(path=str(tmp_path / "runs-after-reload.png"))
    context.close()


def test_a_started_run_appears_and_its_output_tails_live(guild, view, page, tmp_path):
    page.goto(f"{view.base}/#/runs")
    run_id = _background(guild, "tick", "n=80", "delay=0.2")
    row = _row(page, run_id)
    expect(row.locator("td[data-col=status]")).to_have_text("running", timeout=WAIT_MS)
    expect(row.locator("td[data-col=op]")).to_have_text("tick")
    _open_run(page, view, run_id)
    output = page.locator("pre[data-testid=run-output]")
    expect(output).to_contain_text("tick 0", timeout=WAIT_MS)
    shown = int(output.inner_text().strip().splitlines()[-1].split()[-1])
    assert shown < 79, "the run ended before the page showed it running: make it longer"
    # Lines printed after the page opened arrive without a reload, up to the last one.
    expect(output).to_contain_text(f"tick {shown + 1}", timeout=WAIT_MS)
    expect(output).to_contain_text("tick 79", timeout=WAIT_MS)
    expect(page.locator("[data-testid=run-status]")).to_have_text("completed", timeout=WAIT_MS)
    page.screenshot(path=str(tmp_path / "run-live.png"))
    assert guild.info(run_id)["status"] == "completed"


def test_a_run_is_stopped_from_its_page(guild, view, page, tmp_path):
    run_id = _background(guild, "tick", "n=100000")
    guild.wait_status(run_id, "running")
    _open_run(page, view, run_id)
    expect(page.locator("[data-testid=run-status]")).to_have_text("running", timeout=WAIT_MS)
    page.locator("[data-testid=action-stop]").click()
    page.locator("[data-testid=confirm-ok]").click()
    expect(page.locator("[data-testid=run-status]")).to_have_text("terminated", timeout=WAIT_MS)
    assert guild.wait_status(run_id, "terminated")["status"] == "terminated"
    page.screenshot(path=str(tmp_path / "stopped.png"))


@pytest.fixture(scope="module")
def done(guild):
    """A completed run (tick n=2)."""
    guild.ctl("run", "tick", "n=2", "delay=0", "-y")
    return guild.runs()[0]["id"]


def test_a_clone_with_an_edited_flag_starts_and_completes(guild, view, page, done, tmp_path):
    _open_run(page, view, done)
    page.locator("[data-testid=action-clone]").click()
    form = page.locator("form[data-testid=clone-form]")
    expect(form.locator('input[name="flag:n"]')).to_have_value("2", timeout=WAIT_MS)
    form.locator('input[name="flag:n"]').fill("3")
    form.locator("input[name=start]").check()
    form.locator("[data-testid=clone-submit]").click()
    page.wait_for_url(lambda url: "#/runs/" in url and done not in url, timeout=WAIT_MS)
    new = page.url.split("#/runs/")[1]
    expect(page.locator("[data-testid=run-status]")).to_have_text("completed", timeout=WAIT_MS)
    expect(page.locator("[data-testid=run-flags]")).to_contain_text("3")
    page.screenshot(path=str(tmp_path / "clone.png"))
    info = guild.info(new)
    assert (info["id"], info["status"], info["flags"]["n"], info["operation"]) == (new, "completed", 3, "tick")
    assert guild.info(done)["flags"]["n"] == 2


def test_label_and_tag_from_the_page(guild, view, page, done):
    _open_run(page, view, done)
    _prompt(page, "action-label", "from the page")
    _prompt(page, "action-tag", "webtag")
    wait_for(lambda: guild.info(done)["label"] == "from the page", what="the label")
    wait_for(lambda: guild.info(done)["tags"] == ["webtag"], what="the tag")
    page.goto(f"{view.base}/#/runs")
    expect(_row(page, done).locator("td[data-col=label]")).to_have_text("from the page", timeout=WAIT_MS)


def _entry(guild, run_id):
    entries = json.loads(guild.ctl("queue", "--json").stdout)["entries"]
    return next((e for e in entries if e["run"]["id"] == run_id), None)


def test_the_queue_page_shows_why_a_run_waits_and_changes_it(guild, view, page, tmp_path):
    staged = guild.ctl("run", "tick", "--stage", "-y").stdout.split(" staged as ")[1].split()[0]
    page.goto(f"{view.base}/#/queue")
    row = page.locator(f'table[data-testid=queue-table] tr[data-run-id="{staged}"]')
    expect(row.locator("td[data-col=reason]")).to_contain_text("queue processing is off", timeout=WAIT_MS)
    expect(row.locator("td[data-col=priority]")).to_have_text("0")
    row.locator("[data-testid=priority-up]").click()
    expect(row.locator("td[data-col=priority]")).not_to_have_text("0", timeout=WAIT_MS)
    shown = int(row.locator("td[data-col=priority]").inner_text())
    assert shown > 0 and _entry(guild, staged)["options"]["priority"] == shown
    page.screenshot(path=str(tmp_path / "queue.png"))
    row.locator("[data-testid=cancel]").click()
    _confirm_if_asked(page, row)
    assert _entry(guild, staged) is None


def test_the_gpus_page_shows_which_run_holds_a_gpu(guild, view, page, tmp_path):
    run_id = _background(guild, "tick", "n=100000", "--gpus", "1")
    info = wait_for(lambda: (i := guild.info(run_id))["pid"] and i, what="the run's process")
    holdings = json.loads(guild.ctl("queue", "--json").stdout)["holdings"]
    held = next(h["devices"][0] for h in holdings if h["run_id"] == run_id)
    other = 1 - held
    tmp = guild.gpus_file.with_name("gpus.tmp")
    tmp.write_text(f"gpus: 2x80G\nprocesses:\n  - {{gpu: {held}, pid: {info['pid']}, memory: 20G}}\n"
                   f"  - {{gpu: {other}, pid: 4242, user: bob, memory: 1G}}\n")
    os.replace(tmp, guild.gpus_file)
    try:
        page.goto(f"{view.base}/#/gpus")
        expect(page.locator("[data-testid=gpu]")).to_have_count(2, timeout=WAIT_MS)
        ours = page.locator(f"[data-testid=gpu][data-index='{held}']")
        expect(ours.locator(f'a[href*="{run_id}"]').first).to_be_visible(timeout=WAIT_MS)
        expect(ours).to_contain_text(getpass.getuser())
        foreign = page.locator(f"[data-testid=gpu][data-index='{other}']")
        expect(foreign).to_contain_text("foreign", timeout=WAIT_MS)
        expect(foreign).to_contain_text("4242")
        page.screenshot(path=str(tmp_path / "gpus.png"))
    finally:
        guild.gpus_file.write_text("gpus: 2x80G\n")
        guild.ctl("stop", run_id, "-y")


# Whether a plot's canvas shows a series: pixels of a saturated colour (uPlot draws its axes and
# grid in greys; a series' stroke is a colour).
PAINTED = """(el) => {
  const canvas = el.querySelector("canvas");
  if (!canvas || !canvas.width || !canvas.height) return 0;
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let n = 0;
  for (let i = 0; i < data.length; i += 4) {
    const hi = Math.max(data[i], data[i + 1], data[i + 2]), lo = Math.min(data[i], data[i + 1], data[i + 2]);
    if (data[i + 3] > 0 && hi - lo > 60) n++;
  }
  return n;
}"""


def _plotted(locator):
    expect(locator).to_be_visible(timeout=WAIT_MS)
    wait_for(lambda: locator.evaluate(PAINTED) > 20, timeout=WAIT_MS / 1000, what="the plot to show its series")


@pytest.fixture(scope="module")
def scals(guild):
    """A run that printed step/loss scalars (n=8), and a kept grid batch of three trials."""
    guild.ctl("run", "scal", "n=8", "-y")
    run_id = guild.runs()[0]["id"]
    guild.ctl("run", "scal", "lr=[0.1,0.2,0.3]", "--keep-batch", "-y")
    batch = next(r["id"] for r in guild.runs() if r["operation"] == "scal+")
    return run_id, batch


def test_scalars_and_a_batch_objective_are_plotted(guild, view, page, scals, tmp_path):
    run_id, batch = scals
    _open_run(page, view, run_id)
    expect(page.locator("[data-testid=run-scalars]")).to_contain_text("loss", timeout=WAIT_MS)
    _plotted(page.locator("[data-testid=plot][data-tag=loss]"))
    page.screenshot(path=str(tmp_path / "scalars.png"))
    readme = os.environ.get("GUILD_VIEW_SCREENSHOTS") == "1"
    if readme:
        IMAGES.mkdir(parents=True, exist_ok=True)
        viewlib.save_png(page, IMAGES / "view-run.png")
    page.goto(f"{view.base}/#/batches/{batch}")
    expect(page.locator("table[data-testid=trials-table] tbody tr")).to_have_count(3, timeout=WAIT_MS)
    _plotted(page.locator("[data-testid=plot-objective]"))
    _plotted(page.locator("[data-testid=plot-flag][data-flag=lr]"))
    page.screenshot(path=str(tmp_path / "batch.png"))
    page.goto(f"{view.base}/#/runs")
    expect(_row(page, run_id)).to_be_visible(timeout=WAIT_MS)
    page.screenshot(path=str(tmp_path / "runs.png"))
    if readme:
        viewlib.save_png(page, IMAGES / "view-runs.png")


def test_runs_are_filtered_sorted_and_compared_and_a_file_is_shown(guild, view, page, scals, tmp_path):
    run_id, _ = scals
    form = page.locator("form[data-testid=runs-filter]")
    form.locator("input[name=op]").fill("scal")
    form.locator("input[name=filter]").fill("loss < 0.15")
    form.locator("input[name=filter]").press("Enter")
    wanted = [r["id"] for r in json.loads(guild.ctl("runs", "-a", "-o", "scal", "-F", "loss < 0.15", "--json").stdout)]
    assert len(wanted) >= 3
    rows = page.locator("table[data-testid=runs-table] tr[data-run-id]")
    expect(rows).to_have_count(len(wanted), timeout=WAIT_MS)
    assert sorted(rows.evaluate_all("rs => rs.map(r => r.dataset.runId)")) == sorted(wanted)
    expect(page.locator("[data-testid=pager]")).to_contain_text(f"{len(wanted)} runs")
    # Clicking the loss header sorts by loss; clicking again, the other way.
    losses = page.locator("table[data-testid=runs-table] td[data-col='scalar:loss']")
    page.locator("th[data-sort=loss]").click()
    first = wait_for(lambda: (v := [float(t) for t in losses.all_inner_texts()]) in (sorted(v), sorted(v)[::-1]) and v,
                     timeout=WAIT_MS / 1000, what="the runs sorted by loss")
    page.locator("th[data-sort=loss]").click()
    wait_for(lambda: [float(t) for t in losses.all_inner_texts()] == sorted(first, reverse=first == sorted(first)),
             timeout=WAIT_MS / 1000, what="the runs sorted by loss the other way")
    for row in (rows.nth(0), rows.nth(1)):
        row.locator("input[data-testid=select-run]").check()
    picked = rows.evaluate_all("rs => rs.slice(0, 2).map(r => r.dataset.runId)")
    page.locator("[data-testid=compare-selected]").click()
    table = page.locator("table[data-testid=compare-table]")
    for picked_id in picked:
        expect(table).to_contain_text(picked_id[:8], timeout=WAIT_MS)
    page.screenshot(path=str(tmp_path / "compare.png"))
    _open_run(page, view, run_id)
    page.locator("[data-testid=run-files]").get_by_text("scal.py", exact=True).click()
    expect(page.locator("pre[data-testid=file-view]")).to_contain_text('print("loss: %f"', timeout=WAIT_MS)
