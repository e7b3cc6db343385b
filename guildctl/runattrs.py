"""Run attributes that GetRun leaves out (the `op` attr: the operation's whole configuration,
which only `runs info --private-attrs` and `open --sourcecode` need), read as a run file
through the daemon, with the rights it reads that run's files with."""

import yaml

from guild_common import errors
from guildctl.selecting import selection


def op_attr(client, run):
    """The run's `op` attribute as a mapping; {} when the run has none (a run Guild wrote
    before it recorded one) or it isn't one."""
    try:
        text = b"".join(client.read_file(selection([run.id], None), path=".guild/attrs/op"))
        value = yaml.safe_load(text)
    except (errors.NotFound, yaml.YAMLError):
        return {}
    return value if isinstance(value, dict) else {}


def sourcecode_dest(op):
    """Where the source code snapshot is, relative to the run dir: the op attr's
    `sourcecode: dest`, '.' (Guild 0.9's layout) when it names none."""
    dest = (op.get("sourcecode") or {}).get("dest") if isinstance(op.get("sourcecode"), dict) else None
    return dest if isinstance(dest, str) and dest else "."
