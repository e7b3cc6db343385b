"""Guild files: formats, inheritance, includes, flag defs, optimizers, resolution, warnings.

Rows cite the doctest they come from as `L<line>` in ../shared/seeds/guild-repo-docs.txt
("Guild files" L14895, "Flag defs" L14372, "Model inheritance" L15952, "Guildfile includes"
L18949, "Steps" L33448).
"""

import hashlib
import os
import sys
import textwrap

import pytest

from guild_common import guildfile
from guild_common.errors import InvalidArgument, NotFound
from guild_common.guildfile_data import apply_parent_data


def gf_of(text, **kw):
    return guildfile.for_string(textwrap.dedent(text), **kw)


def write(root, relpath, text):
    path = root / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def ops(model):
    return list(model.operations)


def flags(op):
    return [(f.name, f.description, f.default) for f in op.flags.values()]


# Formats and models

DEFAULT_MODEL = [
    ("- model: foo\n", "foo"),  # L14976: the only model is the default
    ("- model: foo\n  default: yes\n- model: bar\n", "foo"),  # L14991
    ("- model: foo\n- model: bar\n  default: yes\n", "bar"),  # L15005
    ("- model: foo\n- model: bar\n", None),  # L15019: neither is default
    ("- config: foo\n", None),  # L15032: no models, no default
    ("- operations:\n    foo: foo\n    bar: bar\n", ""),  # L16958: anonymous model
    ("foo: foo\nbar:\n  description: Bar\n  exec: hello\n", ""),  # L16980: operations only
]


@pytest.mark.parametrize("text,expected", DEFAULT_MODEL)
def test_default_model(text, expected):
    model = gf_of(text).default_model
    assert (model.name if model else None) == expected


def test_anonymous_model_from_top_level_map():
    # L16980-L17030
    gf = gf_of(
        """
        foo: foo
        bar:
          description: Bar
          exec: hello
        """
    )
    assert list(gf.models) == [""]
    assert ops(gf.default_model) == ["bar", "foo"]
    foo, bar = gf.default_model.operations["foo"], gf.default_model.operations["bar"]
    assert (foo.description, foo.main, foo.exec) == ("", "foo", None)
    assert (bar.description, bar.main, bar.exec) == ("Bar", None, "hello")
    assert (foo.full_name, foo.model) == ("foo", "")


def test_an_op_without_main_exec_or_steps_runs_the_module_named_like_it():
    # As Guild 0.9: dashes become underscores, a `.py` suffix goes, dots stay (packages).
    gf = gf_of(
        """
        - model: m
          operations:
            train-model: {}
            prep.py: {}
            pkg.sub: {}
            shell: {exec: echo hi}
            pipe: {steps: [shell]}
            named: {main: other --x}
        """
    )
    mains = {name: op.main for name, op in gf.models["m"].operations.items()}
    assert mains == {"named": "other --x", "pipe": None, "pkg.sub": "pkg.sub", "prep.py": "prep",
                     "shell": None, "train-model": "train_model"}


def test_implicit_anonymous_model_and_default_operation():
    # L17298: an item with operations and no type is the anonymous model
    gf = gf_of("- operations:\n    test:\n      main: guild.pass\n      default: yes\n")
    assert list(gf.models) == [""]
    assert guildfile.default_operation(gf).name == "test"


def test_model_attributes_and_default_operation():
    # L15056-L15145 (mnist-pkg sample: expert has a default train op, intro none)
    gf = gf_of(
        """
        - model: expert
          description: Expert model
          operations:
            train:
              main: expert
              default: yes
            evaluate: expert --test
        - model: intro
          operations:
            train: intro
            evaluate: intro --test
        """
    )
    expert, intro = gf.models["expert"], gf.models["intro"]
    assert (expert.name, expert.description) == ("expert", "Expert model")
    assert ops(expert) == ["evaluate", "train"]  # L15082: ordered by name
    assert expert.operations["train"].default is True
    assert expert.default_operation is expert.operations["train"]
    assert intro.operations["train"].default is False
    assert intro.default_operation is None
    assert expert.operations["evaluate"].main == "expert --test"  # L15161: string = main
    assert gf.default_model is None  # L15042


def test_package_item():
    # L17052: a Guild file may contain one package definition
    gf = gf_of("- package: gpkg.hello\n  version: 0.1\n- model: model-1\n")
    assert gf.package["package"] == "gpkg.hello"
    assert list(gf.models) == ["model-1"]
    with pytest.raises(InvalidArgument, match="at most one package"):
        gf_of("- package: a\n- package: b\n")


def test_references():
    # L15821
    gf = gf_of("- model: sample\n  references:\n    - https://arxiv.org/abs/1603.05027\n")
    assert gf.models["sample"].references == ["https://arxiv.org/abs/1603.05027"]


