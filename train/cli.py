"""One runner for the command lines (train.shakespeare, train.sample, train.visualize), on jsonargparse.

A CLI's flags are the fields of its dataclass in train/config.py, typed by their annotations:
``ArgumentParser(SampleConfig, ...)`` gives ``--out_dir``, ``--ckpt``, ... and every CLI also takes

    --config FILE     a JSON file of {field: value} (YAML when the name ends in .yaml or .yml)
    --print_config    print the resolved config as YAML (a valid --config file) and exit
    --debug           tracebacks instead of one-line errors
    --preset NAME     (train only) the recipe the config file and the flags start from

Flags and --config files apply in the order given, a later one winning (jsonargparse's rule); a preset
sits below both. The parser checks what the user gave itself before jsonargparse sees it (unknown flags
and keys, each value against its field's annotation, required fields, a config file's shape), so every
mistake becomes a ``ConfigError`` whose one line names the field, the value (and the file), in our own
words rather than jsonargparse's, which ``run`` prints as ``error: ...`` with exit status 2. What
jsonargparse still refuses (a flag without its value) comes through as its own message on one line.
"""

import dataclasses
import difflib
import json
import math
import os
import sys
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable, Literal, Optional

import jsonargparse
import yaml

from tinygrad_tx.errors import AnomalyError, TinygradTxError
from train.config import DEFAULT_PRESET, PRESETS, ConfigError, SampleConfig, TrainConfig, VisualizeConfig, make_config

# A parser mode of our own, so that a --config file named *.json is read as JSON (jsonargparse reads every file
# as YAML, which takes the invalid JSON {n_layer: 2}). Values on the command line are read as jsonargparse does.
CONFIG_FILE_MODE = "tinygrad_tx"
_read_yaml = jsonargparse.get_loader("yaml")


