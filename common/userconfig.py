"""The user's Guild config (Guild 0.9's `guild-config.yml`) and what guildctl takes from it.

Guild looks for it in $GUILD_CONFIG, else `guild-config.yml` in the current directory, else
`~/.guild/config.yml` (not in GUILD_HOME). Unlike Guild, which warns and goes on without it,
a file that can't be read or parsed is an error: the user wrote it to be used.
"""

import os
import pathlib
import re
from collections.abc import Mapping

import yaml

from guild_common.errors import InvalidArgument


def config_path(env: Mapping[str, str] | None = None, cwd: str | None = None) -> pathlib.Path:
    """Where the user's config is (the file may not exist)."""
    env = os.environ if env is None else env
    if env.get("GUILD_CONFIG"):
        return pathlib.Path(env["GUILD_CONFIG"])
    local = pathlib.Path(cwd or os.getcwd()) / "guild-config.yml"
    if local.exists():
        return local
    return pathlib.Path("~/.guild/config.yml").expanduser()


def load(path: pathlib.Path) -> dict:
    """The config in `path`; empty when there is no such file."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidArgument(f"cannot read user config {path}: {getattr(e, 'strerror', None) or e}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark, problem = getattr(e, "problem_mark", None), getattr(e, "problem", None) or "not YAML"
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise InvalidArgument(f"invalid user config {path}: {problem}{where}") from None
    if data is not None and not isinstance(data, dict):
        raise InvalidArgument(f"invalid user config {path}: expected a mapping")
    return data or {}


def diff_commands(path: pathlib.Path) -> dict[str, str]:
    """The `diff: command:` of the config in `path` as a map from file extensions (exact, or
    a regex) to commands, `default` for the rest ({} when it names none). Guild takes a
    string as the default for everything."""
    section = load(path).get("diff")
    commands = section.get("command") if isinstance(section, dict) else None
    if commands is None:
        return {}
    if isinstance(commands, str):
        return {"default": commands}
    if not isinstance(commands, dict) or not all(isinstance(v, str) for v in commands.values()):
        raise InvalidArgument(f"invalid user config {path}: diff command must be a string or a map of strings")
    return {str(k): v for k, v in commands.items()}


def command_for(commands: dict[str, str], path: str = "") -> str | None:
    """The command of `diff_commands` for diffing `path` (a file, or '' for run dirs)."""
    ext = os.path.splitext(path)[1] if path else ""
    for pattern, command in commands.items():
        if pattern != "default" and ext and (ext == pattern or _search(pattern, ext)):
            return command
    return commands.get("default")


def _search(pattern: str, ext: str) -> bool:
    try:
        return re.search(pattern, ext) is not None
    except re.error:
        return False