ERRORS = [
    # L17236: invalid-format sample
    ("This is invalid YAML!\n", "invalid guildfile data 'This is invalid YAML!': expected a mapping"),
    # L17277
    ("- foo: bar\n", "missing required type (one of: config, include, model, package) in {'foo': 'bar'}"),
    # L17321
    ("op:\n  flags-import: hello\n", "invalid flags-import value 'hello': expected yes/all, no, or a list of flag names"),
    # L17338
    ("op:\n  sourcecode: 123\n", "invalid select files spec 123: expected a string, list, or mapping"),
    # Refused at load (Guild logs and skips it): a typo must fail before a run exists.
    ("op:\n  output-scalars: '((('\n", "invalid output scalar config: '(((': missing ), unterminated subpattern at position 2"),
    # L17355
    ("op:\n  flags:\n    foo:\n      choices:\n        a: 1\n", "invalid flag choice data {'a': 1}: expected a list of values or mappings"),
    # L15462
    ("test:\n  optimizer: {}\n", "missing required 'algorithm' attribute in {}"),
    # L15618
    (
        "test:\n  optimizer: gp\n  optimizers:\n    gp-2: gp\n",
        "conflicting optimizer configuration in operation 'test' - cannot define both 'optimizer' and 'optimizers'",
    ),
    # L16689, L16696
    ("- model: a\n  extends: a\n", "cycle in 'extends' (a -> a)"),
    ("- model: a\n  extends: b\n- model: b\n  extends: a\n", "cycle in 'extends' (b -> a -> b)"),
    # L15778, L15796
    (
        "- model: sample\n  resources:\n    sample:\n      sources:\n        - foo: bar.txt\n",
        "invalid source {'foo': 'bar.txt'} in resource 'sample:sample': missing required attribute "
        "(one of config, file, module, url, operation)",
    ),
    (
        "- model: sample\n  resources:\n    sample:\n      sources:\n"
        "        - file: foo.txt\n          url: http://files.com/bar.txt\n",
        "invalid source {'file': 'foo.txt', 'url': 'http://files.com/bar.txt'} in resource "
        "'sample:sample': conflicting attributes (file, url)",
    ),
    # L12407
    ("- model: m\n  resources:\n    res: 123\n", "invalid resource value 123: expected a mapping or a list"),
    # not in the docs
    ("- model: a\n  extends: nope\n", "cannot find model or config 'nope' named in 'extends'"),
    ("- model: a\n  extends: nopkg/m\n", "cannot find Guild file for package 'nopkg'"),
    ("op:\n  env: [a]\n", "invalid env value ['a']: expected a mapping"),
    ("op:\n  default-max-trials: lots\n", "invalid default-max-trials value 'lots': expected an integer"),
    ("op: 123\n", "invalid operation 'op': expected a mapping or a string, got 123"),
    ("- 123\n", "invalid guildfile data 123: expected a mapping"),
    ("- model: m\n  operations:\n    op:\n      flags:\n        $include: nope\n", "invalid $include 'nope': no model or config named 'nope'"),
]


@pytest.mark.parametrize("text,message", ERRORS)
def test_errors(text, message):
    with pytest.raises(InvalidArgument) as e:
        gf_of(text)
    assert str(e.value) == "error in <string>: " + message


def test_invalid_yaml_names_file_and_line(tmp_path):
    path = write(tmp_path, "guild.yml", "train:\n  main: train\n  flags: [\n    x: 1\n")
    with pytest.raises(InvalidArgument) as e:
        guildfile.for_dir(tmp_path)
    assert str(e.value).startswith(f"error in {path}:5: ")


def test_for_dir(tmp_path):
    assert guildfile.for_dir(tmp_path) is None
    write(tmp_path, "guild.yaml", "train: train\n")
    assert guildfile.for_dir(tmp_path).path == str(tmp_path / "guild.yaml")
    write(tmp_path, "guild.yml", "prepare: prepare\n")
    gf = guildfile.for_dir(tmp_path)
    assert (gf.path, gf.dir, ops(gf.default_model)) == (str(tmp_path / "guild.yml"), str(tmp_path), ["prepare"])


def test_load_missing_file(tmp_path):
    with pytest.raises(NotFound, match="cannot find Guild file"):
        guildfile.load(tmp_path / "guild.yml")


def test_empty_file(tmp_path):
    write(tmp_path, "guild.yml", "# nothing yet\n")
    gf = guildfile.for_dir(tmp_path)
    assert gf.models == {} and guildfile.operations(gf) == []


# Flag defs


def flagdef(yaml_text, name="flag"):
    text = "op:\n  flags:\n    %s:%s" % (name, textwrap.indent(textwrap.dedent(yaml_text), "      ") if "\n" in yaml_text else " " + yaml_text)
    return guildfile.for_string(text + "\n").default_model.operations["op"].flags[name]


SIMPLE_FLAG_VALUES = [
    ("1.123", 1.123),  # L14402
    ("1", 1),  # L14419
    ("hello", "hello"),  # L14422
    ("yes", True),  # L14425
    ("null", None),  # L14428
    ("[1,2,3]", [1, 2, 3]),  # L14431
    ("1e-4", 0.0001),  # Guild reads scientific notation without a dot as a float (L2710 lr: 1e-4)
]


@pytest.mark.parametrize("text,default", SIMPLE_FLAG_VALUES)
def test_flag_scalar_is_default(text, default):
    f = flagdef(text)
    assert f.default == default and f.type is None and f.description == ""


def test_flag_config():
    # L14445
    f = flagdef(
        """
        description: A flag
        default: 1.0
        choices: [1.0, 2.0, 3.0]
        required: yes
        arg-name: f
        null-label: should never see this
        min: 1.0
        max: 3.0
        """
    )
    assert f.description == "A flag"
    assert f.default == 1.0
    assert f.choices == (1.0, 2.0, 3.0)
    assert f.required is True
    assert f.arg_name == "f"
    assert f.null_label == "should never see this"
    assert (f.min, f.max) == (1.0, 3.0)
    assert f.extra == {}


def test_flag_extra_attributes():
    # L14499
    f = flagdef(
        """
        description: A sample
        default: 1
        min: 0
        max: 100
        distribution: log-normal
        mean: 0.0
        sigma: 2.0
        q: 1.0
        """
    )
    assert f.distribution == "log-normal"
    assert f.extra == {"mean": 0.0, "q": 1.0, "sigma": 2.0}


