"""What `guildctl ops` and `guildctl help` say about a Guild file's operations and flags, as
pure functions of its parsed definitions: the text (Guild 0.9's layout) and the JSON."""

from guild_common import flags as flaglib

INDENT = "  "


def is_private(name):
    """A `_name` operation is private: Guild lists it only with `ops --all`, never in help."""
    return name.split(":")[-1].startswith("_")


def listed_ops(gf, filters=(), show_private=False):
    """The operations `ops` lists, sorted by full name: those whose full name holds every
    FILTER, private ones only with `show_private`."""
    ops = sorted(
        (op for model in gf.models.values() for op in model.operations.values()),
        key=lambda op: op.full_name,
    )
    return [
        op for op in ops
        if all(f in op.full_name for f in filters) and (show_private or not is_private(op.name))
    ]


def first_line(text):
    lines = (text or "").strip().splitlines()
    return lines[0].strip() if lines else ""


def flag_summary(flag):
    """A flag's first help line: its description's first line, then `(required)` or
    `(default is VALUE)`."""
    parts = [first_line(flag.description)]
    if flag.required and flag.default is None:
        parts.append("(required)")
    elif flag.default is not None:
        parts.append(f"(default is {flaglib.encode_flag_value(flag.default)})")
    return " ".join(p for p in parts if p)


def flag_more(flag):
    """The lines after a flag's summary: the rest of its description, then its choices."""
    rest = [line.rstrip() for line in (flag.description or "").strip().splitlines()[1:]]
    blocks = [rest] if any(rest) else []
    values = [_choice_value(c) for c in flag.choices]
    if values:
        blocks.append(["Choices:  " + ", ".join(flaglib.encode_flag_value(v) for v in values)])
    lines = []
    for block in blocks:
        lines += [""] + block
    return lines


def flag_lines(flags):
    """Guild's `Flags:` block: names padded to one column, each summary after its name, a
    flag with more to say followed by its lines and a blank line."""
    width = max((len(name) for name in flags), default=0)
    pad = " " * (width + 2)
    lines = []
    for name, flag in sorted(flags.items()):
        summary = flag_summary(flag)
        lines.append(f"{name.ljust(width)}  {summary}".rstrip())
        more = flag_more(flag)
        if more:
            lines += [f"{pad}{line}".rstrip() for line in more] + [""]
    return lines


def op_lines(op):
    """An operation in `help`: its name, its description indented under it, its flags."""
    lines = [op.name]
    desc = [line.rstrip() for line in (op.description or "").strip().splitlines()]
    lines += [f"{INDENT}{line}".rstrip() for line in desc]
    if op.flags:
        lines += ["", f"{INDENT}Flags:"] + [f"{INDENT * 2}{line}".rstrip() for line in flag_lines(op.flags)]
    return lines


def verbose_lines(op):
    """What `ops -v` adds under an operation: its command, flags and description's details."""
    lines = []
    if op.main:
        lines.append(f"main: {op.main}")
    if op.exec:
        lines.append(f"exec: {op.exec}")
    if op.steps:
        lines.append("steps: " + ", ".join(_step_name(s) for s in op.steps))
    lines.append("flags:" if op.flags else "flags: none")
    lines += [f"  {name}: {flag_summary(flag)}".rstrip() for name, flag in sorted(op.flags.items())]
    details = (op.description or "").strip().splitlines()[1:]
    if any(line.strip() for line in details):
        lines.append("details:")
        lines += [f"  {line.rstrip()}".rstrip() for line in details]
    return lines


def help_text(gf, overview):
    """`guildctl help`: the overview, then the anonymous model's operations (BASE
    OPERATIONS) and the named models with theirs (MODELS), private operations left out."""
    sections = ["OVERVIEW", "", *[f"    {line}".rstrip() for line in overview.splitlines()], ""]
    base = gf.models.get("")
    if base is not None and _public(base):
        sections += ["BASE OPERATIONS", ""]
        for op in _public(base):
            sections += [f"    {line}".rstrip() for line in op_lines(op)] + [""]
    named = [m for m in gf.models.values() if m.name]
    if named:
        sections += ["MODELS", ""]
        for model in named:
            sections.append(f"    {model.name}")
            desc = (model.description or "").strip().splitlines()
            if desc:
                sections += [""] + [f"      {line.rstrip()}".rstrip() for line in desc]
            ops = _public(model)
            if ops:
                sections += ["", "      Operations:", ""]
                for op in ops:
                    sections += [f"        {line}".rstrip() for line in op_lines(op)] + [""]
            else:
                sections.append("")
    return "\n".join(sections).rstrip() + "\n"


def op_json(op):
    """An operation for `ops --json` and `help --json`."""
    return {
        "name": op.full_name,
        "model": op.model,
        "operation": op.name,
        "description": (op.description or "").strip(),
        "private": is_private(op.name),
        "main": op.main,
        "exec": op.exec,
        "steps": [_step_name(s) for s in op.steps] if op.steps else None,
        "flags": {name: flag_json(flag) for name, flag in sorted(op.flags.items())},
    }


def flag_json(flag):
    return {
        "description": (flag.description or "").strip(),
        "default": flag.default,
        "required": bool(flag.required),
        "type": flag.type,
        "choices": [_choice_value(c) for c in flag.choices] or None,
    }


def help_json(gf):
    return {
        "guildfile": gf.path,
        "models": [
            {
                "name": model.name,
                "description": (model.description or "").strip(),
                "operations": [op_json(op) for op in _public(model)],
            }
            for model in gf.models.values()
        ],
    }


def _public(model):
    return [op for name, op in sorted(model.operations.items()) if not is_private(name)]


def _choice_value(choice):
    return choice.get("value") if isinstance(choice, dict) else choice


def _step_name(step):
    if isinstance(step, dict):
        return str(step.get("run") or "")
    return str(step)
