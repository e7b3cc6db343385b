"""The run spec `guildctl run` sends, built in one place for every kind of operation: the
operation's configuration as the kind resolved it, and the facts of this one run."""

import json
import os
from collections.abc import Iterable

from guild_common import opconfig
from guild_common.pb import guild_pb2 as pb


def build(
    config: opconfig.OpConfig,
    op_name: str,
    opref: str,
    sourcecode: list[pb.SourceFile],
    values: dict,
    user_flags: dict,
    tags: Iterable[str] = (),
    stop_after: float = 0.0,
    run_params: dict | None = None,
    **fields: object,
) -> pb.RunSpec:
    """A run of `config` with flag `values` (`user_flags`: those the user set) in this
    process's environment; the label is `config`'s template. `fields`: more RunSpec fields
    (steps)."""
    return opconfig.spec_from_config(
        config,
        op_name=op_name,
        opref=opref,
        flags_json=json.dumps(values),
        user_flags_json=json.dumps(user_flags),
        env=dict(os.environ),
        sourcecode=sourcecode,
        label=config.label_template or "",
        tags=list(tags),
        stop_after=stop_after,
        run_params_json=json.dumps(run_params or {}),
        **fields,
    )