def test_flag_switch_skip_env_type_allow_other():
    f = flagdef(
        """
        type: int
        arg-switch: no
        arg-skip: yes
        env-name: MY_X
        allow-other: yes
        choices:
          - value: small
            description: Fast
            flags: {layers: 1}
          - 2
        """
    )
    assert (f.type, f.arg_switch, f.arg_skip, f.env_name, f.allow_other) == ("int", False, True, "MY_X", True)
    assert f.choices == ({"value": "small", "description": "Fast", "flags": {"layers": 1}}, 2)


def test_default_flag_arg_skip():
    gf = gf_of("op:\n  default-flag-arg-skip: yes\n  flags:\n    a: 1\n    b: {arg-skip: no}\n")
    fl = gf.default_model.operations["op"].flags
    assert (fl["a"].arg_skip, fl["b"].arg_skip) == (True, False)


def test_flags_sorted_by_name():
    # L15285-L15320: opdef flags and flag_values
    gf = gf_of("a:\n  exec: a\n  flags:\n    y: Y\n    x: X1\n")
    op = gf.default_model.operations["a"]
    assert list(op.flags) == ["x", "y"]
    assert op.flag_values() == {"x": "X1", "y": "Y"}


# Operation attributes

FLAGS_IMPORT = [
    ("yes", True),  # L17172: all
    ("all", True),
    ("no", []),  # L17165
    ("[]", []),
    ("[a, b]", ["a", "b"]),
    (None, None),  # unspecified: guild-file flags only (GUILD-REFERENCE §2.7)
]


@pytest.mark.parametrize("value,expected", FLAGS_IMPORT)
def test_flags_import(value, expected):
    text = "op:\n  main: op\n" + (f"  flags-import: {value}\n" if value is not None else "")
    assert gf_of(text).default_model.operations["op"].flags_import == expected


def test_operation_attributes(tmp_path):
    path = write(
        tmp_path,
        "guild.yml",
        """
        train:
          description: Train it
          main: train --epochs ${epochs}
          flags-dest: global:params
          flags-import: [lr]
          flags-import-skip: x
          flags:
            lr: 0.1
          env:
            MODE: fast
            LEVEL: 2
            FAST: yes
          env-secrets: TOKEN
          label: lr=${lr}
          default-max-trials: 7
          compare: loss
          objective:
            maximize: accuracy
          output-scalars: '^(\\key): (\\value)'
          sourcecode: ['*.py']
          requires:
            - file: data.csv
            - data
          stoppable: yes
          delete-on-success: yes
          pip-freeze: no
          default: yes
          tags: [a, b]
        """,
    )
    gf = guildfile.load(path)
    op = guildfile.resolve(gf, "train")
    assert op.description == "Train it"
    assert (op.main, op.exec, op.steps) == ("train --epochs ${epochs}", None, None)
    assert (op.flags_dest, op.flags_import, op.flags_import_skip) == ("global:params", ["lr"], ["x"])
    assert op.env == {"MODE": "fast", "LEVEL": "2", "FAST": "yes"}
    assert op.env_secrets == ["TOKEN"]
    assert op.label == "lr=${lr}"
    assert op.default_max_trials == 7
    assert op.compare == ["loss"]
    assert op.objective == {"maximize": "accuracy"}
    assert op.output_scalars == "^(\\key): (\\value)"
    assert op.sourcecode == ["*.py"]
    assert op.requires == [{"file": "data.csv"}, "data"]
    assert (op.stoppable, op.delete_on_success, op.pip_freeze, op.default) == (True, True, False, True)
    assert op.tags == ["a", "b"]
    digest = hashlib.md5(path.read_bytes()).hexdigest()
    assert op.opref == f"guildfile:{path} {digest} '' train"
    assert (op.guildfile_path, op.full_name) == (str(path), "train")
    assert gf.warnings == ()


def test_requires_forms():
    gf = gf_of("a:\n  requires: prepare\nb:\n  requires: {operation: prepare}\nc: {}\n")
    m = gf.default_model
    assert m.operations["a"].requires == ["prepare"]
    assert m.operations["b"].requires == [{"operation": "prepare"}]
    assert m.operations["c"].requires == []


def test_model_opref_and_full_name():
    gf = gf_of("- model: m 1\n  operations:\n    train: t\n")
    op = gf.models["m 1"].operations["train"]
    assert op.full_name == "m 1:train"
    assert op.opref.endswith(" 'm 1' train") and op.opref.startswith("guildfile:<string> ")


def test_steps_are_raw():
    # L33448: steps are passed through as written
    gf = gf_of("steps-basic:\n  steps:\n    - step-1\n    - run: step-2\n      name: s2\n")
    assert gf.default_model.operations["steps-basic"].steps == ["step-1", {"run": "step-2", "name": "s2"}]


def test_resources():
    # L15746: a string source is a file
    gf = gf_of(
        """
        - model: sample
          resources:
            sample:
              sources:
                - foo.txt
                - url: https://files.com/bar.tar.gz
            other:
              - operation: train
        """
    )
    res = gf.models["sample"].resources
    assert res["sample"]["sources"] == [{"file": "foo.txt"}, {"url": "https://files.com/bar.tar.gz"}]
    assert res["other"] == {"sources": [{"operation": "train"}]}
    assert gf.models["sample"].operations == {}


# Optimizers

