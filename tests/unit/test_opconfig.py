"""An operation's stored configuration: rendering its command and label, and its attr form."""

import dataclasses

import pytest

from guild_common import errors, opconfig, rundir
from guild_common.flagdef import FlagDef
from guild_common.pb import guild_pb2 as pb


def _config(cmd_args=("${python_exe}", "-u", "train.py", "__flag_args__"), flag_defs=None, **kw):
    fields = dict(
        cmd_args=tuple(cmd_args),
        flags_dest="args",
        flag_defs=flag_defs or {},
        op_env={},
        label_template=None,
        python_exe="/venv/bin/python",
        guild_op="",
        cmd_dir="/proj",
        project_dir="/proj",
    )
    fields.update(kw)
    return opconfig.OpConfig(**fields)


# render_cmd


def test_render_cmd_python_exe_and_sorted_flag_args():
    argv = opconfig.render_cmd(_config(), {"lr": 0.1, "epochs": 10, "b": "x"})
    assert argv == ["/venv/bin/python", "-u", "train.py", "--b", "x", "--epochs", "10", "--lr", "0.1"]


def test_render_cmd_booleans_yes_no_and_none_omitted():
    argv = opconfig.render_cmd(_config(), {"on": True, "off": False, "unset": None})
    assert argv[3:] == ["--off", "no", "--on", "yes"]


def test_render_cmd_strings_that_read_as_numbers_are_quoted():
    argv = opconfig.render_cmd(_config(), {"s": "1", "t": "hello world"})
    assert argv[3:] == ["--s", "'1'", "--t", "hello world"]


def test_render_cmd_flagdef_arg_options():
    defs = {
        "lr": FlagDef(name="lr", arg_name="learning-rate"),
        "secret": FlagDef(name="secret", arg_skip=True),
        "verbose": FlagDef(name="verbose", arg_switch=True),
        "quiet": FlagDef(name="quiet", arg_switch=True),
        "no_cache": FlagDef(name="no_cache", arg_switch=False),
    }
    flags = {"lr": 0.01, "secret": "s3cr3t", "verbose": True, "quiet": False, "no_cache": False}
    argv = opconfig.render_cmd(_config(flag_defs=defs), flags)
    # Sorted by flag name, not by option name.
    assert argv[3:] == ["--learning-rate", "0.01", "--no_cache", "--verbose"]


def test_render_cmd_flag_refs_inside_args():
    config = _config(cmd_args=("${python_exe}", "train.py", "--lr=${lr}", "${ on }", "out-${name}.txt", "${missing}"))
    argv = opconfig.render_cmd(config, {"lr": 0.5, "on": True, "name": "run 1"})
    assert argv == ["/venv/bin/python", "train.py", "--lr=0.5", "yes", "out-run 1.txt", ""]


def test_render_cmd_without_flag_args_passes_no_flags():
    config = _config(cmd_args=("${python_exe}", "train.py"))
    assert opconfig.render_cmd(config, {"lr": 0.5}) == ["/venv/bin/python", "train.py"]


# render_label


def test_render_label_default_is_sorted_flags():
    assert opconfig.render_label(None, [], {"lr": 0.1, "b": 2, "none": None}) == "b=2 lr=0.1"


def test_render_label_tags_in_front():
    assert opconfig.render_label(None, ["t1", "t2"], {"lr": 0.1}) == "t1 t2 lr=0.1"
    assert opconfig.render_label(None, ["t1"], {}) == "t1"
    assert opconfig.render_label(None, [], {}) == ""


def test_render_label_template():
    flags = {"x": 0.123456789, "y": "a b"}
    assert opconfig.render_label("x is ${x}", [], flags) == "x is 0.12345"
    assert opconfig.render_label("y=${y}", [], flags) == "y='a b'"
    assert opconfig.render_label("run ${default_label}", [], flags) == "run x=0.12345 y='a b'"
    assert opconfig.render_label("${x}", ["tag"], flags) == "tag 0.12345"


