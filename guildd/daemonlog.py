"""guildd's log, GUILD_HOME/guildd.log, and the line each exit of guildd leaves in it. Light on
imports: guildd.main writes an exit here before it loads gRPC."""

import io
import logging
import os
import pathlib

from guild_common import errors, home as homelib, ownership

log = logging.getLogger("guildd")

FORMAT = "%(asctime)s %(levelname)s [%(name)s] %(message)s"


def describe(e: BaseException) -> str:
    """An error as one line: a GuildError's message is written for users as it is; anything
    else is named by its type too (`NotADirectoryError: [Errno 20] Not a directory: '…'`)."""
    if isinstance(e, errors.GuildError):
        return str(e)
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


class LogFile(logging.FileHandler):
    """guildd.log, never opened through a link planted in its place (the daemon would append
    wherever it points, as whoever runs it)."""

    def __init__(self, home: pathlib.Path) -> None:
        super().__init__(homelib.log_path(home), encoding="utf-8")

    def _open(self) -> io.TextIOWrapper:
        fd = ownership.open_private(pathlib.Path(self.baseFilename), os.O_WRONLY | os.O_APPEND, os.getuid())
        return os.fdopen(  # type: ignore[return-value]  # text mode: a TextIOWrapper
            fd, self.mode, encoding=self.encoding, errors=self.errors)


def setup(home: pathlib.Path, to_stderr: bool) -> None:
    """The daemon's logging: guildd.log, and stderr too in the foreground."""
    handlers: list[logging.Handler] = [LogFile(home)]
    if to_stderr:
        handlers.append(logging.StreamHandler())
    logging.basicConfig(level=logging.INFO, format=FORMAT, handlers=handlers, force=True)


def _own_dir(home: pathlib.Path) -> bool:
    """Whether `home` is a directory this user may keep its log in (ownership.check_dir)."""
    try:
        return ownership.check_dir(os.stat(home), os.getuid(), group_write_ok=True) is None
    except OSError:
        return False


def log_exit(home: pathlib.Path, e: BaseException) -> None:
    """Logs why guildd exits, with the traceback of an error no one foresaw. Before logging is
    set up (the home failed its checks, another daemon holds it) the log is opened here; one
    that can't be opened, or a home that isn't this user's, is left alone (the reason still
    goes to stderr)."""
    handler = None
    if not logging.getLogger().handlers:
        if not _own_dir(home):
            return  # a home refused as another user's gets no file of ours
        try:
            handler = LogFile(home)
        except errors.GuildError:
            return
        handler.setFormatter(logging.Formatter(FORMAT))
        log.addHandler(handler)
    try:
        log.error("guildd exiting: %s", describe(e), exc_info=None if isinstance(e, errors.GuildError) else e)
    finally:
        if handler is not None:
            log.removeHandler(handler)
            handler.close()