OPTIMIZERS = [
    # L15397: a string is the algorithm; a single optimizer is the default
    ("optimizer: gp", [("gp", "gp", False, {})], "gp"),
    # L15444
    ("optimizer:\n    algorithm: gp", [("gp", "gp", False, {})], "gp"),
    # L15477: other keys are optimizer flags
    (
        "optimizer:\n    algorithm: gp\n    default: yes\n    random-starts: 3\n    kappa: 1.8\n    noise: 0.1",
        [("gp", "gp", True, {"kappa": 1.8, "noise": 0.1, "random-starts": 3})],
        "gp",
    ),
    # L15499: no default -> lowest name
    (
        "optimizers:\n    gp-2:\n      algorithm: gp\n      kappa: 1.8\n    gp-1:\n      algorithm: gp\n      kappa: 1.6",
        [("gp-1", "gp", False, {"kappa": 1.6}), ("gp-2", "gp", False, {"kappa": 1.8})],
        "gp-1",
    ),
    # L15545: the name is the algorithm when omitted
    (
        "optimizers:\n    gp:\n      kappa: 1.6\n      noise: 0.1\n    forest:\n      default: yes\n      kappa: 1.8",
        [("forest", "forest", True, {"kappa": 1.8}), ("gp", "gp", False, {"kappa": 1.6, "noise": 0.1})],
        "forest",
    ),
    # L15589: string values rename algorithms
    (
        "optimizers:\n    bayesian: skopt:gp\n    experimental: tune",
        [("bayesian", "skopt:gp", False, {}), ("experimental", "tune", False, {})],
        "bayesian",
    ),
]


@pytest.mark.parametrize("text,expected,default", OPTIMIZERS)
def test_optimizers(text, expected, default):
    op = gf_of("test:\n  " + text + "\n").default_model.operations["test"]
    assert [(o.name, o.algorithm, o.default, o.flags) for o in op.optimizers] == expected
    assert op.default_optimizer.name == default


# Inheritance

APPLY_PARENT = [
    ({"a": 1}, {}, {"a": 1}),  # L15972
    ({"a": 1, "b": 2}, {}, {"a": 1, "b": 2}),  # L15975
    ({"a": 1, "b": [1, 2, 3]}, {}, {"a": 1, "b": [1, 2, 3]}),  # L15978
    ({}, {"a": 1}, {"a": 1}),  # L15988
    ({"a": 1}, {"a": 2}, {"a": 2}),  # L15991
    ({"a": {"b": 1}}, {"a": {}}, {"a": {"b": 1}}),  # L16001
    ({"a": {"b": 2}}, {"a": {"b": 1}}, {"a": {"b": 1}}),  # L16004
    ({"a": {"b": 2, "c": 3}}, {"a": {"b": 1}}, {"a": {"b": 1, "c": 3}}),  # L16007
    ([1, 2, 3], [], []),  # L16016: lists are not extended
    ({}, {}, {}),  # L16025
    ([], [], []),  # L16027
    ({"a": [1, 2]}, {"a": [3]}, {"a": [3]}),  # lists replaced, not merged
]


@pytest.mark.parametrize("parent,child,expected", APPLY_PARENT)
def test_apply_parent_data(parent, child, expected):
    apply_parent_data(parent, child)
    assert child == expected


def test_extends_single_parent():
    # L16165: operations and description inherited, name not
    gf = gf_of(
        """
        - model: trainable
          description: A trainable model
          operations:
            train:
              exec: train
              flags:
                batch-size: 32
        - model: model-1
          extends: trainable
        """
    )
    m1 = gf.models["model-1"]
    assert (m1.name, m1.description, ops(m1)) == ("model-1", "A trainable model", ["train"])
    assert m1.operations["train"].full_name == "model-1:train"
    assert gf.default_model is None


def test_extends_two_parents_and_override():
    # L16212
    gf = gf_of(
        """
        - model: trainable
          description: A trainable model
          operations:
            train:
              exec: train
              flags:
                batch-size: 32
        - model: evaluatable
          description: An evaluatable model
          operations:
            evaluate:
              exec: train --test
        - model: model-1
          description: A trainable, evaluatable model
          extends: [trainable, evaluatable]
        - model: model-2
          extends: trainable
          operations:
            train:
              flags:
                batch-size: 16
        """
    )
    m1, m2 = gf.models["model-1"], gf.models["model-2"]
    assert ops(m1) == ["evaluate", "train"]
    assert m1.description == "A trainable, evaluatable model"
    assert m1.operations["train"].flags["batch-size"].default == 32
    assert ops(m2) == ["train"]
    assert m2.operations["train"].flags["batch-size"].default == 16
    assert m2.operations["train"].exec == "train"


def test_extends_chain():
    # L16294
    gf = gf_of(
        """
        - model: a
          operations:
            train:
              exec: train
              flags:
                f1: {description: f1 in a, default: 1}
                f2: {description: f2 in a, default: 2}
                f3: {description: f3 in a, default: 3}
        - model: b
          extends: a
          operations:
            train:
              flags:
                f2: {description: f2 in b, default: 22}
            eval:
              exec: eval
        - model: c
          extends: b
          operations:
            train:
              flags:
                f3: {description: f3 in c, default: 33}
            predict:
              main: predict
        """
    )
    assert flags(gf.models["a"].operations["train"]) == [("f1", "f1 in a", 1), ("f2", "f2 in a", 2), ("f3", "f3 in a", 3)]
    assert ops(gf.models["b"]) == ["eval", "train"]
    assert flags(gf.models["b"].operations["train"]) == [("f1", "f1 in a", 1), ("f2", "f2 in b", 22), ("f3", "f3 in a", 3)]
    assert ops(gf.models["c"]) == ["eval", "predict", "train"]
    assert flags(gf.models["c"].operations["train"]) == [("f1", "f1 in a", 1), ("f2", "f2 in b", 22), ("f3", "f3 in c", 33)]


def test_extends_empty_op_keeps_parent_op():
    gf = gf_of("- config: base\n  operations:\n    train: {main: train}\n- model: m\n  extends: base\n  operations:\n    train:\n")
    assert gf.models["m"].operations["train"].main == "train"


