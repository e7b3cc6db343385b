"""What `guildctl run` prints instead of running: --help-op, --test-flags, --test-sourcecode,
--test-output-scalars, --print-env. Nothing here creates a run."""

import sys

from guild_common import flags as flaglib, scalars, sourcecode


def help_op(op):
    """An operation's help, as `guild run OP --help-op` shows it."""
    lines = [f"Usage: guildctl run [OPTIONS] {op.name} [FLAG]...", ""]
    description = getattr(getattr(op, "opdef", None), "description", "") or ""
    if description:
        lines += [description.strip(), ""]
    lines += ["Use 'guildctl run --help' for a list of options.", ""]
    if op.flag_defs:
        lines.append("Flags:")
        width = max(len(name) for name in op.flag_defs)
        for name, d in sorted(op.flag_defs.items()):
            text = d.description or ""
            if d.default is not None:
                text += f"{' ' if text else ''}(default is {flaglib.encode_flag_value(d.default)})"
            elif d.null_label:
                text += f"{' ' if text else ''}(default is {d.null_label})"
            if d.required:
                text += " (required)"
            lines.append(f"  {name.ljust(width)}  {text}".rstrip())
            lines += _choices_help(d, " " * (width + 4))
    else:
        lines.append("This operation has no flags.")
    return "\n".join(lines)


def _choices_help(d, indent):
    """Guild's choices block under a flag: one line when no choice has a description, else
    one choice (its alias, if it has one) per line with its description."""
    choices = list(d.choices)
    if not choices:
        return []
    shown = []
    for c in choices:
        if isinstance(c, dict):
            value = c.get("alias") if c.get("alias") is not None else c.get("value")
            shown.append((flaglib.encode_flag_value(value), str(c.get("description") or "").strip()))
        else:
            shown.append((flaglib.encode_flag_value(c), ""))
    if not any(desc for _, desc in shown):
        return ["", f"{indent}Choices:  {', '.join(v for v, _ in shown)}", ""]
    width = max(len(v) for v, _ in shown)
    return ["", f"{indent}Choices:", *(f"{indent}  {v.ljust(width)}  {desc}".rstrip() for v, desc in shown), ""]


def test_flags(op):
    """The flags an operation has, where they go, and each one's definition."""
    lines = [f"flags-dest: {op.flags_dest}", "flags:"]
    for name, d in sorted(op.flag_defs.items()):
        lines.append(f"  {name}:")
        lines.append(f"    default: {'' if d.default is None else flaglib.encode_flag_value(d.default)}")
        lines.append(f"    type: {d.type or ''}")
        lines.append(f"    required: {'yes' if d.required else 'no'}")
        for key, value in (("arg-name", d.arg_name), ("arg-skip", d.arg_skip or None), ("arg-switch", d.arg_switch),
                           ("env-name", d.env_name), ("description", d.description or None)):
            if value is not None:
                lines.append(f"    {key}: {flaglib.encode_flag_value(value) if not isinstance(value, str) else value}")
        if d.choices:
            lines.append("    choices: " + ", ".join(
                flaglib.encode_flag_value(c.get("value") if isinstance(c, dict) else c) for c in d.choices))
    return "\n".join(lines)


def test_sourcecode(root, config=None):
    return sourcecode.test_sourcecode_text(root, config)


def test_output_scalars(config, stream):
    """Echoes each input line, then what each pattern captures from it."""
    compiled = scalars.compile_config(config)
    out = []
    for line in stream:
        line = line.rstrip("\n")
        if stream is sys.stdin and not line:
            break  # interactive: a blank line ends it
        out.append(line)
        for pattern in compiled.patterns:
            found = scalars.match_line(line, [pattern])
            shown = ", ".join(f"{k}={v:g}" for k, v in sorted(found.items())) if found else "<no matches>"
            out.append(f"  {pattern.regex.pattern!r}: {shown}")
    return "\n".join(out)


def print_env(env):
    return "\n".join(f"{k}={v}" for k, v in sorted(env.items()))