def _read_config_text(text: str, path: str = "") -> Any:
    if not path:
        return _read_yaml(text)
    file_format = "YAML" if str(path).endswith((".yaml", ".yml")) else "JSON"
    try:
        return _read_yaml(text) if file_format == "YAML" else json.loads(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:  # a ConfigError passes through jsonargparse to ConfigFile
        raise ConfigError(f"not valid {file_format}: {str(exc).splitlines()[0]}") from None


jsonargparse.set_loader(CONFIG_FILE_MODE, _read_config_text, exceptions=(yaml.YAMLError,))


@dataclass
class CommandLine:
    config: Any  # the CLI's dataclass (TrainConfig, SampleConfig, VisualizeConfig), resolved
    explicit: dict  # the values given in config files or flags (for training, they win over a checkpoint's)
    resume: bool  # train only: continue the run in out_dir
    print_config: bool
    overwrite: bool = False  # train only: replace the run in out_dir


class ArgumentParser(jsonargparse.ArgumentParser):
    """jsonargparse's parser with one-line ConfigErrors instead of a usage dump and sys.exit."""

    def __init__(self, schema: type, prog: str, description: str, presets: Optional[dict] = None) -> None:
        super().__init__(
            prog=prog,
            description=description,
            exit_on_error=False,
            print_config=None,
            allow_abbrev=False,
            parser_mode=CONFIG_FILE_MODE,
            env_prefix=False,
        )
        self.schema, self.types = schema, typing.get_type_hints(schema)
        self.add_argument(
            "--config",
            action=ConfigFile,
            help="JSON or YAML file of values (keys as the flags "
            "below); flags and files apply in the order given, a later one winning",
        )
        self.add_argument("--print_config", action="store_true", help="print the resolved config as YAML and exit")
        self.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
        if presets:
            self.add_argument(
                "--preset",
                type=str,
                default=DEFAULT_PRESET,
                help=f"{' or '.join(presets)}: the values "
                "the config file and flags start from (type: %(type)s, default: %(default)s)",
            )
        for spec in dataclasses.fields(schema):
            self._add_field(spec, presets or {})

    def _add_field(self, spec: dataclasses.Field, presets: dict) -> None:
        kind, required = self.types[spec.name], spec.default is dataclasses.MISSING
        default = "" if required else ", default: %(default)s"
        in_presets = "".join(
            f"; {name}: {json.dumps(values[spec.name])}" for name, values in presets.items() if spec.name in values
        )
        flag: dict[str, Any] = {"nargs": "?", "const": True} if kind is bool else {}  # --bias means --bias true
        self.add_argument(  # a required field is checked by given_values, with the config files seen
            f"--{spec.name}",
            type=kind,
            **flag,
            default=None if required else spec.default,
            help=f"{spec.metadata.get('help', '')} (type: %(type)s{default}{in_presets})",
        )

    def error(self, message: str, ex: Optional[Exception] = None) -> typing.NoReturn:
        """What jsonargparse finds that our own checks did not (e.g. a flag without its value), as one line."""
        raise ConfigError(one_line(message)) from None

    def given_values(self, argv: Sequence[str]) -> tuple[dict, dict]:
        """(the schema's fields given in ``argv`` and its --config files, the other flags given: --resume, ...)."""
        self.check_command_line(argv)
        try:
            given = self.parse_args(list(argv), defaults=False).as_dict()
        except (TypeError, KeyError) as exc:  # jsonargparse's final check, outside its error()
            raise ConfigError(one_line(str(exc))) from None
        fields = {name: given.pop(name) for name in list(given) if name in self.types}
        missing = [name for name in self.required if name not in fields]
        if missing:
            raise ConfigError("the following arguments are required: " + ", ".join(f"--{name}" for name in missing))
        return fields, given

    @property
    def required(self) -> list[str]:
        return [spec.name for spec in dataclasses.fields(self.schema) if spec.default is dataclasses.MISSING]

    def check_command_line(self, argv: Sequence[str]) -> None:
        """Refuse unknown flags, then a field's value that does not fit its annotation, before parsing."""
        flags: list[tuple[Any, list[str], list[str]]] = []  # (action or None, its tokens, the values they hold)
        for token in argv:
            if token.startswith("--") and token != "--":
                flag, has_value, text = token.partition("=")
                flags.append((self._option_string_actions.get(flag), [token], [text] if has_value else []))
            elif flags:
                flags[-1][1].append(token)
                flags[-1][2].append(token)
        unknown = [tokens for action, tokens, _ in flags if action is None]
        if unknown:
            flag = unknown[0][0].partition("=")[0]
            close = difflib.get_close_matches(flag, [o for o in self._option_string_actions if o.startswith("--")], 1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError("unrecognized arguments: " + " ".join(" ".join(tokens) for tokens in unknown) + hint)
        for action, _, values in flags:
            # a switch (--debug; --bias alone means --bias true) holds no value; two are argparse's to refuse
            if action.dest in self.types and action.nargs != 0 and len(values) == 1:
                check_value(action.dest, self.types[action.dest], _read_flag_value(values[0]), values[0])

    def check_config_values(self, values: Any) -> None:
        """A --config file's content: a mapping whose keys are flags of this parser and whose values fit."""
        if not isinstance(values, dict):
            raise ConfigError("must hold a mapping of names to values")
        known = {action.dest for action in self._actions} - {"help", "config"}
        for name, value in values.items():
            if name not in known:
                raise ConfigError(f"unknown key {name!r}; see --help for the names")
            if name in self.types:
                check_value(name, self.types[name], value)


class ConfigFile(jsonargparse.ActionConfigFile):
    """--config FILE (or an inline mapping), checked by the parser first so its errors name the file."""

    def __call__(self, parser, namespace, path, option_string=None):
        try:
            if os.path.isfile(path):
                with open(path, encoding="utf-8") as file:
                    values = _read_config_text(file.read(), path)
            else:
                try:
                    values = _read_config_text(path)
                except yaml.YAMLError:
                    values = None
                if not isinstance(values, dict):  # neither a file nor a mapping written inline
                    raise ConfigError("no such file")
            parser.check_config_values(values)
            super().__call__(parser, namespace, path, option_string)
            parser.validate(namespace, skip_required=True)
        except ConfigError as exc:
            raise ConfigError(f"config file {path!r}: {exc}") from None
        except (TypeError, KeyError) as exc:
            raise ConfigError(f"config file {path!r}: {one_line(str(exc))}") from None


def _read_flag_value(text: str) -> Any:
    """A flag's text as jsonargparse reads it: YAML (2 -> int, 2.5 -> float, true -> bool, null -> None)."""
    try:
        return _read_yaml(text)
    except yaml.YAMLError:
        return text


def _fits(kind: Any, value: Any, text: Optional[str]) -> bool:
    """Whether ``value`` (or, from the command line, its ``text``) is one of the values ``kind`` allows."""
    if typing.get_origin(kind) is typing.Union:
        return any(_fits(option, value, text) for option in typing.get_args(kind))
    if typing.get_origin(kind) is Literal:  # typed: as written; in a file: equal (zero: true is zero: 1)
        choices = typing.get_args(kind)
        return any(str(choice) == text for choice in choices) if text is not None else value in choices
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return True
        return text is not None and _finite_number(text)  # -.5 (inf and nan as words are refused)
    if kind is type(None):
        return value is None
    return text is not None or isinstance(value, str)  # text: anything typed, a string in a file


def _finite_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def check_value(name: str, kind: Any, value: Any, text: Optional[str] = None) -> None:
    """ConfigError ``<name> must be <what kind allows>, got <value>`` unless ``value`` fits ``kind``."""
    if not _fits(kind, value, text):
        given = _as_given(text) if text is not None else repr(value) if isinstance(value, str) else str(value)
        raise ConfigError(f"{name} must be {_expected(kind)}, got {given}")


def _expected(kind: Any) -> str:
    """'an integer', 'a finite number', 'one of char, bpe', ... for a field's annotation."""
    if typing.get_origin(kind) is typing.Union:
        return " or ".join(_expected(option) for option in typing.get_args(kind))
    if typing.get_origin(kind) is Literal:
        return "one of " + ", ".join(map(str, typing.get_args(kind)))
    return {int: "an integer", float: "a finite number", bool: "true or false", str: "text", type(None): "null"}.get(
        kind, str(kind)
    )


def _as_given(text: str) -> str:
    """A value as the user typed it: a number (inf and nan included) bare, anything else quoted."""
    try:
        float(text)
        return text
    except ValueError:
        return repr(text)


def one_line(message: str) -> str:
    """Another library's (possibly multi-line) message on one line, its words unchanged."""
    return " ".join(message.split())


def dump(config: Any) -> str:
    """``config`` as the YAML that ``--config`` reads back."""
    return yaml.safe_dump(dataclasses.asdict(config), sort_keys=False, allow_unicode=True)


def training_parser() -> ArgumentParser:
    parser = ArgumentParser(
        TrainConfig,
        "python -m train.shakespeare",
        "Train a GPT on a text file (default: Tiny Shakespeare), nanoGPT style.",
        presets=PRESETS,
    )
    parser.add_argument("--resume", action="store_true", help="continue the run in --out_dir from ckpt_last.npz")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="start a new run in an --out_dir that already holds one, replacing its checkpoints and metrics",
    )
    return parser


def sampling_parser() -> ArgumentParser:
    return ArgumentParser(
        SampleConfig, "python -m train.sample", "Generate text from a checkpoint of python -m train.shakespeare."
    )


def visualize_parser() -> ArgumentParser:
    return ArgumentParser(
        VisualizeConfig,
        "python -m train.visualize",
        "Attention heatmaps of a trained GPT, one PNG per layer with its heads in a grid.",
    )


def parse_command_line(argv: Sequence[str]) -> CommandLine:
    """argv of python -m train.shakespeare -> CommandLine with a validated TrainConfig: the preset's values under
    the given ones. Raises ConfigError for anything invalid."""
    values, flags = training_parser().given_values(argv)
    config = make_config(flags.get("preset", DEFAULT_PRESET), values)
    return CommandLine(
        config, values, flags.get("resume", False), flags.get("print_config", False), flags.get("overwrite", False)
    )


def parse(parser: ArgumentParser, argv: Sequence[str]) -> CommandLine:
    """argv -> CommandLine whose config is ``parser``'s dataclass: its defaults with the given values on top."""
    values, flags = parser.given_values(argv)
    return CommandLine(parser.schema(**values), values, False, flags.get("print_config", False))


def run(command: Callable[[], int], argv: Sequence[str]) -> int:
    """``command()``, with a user mistake (a TinygradTxError, an unreadable file) printed as one ``error: ...``
    line and exit status 2, or 1 for a NaN/Inf caught by anomaly mode; ``--debug`` in argv re-raises it."""
    try:
        return command()
    except (TinygradTxError, AnomalyError, OSError) as exc:
        if "--debug" in argv:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 1 if isinstance(exc, AnomalyError) else 2