def test_extends_configs_diamond():
    # L16386
    gf = gf_of(
        """
        - config: a
          operations:
            a_op: {}
        - config: b
          operations:
            b_op: {}
          extends: a
        - config: c
          operations:
            c_op: {}
          extends: a
        - model: m
          extends: [b, c]
        """
    )
    assert ops(gf.models["m"]) == ["a_op", "b_op", "c_op"]
    assert list(gf.models) == ["m"]


def test_redefine_flag_defaults():
    # L16422: a scalar in the child only changes the default
    gf = gf_of(
        """
        - model: a
          operations:
            test:
              flags:
                f1: {description: Flag f1, default: 1}
                f2: {description: Flag f2, default: 2}
        - model: b
          extends: a
          operations:
            test:
              flags:
                f1: 3
                f2: 4
        """
    )
    assert flags(gf.models["a"].operations["test"]) == [("f1", "Flag f1", 1), ("f2", "Flag f2", 2)]
    assert flags(gf.models["b"].operations["test"]) == [("f1", "Flag f1", 3), ("f2", "Flag f2", 4)]


def test_include_flags_then_redefine_default():
    # L15202: intro:train includes shared flags and redefines epochs (10 from 5); the
    # description is not redefined. L15260: evaluate redefines epochs from another config.
    gf = gf_of(
        """
        - config: default-train-flags
          flags:
            batch-size: {description: Number of images per train batch, default: 100}
            clones: {description: Number of clones to deploy to}
            epochs: {description: Number of epochs to train, default: 5}
            learning-rate: {description: Learning rate for training, default: 0.001}
        - config: default-eval-flags
          flags:
            batch-size: {description: Number of images per eval batch, default: 50000}
            epochs: {description: Epochs to evaluate, default: 1}
        - model: intro
          operations:
            train:
              main: intro
              flags:
                $include: default-train-flags
                epochs: 10
            evaluate:
              main: intro --test
              flags:
                $include: default-eval-flags
                epochs: 2
        """
    )
    intro = gf.models["intro"]
    assert flags(intro.operations["train"]) == [
        ("batch-size", "Number of images per train batch", 100),
        ("clones", "Number of clones to deploy to", None),
        ("epochs", "Number of epochs to train", 10),
        ("learning-rate", "Learning rate for training", 0.001),
    ]
    assert flags(intro.operations["evaluate"]) == [
        ("batch-size", "Number of images per eval batch", 50000),
        ("epochs", "Epochs to evaluate", 2),
    ]


BASE_CONFIG = "- config: a\n  params:\n    foo: 1\n- config: b\n  params:\n    foo: 2\n"

MULTIPLE_INHERITANCE = [
    ("- model: m\n  extends: [a, b]\n  description: foo is {{foo}}\n", "foo is 1"),  # L16529
    ("- model: m\n  extends: [b, a]\n  description: foo is {{foo}}\n", "foo is 2"),  # L16543
    ("- model: m\n  extends: [b, a]\n  params:\n    foo: 3\n  description: foo is {{foo}}\n", "foo is 3"),  # L16557
]


@pytest.mark.parametrize("text,description", MULTIPLE_INHERITANCE)
def test_multiple_inheritance_earlier_parent_wins(text, description):
    assert gf_of(BASE_CONFIG + text).models["m"].description == description


PARAMS = [
    # L16464
    ("- model: m\n  params:\n    n: 10\n  description: Value of n is {{n}}\n", "m", "Value of n is 10"),
    # L16888: params may reference params
    (
        "- config: c1\n  params:\n    p1: 1\n- config: c2\n  extends: c1\n  params:\n    p2: '{{p1}} 2'\n"
        "- model: m\n  extends: c2\n  params:\n    p3: '{{p2}} 3'\n  description: Model {{p3}}\n",
        "m",
        "Model 1 2 3",
    ),
    # L16912: a cycle is left unresolved
    (
        "- config: c1\n  params:\n    p1: '{{p2}}'\n- config: c2\n  extends: c1\n  params:\n    p2: '{{p1}}'\n"
        "- model: m\n  extends: c2\n  description: Model {{p2}}\n",
        "m",
        "Model {{p1}}",
    ),
    # L16934
    ("- model: m\n  params:\n    foo: 123\n  description: Model {{foo}}\n", "m", "Model 123"),
]


@pytest.mark.parametrize("text,model,description", PARAMS)
def test_params(text, model, description):
    assert gf_of(text).models[model].description == description


def test_params_in_parents():
    # L16819, L16855
    gf = gf_of(
        """
        - model: base
          description: A v{{version}} {{type}} classifier
          params:
            version: 1
        - model: softmax
          extends: base
          params:
            type: softmax
        - model: cnn
          extends: base
          params:
            type: CNN
            version: 2
        """
    )
    descriptions = {name: m.description for name, m in gf.models.items()}
    assert descriptions == {
        "base": "A v1 {{type}} classifier",
        "softmax": "A v1 softmax classifier",
        "cnn": "A v2 CNN classifier",
    }


def test_whole_value_param_keeps_type():
    # L16482
    gf = gf_of(
        """
        - model: m
          params:
            n: 10.0
          operations:
            o:
              flags:
                n: '{{n}}'
                n_str: n is {{n}}
        """
    )
    assert gf.default_model.operations["o"].flag_values() == {"n": 10.0, "n_str": "n is 10.0"}