def test_render_label_undefined_ref_is_empty():
    assert opconfig.render_label("a-${nope}-b", [], {"x": 1}) == "a--b"
    assert opconfig.render_label("a-${none}-b", [], {"none": None}) == "a--b"


# attr form

DEFS = {
    "lr": FlagDef(name="lr", arg_name="learning-rate", type="float"),
    "secret": FlagDef(name="secret", arg_skip=True, env_name="SECRET"),
    "verbose": FlagDef(name="verbose", arg_switch=True),
    "no_cache": FlagDef(name="no_cache", arg_switch=False, type="boolean"),
    "plain": FlagDef(name="plain"),
    "items": FlagDef(name="items", arg_split=True),
}


def _full_config():
    return _config(
        flags_dest="globals",
        flag_defs=DEFS,
        op_env={"A": "1"},
        label_template="lr=${lr}",
        guild_op="train",
        cmd_dir="/proj/sub",
        project_dir="/proj",
    )


def test_to_attr_keys_guild_reads():
    attr = _full_config().to_attr()
    assert attr["op-cmd"]["cmd-args"] == ["${python_exe}", "-u", "train.py", "__flag_args__"]
    assert attr["op-cmd"]["cmd-env"] == {"A": "1"}
    assert attr["op-cmd"]["cmd-flags"]["lr"] == {"arg-name": "learning-rate", "type": "float"}
    assert attr["op-cmd"]["cmd-flags"]["secret"] == {"arg-skip": True, "env-name": "SECRET"}
    assert attr["flags-dest"] == attr["op-cmd"]["flags-dest"] == "globals"


@pytest.mark.parametrize(
    "op_cmd",
    [
        {"flags-dest": "globals", "cmd-env": {"FLAGS_DEST": "globals"}},  # as Guild 0.9 stages it
        {"cmd-env": {"FLAGS_DEST": "globals"}},
    ],
)
def test_for_attr_reads_guilds_flags_dest(op_cmd):
    attr = {"op-cmd": {"cmd-args": ["${python_exe}", "-um", "guild.op_main", "train", "__flag_args__"], **op_cmd}}
    assert opconfig.OpConfig.for_attr(attr).flags_dest == "globals"


def test_for_attr_reads_guilds_project_dir():
    # Guild 0.9 has no project-dir attr: its config dependencies are found from PROJECT_DIR.
    attr = {"op-cmd": {"cmd-args": [], "cmd-env": {"PROJECT_DIR": "/proj"}}}
    assert opconfig.OpConfig.for_attr(attr).project_dir == "/proj"


def test_attr_round_trip():
    config = _full_config()
    assert opconfig.OpConfig.for_attr(config.to_attr()) == config
    on_ray = dataclasses.replace(config, executor="ray:http://head:8265")
    assert opconfig.OpConfig.for_attr(on_ray.to_attr()) == on_ray
    assert "executor" not in config.to_attr()  # a local run's op attr is as Guild 0.9 writes it


def test_attr_round_trip_through_run_dir(tmp_path):
    config = _full_config()
    rundir.write_attrs(tmp_path, {"op": config.to_attr()})
    restored = opconfig.OpConfig.for_attr(rundir.read_attr(tmp_path, "op"))
    assert restored == config
    # A restarted run renders the same command.
    flags = {"lr": 0.1, "secret": "x", "verbose": True, "no_cache": False, "plain": 3}
    assert opconfig.render_cmd(restored, flags) == opconfig.render_cmd(config, flags)


@pytest.mark.parametrize("attr", [None, {}, "op", {"flags-dest": "args"}])
def test_for_attr_without_op_cmd_fails(attr):
    with pytest.raises(errors.FailedPrecondition) as e:
        opconfig.OpConfig.for_attr(attr)
    assert "cannot restart run" in str(e.value)


# FlagDef protos


