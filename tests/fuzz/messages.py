"""Hypothesis strategies for any request message of the Guild service, built from the proto's
descriptors: every field gets values of its type at their edges (empty, huge, out of range,
unknown enum numbers, NULs, unicode, path traversal), nested messages a few levels deep.

Placeholders in text (`{canary}`, `{outside}`, `{climb}`, `{run}`...) are filled in from
PLACES, which the test module's fixture sets to paths in its own temp tree."""

import json

from google.protobuf.descriptor import FieldDescriptor as F
from hypothesis import strategies as st

from guild_common.pb import guild_pb2 as pb
from tests.fuzz import hostile

PLACES: dict = {}
MAX_DEPTH = 3

INT_EDGES = {
    F.TYPE_INT32: (-(2**31), 2**31 - 1), F.TYPE_SINT32: (-(2**31), 2**31 - 1), F.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    F.TYPE_INT64: (-(2**63), 2**63 - 1), F.TYPE_SINT64: (-(2**63), 2**63 - 1), F.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    F.TYPE_UINT32: (0, 2**32 - 1), F.TYPE_FIXED32: (0, 2**32 - 1), F.TYPE_UINT64: (0, 2**64 - 1),
    F.TYPE_FIXED64: (0, 2**64 - 1),
}
RUN_WORDS = ["{run}", "{run_prefix}", "{run_link}", "1", "2", "-1", "1:2", "0", "{climb}", "../{run}", "{run}/..",
             "{run}\x00", "{home}/runs/{run}", "{deleted}"]
# Paths that name files in a run: its planted links (pointing out of it), the run's own files,
# and ways up and out.
FILE_WORDS = ["link-out", "dir-out", "dir-out/canary.txt", "train.py", ".guild/output", ".guild/attrs/id",
              ".guild/../../{run_other}/train.py", "../{run_other}/train.py", "{climb_canary}", "{canary}", "..",
              "../..", "../../../..", "*", "**", "[", "/", "{outside}", ".guild/LOCK", "dir-out/../dir-out"]
# Export destinations: never {outside}, whose files an export may legitimately write into
# (a client names any absolute directory); the canary there must stay as it is.
EXPORT_DIRS = ["", "{exports}", "{exports}/new", "{climb}", "{home}", "{home}/runs", "{home}/runs/{run}", "{canary}",
               "{canary}/x", "/dev/null", "exports", "../exports", "{exports}/../exports", "{home}/runs/x/../..",
               "{outside}/canary.txt", "{exports}/\x00"]
IMPORT_DIRS = EXPORT_DIRS + ["{outside}", "{archive}"]


def fill(text: str) -> str:
    """`text` with the fixture's placeholders replaced (no format(): the text holds braces)."""
    for key, value in PLACES.items():
        text = text.replace("{" + key + "}", value)
    return text


def _text():
    return hostile.text().map(fill)


def _json_text():
    """A JSON field: valid JSON of any shape, JSON of the wrong shape, or not JSON at all."""
    value = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-10**30, 10**30), st.floats(allow_nan=False),
                                   hostile.text()),
                         lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(hostile.text(), inner, max_size=3)),
                         max_leaves=10)
    return st.one_of(value.map(json.dumps), _text(), st.just("{\"x\": NaN}"), st.just("[" * 5000))


def _string(field):
    name = field.name
    owner = field.containing_type.name
    if owner == "ExportRunsRequest" and name == "dir":
        return st.sampled_from(EXPORT_DIRS).map(fill)
    if owner == "ImportRunsRequest" and name == "dir":
        return st.sampled_from(IMPORT_DIRS).map(fill)
    if name.endswith("_json"):
        return _json_text()
    if name in ("run", "runs", "after") or owner == "RunSelection":
        return st.one_of(st.sampled_from(RUN_WORDS).map(fill), _text())
    if name == "path" or owner == "SourceFile":
        return st.one_of(st.sampled_from(FILE_WORDS).map(fill), _text())
    return _text()


def _scalar(field):
    t = field.type
    if t in INT_EDGES:
        lo, hi = INT_EDGES[t]
        return st.one_of(st.sampled_from([lo, hi, 0, -1, 1, 2, -100, 2**62]).filter(lambda v: lo <= v <= hi),
                         st.integers(lo, hi))
    if t == F.TYPE_DOUBLE:
        return st.floats()
    if t == F.TYPE_FLOAT:
        return st.floats(width=32)
    if t == F.TYPE_BOOL:
        return st.booleans()
    if t == F.TYPE_STRING:
        return _string(field)
    if t == F.TYPE_BYTES:
        return st.one_of(st.binary(max_size=64), st.integers(0, hostile.HUGE).map(lambda n: b"\0" * n))
    if t == F.TYPE_ENUM:
        return st.integers(-3, max(v.number for v in field.enum_type.values) + 3)
    raise AssertionError(f"no strategy for field {field.full_name}")


def _field(field, depth):
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        key, value = field.message_type.fields_by_name["key"], field.message_type.fields_by_name["value"]
        return st.dictionaries(_scalar(key), _value(value, depth), max_size=3)
    one = _value(field, depth)
    if field.is_repeated:
        return st.lists(one, max_size=3)
    return one


def _value(field, depth):
    if field.type == F.TYPE_MESSAGE:
        return message(field.message_type, depth + 1)
    return _scalar(field)


def message(desc, depth=0):
    """A strategy for messages of type `desc`: any subset of its fields set, nested messages
    down to MAX_DEPTH."""
    cls = getattr(pb, desc.name)
    fields = [f for f in desc.fields if not (f.type == F.TYPE_MESSAGE and depth >= MAX_DEPTH)]
    optional = {f.name: st.deferred(lambda f=f: _field(f, depth)) for f in fields}
    return st.fixed_dictionaries({}, optional=optional).map(lambda kw: cls(**kw))


SERVICE = pb.DESCRIPTOR.services_by_name["Guild"]
# Every method a client may call with any request; ShutdownDaemon stops the daemon under test
# (it takes no fields: nothing to fuzz).
METHODS = [m for m in SERVICE.methods if m.name != "ShutdownDaemon"]