def test_multiple_models_example():
    # L2595: the multiple-models example (shared config, params in main, a flag override)
    gf = gf_of(
        """
        - config: mnist-base
          operations:
            train:
              description: Train the MNIST model
              main: '{{main}} --datadir data --rundir .'
              requires: data
              compare: [=epochs, train#loss as loss]
              objective:
                maximize: validate#accuracy
              flags-import: no
              flags-dest: args
              flags:
                batch-size: {description: Batch size, default: 100, required: yes}
                lr: {description: Training learning rate, default: 0.5}
          resources:
            data:
              path: data
              sources:
              - url: http://yann.lecun.com/exdb/mnist/train-images-idx3-ubyte.gz
        - model: mnist-intro
          description: MNIST model from TensorFlow intro tutorial
          extends: mnist-base
          params:
            main: intro
        - model: mnist-expert
          description: MNIST model from TensorFlow expert tutorial
          extends: mnist-base
          params:
            main: expert
          operations:
            train:
              flags:
                lr: 1e-4
        """
    )
    assert guildfile.operations(gf) == [
        ("mnist-expert:train", "Train the MNIST model"),
        ("mnist-intro:train", "Train the MNIST model"),
    ]
    expert = guildfile.resolve(gf, "mnist-expert:train")
    assert expert.main == "expert --datadir data --rundir ."
    assert (expert.flags["lr"].default, expert.flags["lr"].description) == (0.0001, "Training learning rate")
    assert expert.flags["batch-size"].required is True
    assert (expert.flags_import, expert.flags_dest, expert.requires) == ([], "args", ["data"])
    assert expert.model_resources["data"]["path"] == "data"
    assert guildfile.resolve(gf, "intro:train").main == "intro --datadir data --rundir ."
    with pytest.raises(InvalidArgument) as e:
        guildfile.resolve(gf, "mnist:train")  # L45658
    assert str(e.value) == (
        "there are multiple models that match 'mnist'\nTry specifying one of the following:\n"
        "  mnist-expert\n  mnist-intro"
    )


def test_extends_package_on_sys_path(tmp_path, monkeypatch):
    # L16647: extending `pkg/model` needs the package on sys.path
    write(tmp_path, "pkg/guild.yml", "- model: base\n  operations:\n    test: {exec: test}\n- config: c\n  operations:\n    train: {exec: train}\n")
    write(tmp_path, "proj/guild.yml", "- model: a\n  extends: pkg/base\n- model: b\n  extends: [pkg/base, pkg/c]\n")
    with pytest.raises(InvalidArgument, match="cannot find Guild file for package 'pkg'"):
        guildfile.for_dir(tmp_path / "proj")
    monkeypatch.setattr(sys, "path", [str(tmp_path)] + sys.path)
    gf = guildfile.for_dir(tmp_path / "proj")
    assert ops(gf.models["a"]) == ["test"]
    assert ops(gf.models["b"]) == ["test", "train"]


def test_extends_cycle_across_packages(tmp_path, monkeypatch):
    # L10361
    write(tmp_path, "cycle_a/guild.yml", "- model: model\n  extends: cycle_b/model\n")
    write(tmp_path, "cycle_b/guild.yml", "- model: model\n  extends: cycle_a/model\n")
    monkeypatch.setattr(sys, "path", [str(tmp_path)] + sys.path)
    with pytest.raises(InvalidArgument) as e:
        guildfile.for_dir(tmp_path / "cycle_a")
    assert str(e.value).endswith("cycle in 'extends' (cycle_b/model -> cycle_a/model -> cycle_b/model)")


# operation-defaults


def test_operation_defaults():
    # L17138: op values replace defaults whole (op2's empty flags stay empty)
    gf = gf_of(
        """
        - model: m
          operation-defaults:
            flags-dest: args
            flags-import: no
            sourcecode: no
            flags:
              f1: 1
              f2: 2
          operations:
            op1: guild.pass
            op2:
              main: guild.pass
              flags-import: all
              sourcecode: ['*.py']
              flags: {}
        """
    )
    op1, op2 = gf.models["m"].operations["op1"], gf.models["m"].operations["op2"]
    assert (op1.flags_dest, op1.flags_import, op1.sourcecode) == ("args", [], False)
    assert [(f.name, f.default) for f in op1.flags.values()] == [("f1", 1), ("f2", 2)]
    assert (op2.flags_dest, op2.flags_import, op2.sourcecode) == ("args", True, ["*.py"])
    assert op2.flags == {}


def test_operation_defaults_inherited():
    # L17204
    gf = gf_of(
        """
        - config: base
          operation-defaults:
            flags:
              f1: 1
              f2: 2
        - model: m
          extends: base
          operations:
            op1: guild.pass
        """
    )
    assert gf.models["m"].operations["op1"].flag_values() == {"f1": 1, "f2": 2}


# $include


def test_include_operations_from_config():
    # L15664
    gf = gf_of(
        """
        - config: shared-ops
          operations:
            foo:
              main: guild.pass
              flags:
                i: 1
                f: 2.2
            bar: guild.pass
        - model: m
          operations:
            $include: shared-ops
            baz:
              main: guild.pass
              flags:
                b: yes
        """
    )
    m = gf.models["m"]
    assert list(gf.models) == ["m"]
    assert ops(m) == ["bar", "baz", "foo"]
    assert list(m.operations["bar"].flags) == []
    assert list(m.operations["baz"].flags) == ["b"]
    assert list(m.operations["foo"].flags) == ["f", "i"]


def test_include_flags_resources_and_step_flags():
    # L15847, L15887, L15913
    gf = gf_of(
        """
        - config: shared-flags
          flags:
            foo: 123
            bar: 456
        - config: shared-resources
          resources:
            r1:
              - file: a.txt
        - config: shared-flag-vals
          flags:
            foo: 123
            bar: 345
        - operations:
            op:
              main: guild.pass
              flags:
                $include: shared-flags
                foo: 1
            steps:
              steps:
                - run: op
                  flags:
                    $include: shared-flag-vals
                    bar: 456
          resources:
            $include: shared-resources
        """
    )
    m = gf.default_model
    assert m.operations["op"].flag_values() == {"bar": 456, "foo": 1}  # local keys win
    assert m.operations["steps"].steps == [{"run": "op", "flags": {"bar": 456, "foo": 123}}]
    assert list(m.resources) == ["r1"]