@pytest.mark.parametrize(
    "flagdef",
    [
        FlagDef(name="x"),
        FlagDef(name="lr", default=0.1, type="float", description="Learning rate", required=True),
        FlagDef(name="opt", default="adam", choices=("adam", "sgd")),
        FlagDef(name="n", default=[1, 2], choices=(1, {"value": 2, "flags": {"a": 1}})),
        FlagDef(name="lr", arg_name="learning-rate", env_name="LR"),
        FlagDef(name="s", arg_skip=True),
        FlagDef(name="v", arg_switch=True, default=False),
        FlagDef(name="nc", arg_switch=False, default=True),
        FlagDef(name="z", arg_switch=0),
        FlagDef(name="l", default="1 2 foo", arg_split=True),
        FlagDef(name="c", arg_split=","),
    ],
)
def test_flagdef_pb_round_trip(flagdef):
    m = opconfig.flagdef_to_pb(flagdef)
    assert opconfig.flagdef_from_pb(type(m).FromString(m.SerializeToString())) == flagdef


def _full_spec():
    """A run spec with every field set, so a field one conversion drops fails the round trip."""
    return pb.RunSpec(
        op_name="train",
        opref="guildfile:/proj/guild.yml abc '' train",
        cmd_args=["${python_exe}", "-u", "train.py", "__flag_args__"],
        flags_dest="globals",
        flags_json='{"lr": 0.1}',
        user_flags_json='{"lr": 0.1}',
        flag_defs=[opconfig.flagdef_to_pb(d) for d in DEFS.values()],
        env={"PATH": "/bin"},
        op_env={"PROJECT_DIR": "/proj"},
        sourcecode=[pb.SourceFile(path="train.py", data=b"print(1)\n", mode=0o644)],
        cmd_dir="/proj/sub",
        project_dir="/proj",
        guild_op="train",
        label="lr=${lr}",
        tags=["t1"],
        stop_after=90.0,
        python_exe="/venv/bin/python",
        run_params_json='{"yes": true}',
        output_scalars_json='[{"loss": "loss: (\\\\value)"}]',
        requires_json='[{"file": "data.csv"}]',
        steps=[pb.StepSpec(spec=pb.RunSpec(op_name="prepare"))],
        sourcecode_dest="src",
        delete_on_success=True,
        compare=["loss"],
        env_secrets=["TOKEN"],
        stoppable=True,
        resources=pb.ResourceRequest(gpus=1),
        executor="ray:http://head:8265",
    )


def _run_fields(spec):
    config_fields = {
        "cmd_args", "flags_dest", "flag_defs", "op_env", "cmd_dir", "project_dir", "guild_op", "python_exe",
        "output_scalars_json", "requires_json", "sourcecode_dest", "delete_on_success", "compare",
        "env_secrets", "stoppable", "executor",
    }
    return {f.name: value for f, value in spec.ListFields() if f.name not in config_fields}


def test_full_spec_sets_every_field():
    spec = _full_spec()
    assert {f.name for f, _ in spec.ListFields()} == {f.name for f in spec.DESCRIPTOR.fields}


def test_spec_config_spec_round_trip():
    spec = _full_spec()
    config = opconfig.config_from_spec(spec)
    assert config.label_template == "lr=${lr}"
    assert config.output_scalars == [{"loss": "loss: (\\value)"}]
    assert config.requires == ({"file": "data.csv"},)
    assert opconfig.spec_from_config(config, **_run_fields(spec)) == spec


def test_config_spec_config_round_trip():
    config = dataclasses.replace(
        _full_config(), output_scalars={"loss": "loss: (\\value)"}, requires=({"file": "a"},), sourcecode_dest="src",
        delete_on_success=True, compare=("loss",), env_secrets=("TOKEN",), stoppable=True, executor="ray:http://head:8265",
    )
    assert opconfig.config_from_spec(opconfig.spec_from_config(config, label=config.label_template)) == config


def test_config_from_spec_defaults():
    config = opconfig.config_from_spec(pb.RunSpec(cmd_args=["x"]))
    assert (config.flags_dest, config.label_template, config.output_scalars, config.requires) == ("args", None, None, ())


def test_config_from_spec_refuses_bad_output_scalars_json():
    with pytest.raises(errors.InvalidArgument, match="^invalid output scalar config: "):
        opconfig.config_from_spec(pb.RunSpec(output_scalars_json="{"))
