"""train/cli.py: the jsonargparse runner behind train.shakespeare, train.sample and train.visualize.

The error catalogue's entries are in test_errors_cli.py; here: flags come from the dataclasses, --config and
--print_config round-trip, the order of flags and files, presets, and one-line errors for what jsonargparse finds.
"""

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Literal, Optional

import pytest

from train import cli, sample, shakespeare, visualize
from train.config import ConfigError, SampleConfig, TrainConfig, VisualizeConfig, make_config, validate


def error_line(capsys, main, argv):
    """The one stderr line of a CLI run that must fail with exit status 2."""
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0][len("error: ") :]


def printed_config(capsys, main, argv):
    assert main([*argv, "--print_config"]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("schema", [TrainConfig, SampleConfig, VisualizeConfig])
def test_every_field_of_the_schema_is_a_flag_with_a_help_text(schema):
    parser = cli.ArgumentParser(schema, "prog", "description")
    flags = {option for action in parser._actions for option in action.option_strings}
    assert {f"--{spec.name}" for spec in dataclasses.fields(schema)} <= flags
    assert [spec.name for spec in dataclasses.fields(schema) if not spec.metadata.get("help")] == []


def test_a_new_field_is_a_typed_flag_and_a_config_key(tmp_path):
    @dataclass
    class Schema:
        name: str = field(metadata={"help": "required: no default"})
        width: int = field(default=3, metadata={"help": "an integer"})
        mode: Literal["a", "b"] = field(default="a", metadata={"help": "a choice"})
        scale: Optional[float] = field(default=None, metadata={"help": "a number or null"})
        verbose: bool = field(default=False, metadata={"help": "a switch"})

    parser = cli.ArgumentParser(Schema, "prog", "description")
    assert cli.parse(parser, ["--name", "x"]).config == Schema(name="x")
    file = tmp_path / "values.yaml"
    file.write_text("width: 5\nscale: 0.5\n")
    command = cli.parse(parser, ["--name", "x", "--config", str(file), "--mode", "b", "--verbose"])
    assert command.config == Schema(name="x", width=5, mode="b", scale=0.5, verbose=True)
    assert command.explicit == {"name": "x", "width": 5, "scale": 0.5, "mode": "b", "verbose": True}
    for argv, message in [
        ([], "the following arguments are required: --name"),
        (["--name", "x", "--width", "wide"], "width must be an integer, got 'wide'"),
        (["--name", "x", "--width", "2.5"], "width must be an integer, got 2.5"),
        (["--name", "x", "--mode", "c"], "mode must be one of a, b, got 'c'"),
        (["--name", "x", "--scale", "big"], "scale must be a finite number or null, got 'big'"),
        (["--name", "x", "--verbose", "maybe"], "verbose must be true or false, got 'maybe'"),
    ]:
        with pytest.raises(ConfigError) as caught:
            cli.parse(parser, argv)
        assert str(caught.value) == message


@pytest.mark.parametrize(
    "main, argv",
    [
        (shakespeare.main, ["--preset", "baby", "--n_layer", "2", "--device", "CUDA"]),
        (sample.main, ["--top_p", "0.9", "--prompt", "ROMEO:\n"]),
        (visualize.main, ["--checkpoint", "last"]),
    ],
    ids=["train", "sample", "visualize"],
)
def test_print_config_is_a_config_file_that_reads_back_the_same(capsys, tmp_path, main, argv):
    run = tmp_path / "run"  # holds no run: sample and visualize would fail, train would create it
    printed = printed_config(capsys, main, [*argv, "--out_dir", str(run)])
    file = tmp_path / "printed.yaml"
    file.write_text(printed, encoding="utf-8")
    assert printed_config(capsys, main, ["--config", str(file)]) == printed
    assert not run.exists()


def test_print_config_shows_the_preset_and_the_resolved_device(capsys):
    printed = printed_config(capsys, shakespeare.main, ["--preset", "baby", "--n_layer", "2", "--device", "CUDA"])
    assert "n_layer: 2\n" in printed and "n_embd: 384\n" in printed and "device: gpu\n" in printed


def test_flags_and_config_files_apply_in_order_above_the_preset(tmp_path):
    file = tmp_path / "run.json"
    file.write_text(json.dumps({"preset": "baby", "n_layer": 2, "max_iters": 300}))
    config = cli.parse_command_line(["--max_iters", "7", "--config", str(file), "--n_layer", "3"]).config
    assert (config.max_iters, config.n_layer, config.n_embd) == (300, 3, 384)


def test_boolean_flags_alone_or_with_a_value():
    assert cli.parse_command_line(["--bias"]).config.bias is True
    assert cli.parse_command_line(["--bias", "--eval_full_val", "false"]).config.eval_full_val is False
    assert cli.parse_command_line(["--decay_lr=False"]).config.decay_lr is False


def test_abbreviated_flags_are_refused(capsys):
    expected = "unrecognized arguments: --n_lay 2 (did you mean --n_layer?)"  # difflib's nearest flag (issue 24)
    assert error_line(capsys, shakespeare.main, ["--n_lay", "2"]) == expected


def test_config_file_problems_name_the_file(capsys, tmp_path):
    as_yaml = tmp_path / "ok.yaml"
    as_yaml.write_text("{n_layer: 2, n_head: 2}")  # YAML, though not JSON
    assert cli.parse_command_line(["--config", str(as_yaml)]).config.n_layer == 2
    missing, numbers = tmp_path / "missing.yaml", tmp_path / "list.json"
    numbers.write_text("[1, 2]")
    assert error_line(capsys, shakespeare.main, ["--config", str(missing)]) == f"config file '{missing}': no such file"
    assert (
        error_line(capsys, sample.main, ["--config", str(numbers)])
        == f"config file '{numbers}': must hold a mapping of names to values"
    )
    assert (
        error_line(capsys, visualize.main, ["--config", '{"out_dir": "x", "zoom": 2}'])
        == """config file '{"out_dir": "x", "zoom": 2}': unknown key 'zoom'; see --help for the names"""
    )


def test_visualize_without_out_dir_is_one_line(capsys):
    assert error_line(capsys, visualize.main, ["--prompt", "x"]) == "the following arguments are required: --out_dir"


def test_an_unforeseen_message_is_still_one_line():
    assert cli.one_line("something\n  went\n  wrong") == "something went wrong"


def test_validate_leaves_the_callers_config_alone():
    config = TrainConfig(device="CUDA")
    validate(config)
    assert config.device == "CUDA"
    resolved = make_config(overrides=dataclasses.asdict(config))
    assert resolved.device == "gpu" and config.device == "CUDA"