def test_selective_flag_includes():
    # L16712 (inherit-and-include sample): cfg#a-1 and model:op#m-1,m-3
    gf = gf_of(
        """
        - config: a-flags
          flags:
            a-1: 1
            a-2: 2
        - config: c-flags
          flags:
            c-1: 111
            c-2: 222
        - model: m2
          operations:
            op:
              flags:
                m-1: 1111
                m-2: 2222
                m-3: 3333
        - model: m3
          operations:
            op:
              flags:
                $include:
                  - a-flags#a-1
                  - c-flags
                  - m2:op#m-1,m-3
        """
    )
    assert [(f.name, f.default) for f in gf.models["m3"].operations["op"].flags.values()] == [
        ("a-1", 1),
        ("c-1", 111),
        ("c-2", 222),
        ("m-1", 1111),
        ("m-3", 3333),
    ]


def test_include_cycle():
    with pytest.raises(InvalidArgument, match=r"cycle in '\$include' \(a -> b -> a\)"):
        gf_of("- config: a\n  flags: {$include: b}\n- config: b\n  flags: {$include: a}\n- operations:\n    op:\n      flags: {$include: a}\n")


# Top-level includes


def test_include_file(tmp_path):
    # L18961: the include item is replaced by the included file's items
    write(tmp_path, "common.yml", "- config: base\n  operations:\n    op1: {exec: op1}\n    op2: {exec: op2}\n")
    a = write(tmp_path, "a.yml", "- include: common.yml\n- model: a\n  extends: [base]\n")
    gf = guildfile.load(a)
    assert ops(gf.models["a"]) == ["op1", "op2"]
    assert gf.data == [
        {"config": "base", "operations": {"op1": {"exec": "op1"}, "op2": {"exec": "op2"}}},
        {"model": "a", "extends": ["base"]},
    ]


def test_include_list_and_chain(tmp_path):
    # L19002, L19024
    write(tmp_path, "c1.yml", "- model: a\n  operations: {op1: op1}\n")
    write(tmp_path, "sub/c2.yml", "- include: c3.yml\n- model: b\n")
    write(tmp_path, "sub/c3.yml", "- model: c\n")
    path = write(tmp_path, "guild.yml", "- include: [c1.yml, sub/c2.yml]\n")
    assert sorted(guildfile.load(path).models) == ["a", "b", "c"]


INCLUDE_CYCLES = [
    # L19041
    ({"a.yml": "- include: b.yml\n", "b.yml": "- include: a.yml\n"}, "a.yml", "a.yml (a.yml -> b.yml -> a.yml)"),
    # L19055
    ({"a.yml": "- include: b.yml\n", "b.yml": "- include: a.yml\n"}, "b.yml", "b.yml (b.yml -> a.yml -> b.yml)"),
    # L19069
    ({"a.yml": "- include: a.yml\n"}, "a.yml", "a.yml (a.yml -> a.yml)"),
]


@pytest.mark.parametrize("files,top,chain", INCLUDE_CYCLES)
def test_include_cycles(tmp_path, files, top, chain):
    for name, text in files.items():
        write(tmp_path, name, text)
    with pytest.raises(InvalidArgument) as e:
        guildfile.load(tmp_path / top)
    assert str(e.value).endswith("cycle in 'includes': " + chain)


def test_bad_include(tmp_path):
    # L19132
    path = write(tmp_path, "guild.yml", "- include: bad.yml\n")
    with pytest.raises(InvalidArgument) as e:
        guildfile.load(path)
    assert str(e.value) == (
        f"error in {path}: cannot find include 'bad.yml' (includes must be local to including "
        "Guild file or a Guild package on the system path)"
    )


def test_include_package_on_sys_path(tmp_path, monkeypatch):
    # L19095
    write(tmp_path, "libs/mnist-pkg/guild.yml", "- model: expert\n- model: intro\n")
    path = write(tmp_path, "proj/guild.yml", "- include: mnist-pkg\n- model: b\n")
    with pytest.raises(InvalidArgument, match="cannot find include 'mnist-pkg'"):
        guildfile.load(path)
    monkeypatch.setattr(sys, "path", [str(tmp_path / "libs")] + sys.path)
    assert sorted(guildfile.load(path).models) == ["b", "expert", "intro"]


# Resolution

RESOLVE_PROJECT = """
- model: m1
  default: yes
  operations:
    train: {main: train, default: yes}
    prepare: prepare
- model: other
  operations:
    evaluate: evaluate
    train: train2
"""

RESOLVE = [
    ("train", "m1:train"),  # the default model
    ("m1:train", "m1:train"),
    ("other:train", "other:train"),
    ("oth:evaluate", "other:evaluate"),  # a partial model name that matches one model
    (None, "m1:train"),  # the default operation
    ("", "m1:train"),
]


@pytest.mark.parametrize("opspec,full_name", RESOLVE)
def test_resolve(opspec, full_name):
    assert guildfile.resolve(gf_of(RESOLVE_PROJECT), opspec).full_name == full_name


def test_resolve_anonymous_model():
    gf = gf_of("train: {main: train, default: yes}\nprepare: prepare\n")
    assert guildfile.resolve(gf, "prepare").full_name == "prepare"
    assert guildfile.resolve(gf, ":prepare").full_name == "prepare"
    assert guildfile.resolve(gf).name == "train"


