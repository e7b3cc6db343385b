"""An operation's flag values from the user's `NAME=VAL` arguments, checked against its flag
definitions: shared by script runs and Guild-file operations."""

import os

from guild_common import errors, flags as flaglib


def flag_values(op, assigns, force_flags=False, cwd=None):
    """Every flag's value (defaults, then the user's `NAME=VAL` assignments) and the user's
    own, checked against the operation's flag definitions unless `force_flags`: unknown
    names, types, choices (and their aliases and the flags a choice sets), required flags."""
    user = flaglib.parse_flag_assigns(assigns)
    allowed = set(op.flag_defs)
    for name, value in list(user.items()):
        if name not in allowed and not force_flags:
            raise errors.InvalidArgument(
                f"unsupported flag '{name}'\nTry 'guildctl run {op.name} --help-op' for a list of flags "
                "or use --force-flags to skip this check."
            )
        flagdef = op.flag_defs.get(name)
        if flagdef is not None:
            value = user[name] = _choice_for_alias(flagdef, value)
        if flagdef is not None and not force_flags:
            user[name] = flaglib.coerce_flag_value(value, flagdef, cwd)
    values = {name: d.default for name, d in op.flag_defs.items()}
    values.update(user)
    values = _abs_paths(op, values, cwd)
    if not force_flags:
        for name, d in op.flag_defs.items():
            if d.required and values.get(name) is None:
                raise errors.InvalidArgument(f"missing required flag '{name}'\nUse '{name}=VALUE' to set it.")
        values = _apply_choice_flags(op, values, user)
    return values, user


def _abs_paths(op, values, cwd):
    """`path` and `existing-path` values made absolute (from the user's directory), as Guild
    0.9 does: the run's own directory is not where they were meant."""
    out = dict(values)
    for name, d in op.flag_defs.items():
        value = out.get(name)
        if d.type in ("path", "existing-path") and isinstance(value, str) and value:
            out[name] = os.path.abspath(os.path.join(cwd or os.getcwd(), os.path.expanduser(value)))
    return out


def _choice_for_alias(flagdef, value):
    """The value of the choice whose `alias` the user gave (`size=big` -> 0.9), else `value`."""
    for choice in flagdef.choices:
        if isinstance(choice, dict) and choice.get("alias") is not None:
            if flaglib.encode_flag_value(choice["alias"]) == flaglib.encode_flag_value(value):
                return choice.get("value")
    return value


def _apply_choice_flags(op, values, user):
    """A choice given as {value, flags} sets those flags too (the user's own values win)."""
    out = dict(values)
    for name, d in op.flag_defs.items():
        for choice in d.choices:
            if isinstance(choice, dict) and choice.get("value") == values.get(name):
                for fname, fvalue in (choice.get("flags") or {}).items():
                    if fname not in user:
                        out[fname] = fvalue
    return out
