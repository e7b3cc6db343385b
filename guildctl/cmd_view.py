"""`guildctl view`: the web view of runs, the queue and the GPUs, served by guildd itself.

The daemon serves the page from the first `view` on (until it stops) and gives each caller a
token of their own; the page acts as that user, under the same rules as the CLI. The URL
holds the token, like Jupyter's: it is printed for this user only, and handed to the
browser through a file only this user can read (a command line is visible to every user
of the machine, a file mode 0600 is not).
"""

import os
import tempfile
import webbrowser
from typing import Any

import click

from guild_common.pb import guild_pb2 as pb
from guildctl import output

REDIRECT_PAGE = """<!doctype html><meta charset="utf-8"><title>guildctl view</title>
<meta http-equiv="refresh" content="0;url={url}"><p><a href="{url}">Open guildctl view</a></p>"""


def open_in_browser(url: str) -> None:
    """Opens the view in a browser through a private redirect file, so the token never
    stands in a browser's command line."""
    fd, path = tempfile.mkstemp(prefix="guildctl-view-", suffix=".html")  # 0600, this user's
    with os.fdopen(fd, "w") as f:
        f.write(REDIRECT_PAGE.format(url=url))
    webbrowser.open(f"file://{path}")


@click.command(context_settings={"help_option_names": ["--help"]})
@click.option("-h", "--host", default="", metavar="HOST",
              help="Interface to serve on when the daemon doesn't serve the view yet (default: 127.0.0.1; "
                   "on a shared box, another than this machine's own needs an administrator).")
@click.option("-p", "--port", type=click.IntRange(0, 65535), default=0,
              help="Port to serve on when the daemon doesn't serve the view yet (default: a free port).")
@click.option("-n", "--no-open", is_flag=True, help="Don't open the view in a browser; print its URL.")
@click.option("--json", "as_json", is_flag=True, help="Print the URL, host, port and token as JSON.")
@click.pass_obj
def view(ctx: Any, host: str, port: int, no_open: bool, as_json: bool) -> None:
    """Open the web view of runs, the queue and the GPUs.

    guildd serves it (from now until it stops) and gives you a URL with your own token:
    whoever has the URL acts as you there, as with the CLI, so keep it to yourself. The page
    lists and filters runs, compares them, shows a run's flags, scalars with plots, files
    and live output, the queue and why each run waits, who holds which GPU, and a batch's
    trials; it can stop, start, reprioritize, cancel, label, tag, delete and clone runs.
    It updates itself as runs change. Run `guildctl view` again for the URL.
    """
    resp = ctx.client.call("StartView", pb.StartViewRequest(host=host, port=port))
    if as_json:
        output.print_json({"url": resp.url, "host": resp.host, "port": resp.port, "token": resp.token})
    else:
        note = ""
        if resp.already and ((host and host != resp.host) or (port and port != resp.port)):
            note = " (already served there: --host/--port apply when guildd starts serving it)"
        click.echo(f"guildctl view: serving at {resp.url}{note}")
    if not no_open and not as_json:
        open_in_browser(resp.url)