RESOLVE_ERRORS = [
    (
        "evaluate",
        NotFound,
        "operation 'evaluate' is not defined for this project\nOperations defined here:\n"
        "  m1:prepare\n  m1:train\n  other:evaluate\n  other:train",
    ),
    ("m1:nope", NotFound, "operation 'nope' is not defined for model 'm1'\nOperations of this model:\n  prepare\n  train"),
    ("zzz:train", NotFound, "cannot find a model matching 'zzz'\nModels defined here:\n  m1\n  other"),
    ("a:b:c", InvalidArgument, "invalid operation spec 'a:b:c'"),
    (":train", NotFound, "operation ':train' is not defined for this project\nOperations defined here:\n  m1:prepare\n  m1:train\n  other:evaluate\n  other:train"),
]


@pytest.mark.parametrize("opspec,cls,message", RESOLVE_ERRORS)
def test_resolve_errors(opspec, cls, message):
    with pytest.raises(cls) as e:
        guildfile.resolve(gf_of(RESOLVE_PROJECT), opspec)
    assert str(e.value) == message


def test_no_default_operation():
    # L38406
    with pytest.raises(NotFound) as e:
        guildfile.resolve(gf_of("a: a\nb: b\n"))
    assert str(e.value) == "cannot find a default operation\nTry 'guildctl operations' for a list."


def test_default_operation_without_default_model():
    # the one operation marked default, when no model is the default
    gf = gf_of("- model: a\n  operations: {x: {main: x, default: yes}}\n- model: b\n  operations: {y: y}\n")
    assert guildfile.resolve(gf).full_name == "a:x"


def test_operations_listing():
    gf = gf_of("train:\n  description: Train\n  main: t\nprepare: p\n")
    assert guildfile.operations(gf) == [("prepare", ""), ("train", "Train")]


def test_unknown_op_in_empty_project():
    with pytest.raises(NotFound) as e:
        guildfile.resolve(gf_of("- config: c\n"), "train")
    assert str(e.value) == "operation 'train' is not defined for this project\n<string> defines no operations"


# Warnings for unknown attributes


def test_unknown_attribute_warnings(tmp_path):
    write(tmp_path, "shared.yml", "- config: base\n  operations:\n    ev:\n      mian: ev\n")
    path = write(
        tmp_path,
        "guild.yml",
        """
        - include: shared.yml
        - model: m
          descripton: typo
          operation-defaults:
            flag-dest: args
          operations:
            train:
              main: train
              flgas:
                lr: 0.1
              flags:
                x:
                  defualt: 1
                  type: integer
                  mean: 0.0
        - operations:
            hello:
              exce: echo hi
        """,
    )
    gf = guildfile.load(path)
    assert list(gf.warnings) == [
        "shared.yml: unknown attribute 'mian' in operation 'ev' of config 'base' (did you mean 'main'?)",
        "guild.yml: unknown attribute 'descripton' in model 'm' (did you mean 'description'?)",
        "guild.yml: unknown attribute 'flag-dest' in operation-defaults of model 'm' (did you mean 'flags-dest'?)",
        "guild.yml: unknown attribute 'flgas' in operation 'm:train' (did you mean 'flags'?)",
        "guild.yml: unknown attribute 'defualt' in flag 'x' of operation 'm:train' (did you mean 'default'?)",
        "guild.yml: unknown type 'integer' for flag 'x' of operation 'm:train' "
        "(expected one of string, number, float, int, boolean, path, existing-path, auto)",
        "guild.yml: unknown attribute 'exce' in operation 'hello' (did you mean 'exec'?)",
    ]
    # The misspelt attributes are ignored, as Guild ignores them.
    assert gf.models["m"].operations["train"].flags["x"].default is None


def test_operations_only_warning(tmp_path):
    path = write(tmp_path, "guild.yml", "train:\n  main: train\n  flgas:\n    lr: 0.1\n")
    assert guildfile.load(path).warnings == (
        "guild.yml: unknown attribute 'flgas' in operation 'train' (did you mean 'flags'?)",
    )


def test_model_defined_twice_warns(tmp_path):
    path = write(tmp_path, "guild.yml", "- model: m\n  operations: {a: a}\n- model: m\n  operations: {b: b}\n")
    gf = guildfile.load(path)
    assert ops(gf.models["m"]) == ["b"]
    assert gf.warnings == ("guild.yml: model 'm' is defined more than once; the last one is used",)


def test_no_warnings_for_known_attributes(tmp_path):
    path = write(
        tmp_path,
        "guild.yml",
        """
        - model: m
          description: d
          params: {p: 1}
          sourcecode: ['*.py']
          resources: {data: [{file: x}]}
          operations:
            t:
              exec: ${python_exe} t.py
              optimizers: {gp: {kappa: 1}}
              flags:
                lr: {default: 1, distribution: log-uniform, arg-split: yes}
        """,
    )
    gf = guildfile.load(path)
    assert gf.warnings == ()
    assert gf.models["m"].operations["t"].model_sourcecode == ["*.py"]
    assert os.path.isabs(gf.path)


def test_an_ops_resources_are_its_gpus_and_its_ray_jobs_cpus_and_memory():
    gf = gf_of("""
    train:
      main: train
      gpus: 2
      gpu-memory: 20G
      cpus: 0.5
      memory: 4G
    eval:
      main: eval
    """)
    assert gf.default_model.operations["train"].resources == {"gpus": 2, "gpu-memory": "20G", "cpus": 0.5, "memory": "4G"}
    assert gf.default_model.operations["eval"].resources == {"gpus": None, "gpu-memory": None, "cpus": None, "memory": None}
