"""The property every fuzz test checks, in one place: an input gives a value or one of our
own clear errors; any other exception is a traceback the user would see, and is recorded."""

import traceback

import click

from guild_common import errors
from tests.fuzz.figures import FIGURES

# What guildctl's main() turns into one line and an exit status (guildctl/main.py).
CLEAR = (errors.GuildError, click.ClickException, click.exceptions.Abort, click.exceptions.Exit)


def clear_or_value(test, fn, *args, messages=None, **kw):
    """fn(*args, **kw), or None when it raised a clear error (its message appended to
    `messages` when given); fails `test` on anything else. (A case may make several calls:
    each test counts its cases itself, with FIGURES.tried.)"""
    try:
        return fn(*args, **kw)
    except CLEAR as e:
        message = str(e)
        assert "Traceback" not in message
        if messages is not None:
            messages.append(message)
        return None
    except Exception as e:  # noqa: BLE001 - the finding this suite exists to catch
        tb = "".join(traceback.format_exception(type(e), e, e.__traceback__)[-3:])
        raise AssertionError(FIGURES.found("tracebacks", f"{test}: {type(e).__name__}: {e!s:.200} args={args!r:.200}\n{tb}")) from e
