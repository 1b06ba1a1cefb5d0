"""One source of truth for the settings the extension and the construct share: the construct's variable names,
defaults, ranges and rules (``invocation_history_cdk.settings``) against the extension's own
(``extension_src/src/config.rs``, its constants and ``int_in`` calls, parsed here) and against the configuration
reference (``docs/configuration.md``). A change on one side that is not made on the others fails here."""

from __future__ import annotations

import re

import pytest

from invocation_history_cdk import settings

from .conftest import REPO_ROOT

CONFIG_RS = (REPO_ROOT / "extension_src" / "src" / "config.rs").read_text()
CONFIGURATION_MD = (REPO_ROOT / "docs" / "configuration.md").read_text()


def _rust_int(expr: str) -> int:
    """A Rust integer constant expression of literals and shifts, e.g. ``64 << 20`` or ``10_000``."""
    expr = expr.strip().replace("_", "")
    match = re.fullmatch(r"(\d+)(?:\s*<<\s*(\d+))?", expr)
    assert match, f"not an integer expression: {expr!r}"
    return int(match.group(1)) << int(match.group(2) or 0)


def _rust_constants(source: str) -> dict[str, object]:
    """``const NAME: TYPE = VALUE;`` of config.rs: text, integers, 3-tuples of integers, and Durations in ms."""
    constants: dict[str, object] = {}
    for name, value in re.findall(r"^(?:pub )?const (\w+): [^=]+= (.+?);$", source, re.M):
        if value.startswith('"'):
            constants[name] = value.strip('"')
        elif value.startswith("("):
            constants[name] = tuple(_rust_int(part) for part in value.strip("()").split(","))
        elif duration := re.fullmatch(r"Duration::from_(secs|millis)\((\d+)\)", value):
            constants[name] = int(duration.group(2)) * (1000 if duration.group(1) == "secs" else 1)
        elif re.fullmatch(r"[\d_ <]+", value):
            constants[name] = _rust_int(value)
    return constants


RUST = _rust_constants(CONFIG_RS)


def _resolve(symbol: str, source: str) -> int:
    """An ``int_in`` argument: a literal, a constant, a tuple constant's field, or a local bound to one of those."""
    symbol = symbol.strip()
    if re.fullmatch(r"[\d_]+", symbol):
        return _rust_int(symbol)
    if field := re.fullmatch(r"(\w+)\.(\d)", symbol):
        return RUST[field.group(1)][int(field.group(2))]
    if symbol in RUST:
        return RUST[symbol]
    # let (lo, hi, default) = CONST;
    for names, constant in re.findall(r"let \(([\w, ]+)\) = (\w+);", source):
        names = [n.strip() for n in names.split(",")]
        if symbol in names:
            return RUST[constant][names.index(symbol)]
    # let default_wait_ms = u64::try_from(DURATION.as_millis())...;
    if millis := re.search(rf"let {symbol} = \w+::try_from\((\w+)\.as_millis\(\)\)", source):
        return RUST[millis.group(1)]
    raise AssertionError(f"config.rs: cannot resolve {symbol!r}")


def _rust_ranges(source: str) -> dict[str, tuple[int, int, int]]:
    """Each integer variable the extension reads (``int_in(ENV_..., least, most, default)``) by its name."""
    ranges = {}
    for env, least, most, default in re.findall(
        r"int_in\(\s*(ENV_\w+),\s*([\w.]+),\s*([\w.]+),\s*([\w.]+),?\s*\)", source
    ):
        ranges[RUST[env]] = (_resolve(least, source), _resolve(most, source), _resolve(default, source))
    return ranges


RUST_RANGES = _rust_ranges(CONFIG_RS)
RUST_VARIABLES = {value for name, value in RUST.items() if name.startswith("ENV_")}
CONSTRUCT_VARIABLES = {
    name: value for name, value in vars(settings).items()
    if name.startswith("ENV_") and name not in ("ENV_PREFIX", "ENV_EXEC_WRAPPER")
}


def test_the_parser_reads_what_the_extension_reads():
    # GIVEN config.rs WHEN it is parsed THEN the integer variables are found (a parser that found nothing would pass
    # every comparison below)
    assert len(RUST_RANGES) >= 10, RUST_RANGES
    assert RUST_RANGES["INVOCATION_HISTORY_EXTENSION_HTTP_PORT"] == (1, 65535, 1203)


@pytest.mark.parametrize("name", sorted(CONSTRUCT_VARIABLES))
def test_every_variable_the_construct_writes_is_one_the_extension_reads(name):
    assert CONSTRUCT_VARIABLES[name] in RUST_VARIABLES, f"settings.{name}: the extension has no such variable"


@pytest.mark.parametrize("setting", sorted(settings.INTEGER_SETTINGS))
def test_integer_ranges_and_defaults_are_the_extensions(setting):
    variable, least, most, default = settings.INTEGER_SETTINGS[setting]
    assert RUST_RANGES[variable] == (least, most, default), f"{setting} ({variable}): construct vs config.rs"


def test_every_integer_variable_the_extension_reads_is_a_setting_or_left_out_on_purpose():
    # Telemetry's listener and batching are the extension's business: the construct does not offer them.
    left_out = {settings.ENV_PREFIX + name for name in (
        "TELEMETRY_PORT", "TELEMETRY_MAX_ITEMS", "TELEMETRY_MAX_BYTES", "TELEMETRY_TIMEOUT_MS")}
    offered = {variable for variable, *_ in settings.INTEGER_SETTINGS.values()}
    assert set(RUST_RANGES) - left_out == offered


def test_text_defaults_and_rules_are_the_extensions():
    assert settings.DEFAULT_METRICS_NAMESPACE == RUST["DEFAULT_METRICS_NAMESPACE"]
    assert settings.MAX_NAMESPACE_LENGTH == RUST["MAX_NAMESPACE_LENGTH"]
    assert f'"{settings.NAMESPACE_PUNCTUATION}".contains(c)' in CONFIG_RS
    assert f'ns.starts_with("{settings.RESERVED_NAMESPACE_PREFIX}")' in CONFIG_RS
    assert settings.DEFAULT_EXPORT_PREFIX == RUST["DEFAULT_EXPORT_PREFIX"]
    assert settings.MAX_EXPORT_PREFIX_BYTES == RUST["MAX_PREFIX_BYTES"]
    assert f"want one of {', '.join(settings.LOG_LEVELS)}" in CONFIG_RS
    for stream in settings.EXPORT_LOG_STREAMS:
        assert f'"{stream}" => streams.{stream} = true' in CONFIG_RS
    default_logs = re.search(r"DEFAULT_EXPORT_LOGS: LogStreams = LogStreams \{(.*?)\};", CONFIG_RS, re.S).group(1)
    on = [name for name, value in re.findall(r"(\w+): (true|false)", default_logs) if value == "true"]
    assert on == ["function", "extension"]  # the construct's documented default, "function,extension"


# ---- docs/configuration.md ------------------------------------------------------------------------------------------

NUMBER = r"(\d[\d,]*)"


def _documented_range(variable: str) -> tuple[int, int, int]:
    """Least, most and default of ``variable`` in docs/configuration.md: under its heading ("Default `N`; LO–HI"),
    in the export table ("| `VAR` | N | LO–HI |"), or after its short name ("`host:SHORT` (default `N`; LO–HI")."""
    short = variable.removeprefix(settings.ENV_PREFIX)
    patterns = (
        rf"#+ `{variable}`[^\n]*\nDefault `{NUMBER}`; {NUMBER}–{NUMBER}",
        rf"\| `{variable}` \| {NUMBER}[^|]*\| {NUMBER}–{NUMBER} \|",
        rf"[`:]{short}` \(default `{NUMBER}`; {NUMBER}–{NUMBER}",
    )
    for pattern in patterns:
        if match := re.search(pattern, CONFIGURATION_MD):
            default, least, most = (int(n.replace(",", "")) for n in match.groups())
            return least, most, default
    raise AssertionError(f"docs/configuration.md gives no default and range for {variable}")


@pytest.mark.parametrize("setting", sorted(settings.INTEGER_SETTINGS))
def test_the_configuration_reference_documents_the_same_ranges(setting):
    variable, least, most, default = settings.INTEGER_SETTINGS[setting]
    assert _documented_range(variable) == (least, most, default), f"{setting}: docs/configuration.md vs construct"


def test_the_configuration_reference_documents_the_same_text_defaults():
    assert f"### `{settings.ENV_METRICS_NAMESPACE}`\nDefault `{settings.DEFAULT_METRICS_NAMESPACE}`. " \
           f"1–{settings.MAX_NAMESPACE_LENGTH} characters" in CONFIGURATION_MD
    assert f"| `{settings.ENV_EXPORT_S3_PREFIX}` | `{settings.DEFAULT_EXPORT_PREFIX}` | up to " \
           f"{settings.MAX_EXPORT_PREFIX_BYTES} bytes" in CONFIGURATION_MD
    assert f"| `{settings.ENV_EXPORT_LOGS}` | `function,extension` |" in CONFIGURATION_MD
    for variable in CONSTRUCT_VARIABLES.values():
        assert f"`{variable}`" in CONFIGURATION_MD or variable.removeprefix(settings.ENV_PREFIX) in CONFIGURATION_MD, (
            f"docs/configuration.md does not name {variable}")
