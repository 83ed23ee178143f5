"""Station profiles: one TOML file describes a robot cell.

A profile names the robot, cameras and teleop devices, and optional observers of the run (each
validated against its kind's config dataclass), the control rate, the action space, the safety
limits and where recordings go::

    name = "Simulated tabletop"
    control_rate_hz = 20

    [action_space]
    kind = "ee_delta"

    [robot]
    type = "sim"

    [[cameras]]
    type = "sim"
    name = "front"

    [[teleops]]
    type = "keyboard"

    [safety]
    workspace_min = [0.2, -0.4, 0.0]
    workspace_max = [0.8, 0.4, 0.5]

    [recording]
    dataset_dir = "~/vla-studio/datasets/sim"
    storage = "video"        # transcode saved episodes in the background (default "jpeg")
    video_codec = "av1"

Every mistake becomes a :class:`~vla_studio.core.config.ConfigError` naming the file, the key, the
value and what is allowed.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Mapping

from vla_studio.core.action_space import ACTION_KINDS
from vla_studio.core.config import ConfigError, build, option
from vla_studio.core.safety import SafetyLimits

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
MAX_PROFILE_BYTES = 4 << 20
MAX_NESTING = 16  # tables and arrays; the deepest real profile value nests 3 levels

# (group, type) -> config dataclass of that device kind; raises LookupError for unknown types.
ConfigResolver = Callable[[str, str], type]


@dataclass(frozen=True)
class DeviceSpec:
    """One device in a profile: its registry type and its validated config."""

    type: str
    config: Any

    @property
    def name(self) -> str:
        return self.config.name


@dataclass(frozen=True)
class ActionSpaceSettings:
    kind: str = option("ee_delta", choices=ACTION_KINDS,
                       help="ee_delta: end-effector deltas in the base frame; joint_position")


@dataclass(frozen=True)
class RecordingSettings:
    """The profile's ``[recording]`` table."""

    dataset_dir: str = option("~/vla-studio/datasets/default", help="folder episodes are saved to")
    image_format: Literal["jpeg", "png"] = option("jpeg", help="jpeg (default) or lossless png")
    jpeg_quality: int = option(90, min=1, max=100, help="JPEG quality of colour images")
    on_camera_failure: Literal["pause", "continue"] = option(
        "pause", help="pause the episode, or continue and flag the gap")
    storage: Literal["jpeg", "video"] = option(
        "jpeg", help="jpeg: keep the recorded JPEGs; video: transcode saved episodes to video "
                     "in the background while not recording (about 20x smaller)")
    video_codec: Literal["av1", "h264"] = option(
        "av1", help="codec of the video storage: av1 (smallest) or h264 (fastest)")
    video_crf: int = option(38, min=0, max=63,
                            help="video quality: lower is better and bigger (AV1 38: ~39 dB)")
    operator: str = option("", help="default operator name stored with episodes")
    station_id: str = option("", help="identifies this physical cell in episode metadata")


@dataclass(frozen=True)
class StationProfile:
    """A loaded and validated station profile."""

    name: str
    control_rate_hz: float
    robot: DeviceSpec
    cameras: tuple[DeviceSpec, ...] = ()
    teleops: tuple[DeviceSpec, ...] = ()
    observers: tuple[DeviceSpec, ...] = ()
    action_space: ActionSpaceSettings = field(default_factory=ActionSpaceSettings)
    safety: SafetyLimits = field(default_factory=SafetyLimits)
    recording: RecordingSettings = field(default_factory=RecordingSettings)
    description: str = ""
    path: Path | None = None

    @property
    def dataset_dir(self) -> Path:
        return Path(self.recording.dataset_dir).expanduser()


_TOP_KEYS = {"name", "description", "control_rate_hz", "action_space", "robot", "cameras",
             "teleops", "observers", "safety", "recording"}
_GROUPS = {"robot": "robots", "cameras": "cameras", "teleops": "teleops",
           "observers": "observers"}


def load_profile(path: str | Path, resolver: ConfigResolver) -> StationProfile:
    """Read and validate a profile file.

    Args:
        path: the TOML file.
        resolver: maps ``(group, type)`` to the device config dataclass (see
            :func:`vla_studio.devices.registry.config_class_for`).

    Raises:
        ConfigError: unreadable file, TOML syntax error, or any invalid key or value.
    """
    path = Path(path).expanduser()
    source = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(source, "(file)", str(path), "the file does not exist; pass an existing "
                          "station profile (see resources/stations/)") from None
    except IsADirectoryError:
        raise ConfigError(source, "(file)", str(path), "is a folder, not a station profile "
                          "(pass a .toml file, see resources/stations/)") from None
    except OSError as exc:
        raise ConfigError(source, "(file)", str(path), f"cannot be read: {exc.strerror}") from None
    if len(raw) > MAX_PROFILE_BYTES:
        raise ConfigError(source, "(file)", str(path), f"is {len(raw) / 1e6:.1f} MB; a station "
                          f"profile is a small TOML file (at most {MAX_PROFILE_BYTES >> 20} MB)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise ConfigError(source, "(file)", str(path), f"is not UTF-8 text (byte "
                          f"0x{raw[exc.start]:02x} on line {line}); save the profile as UTF-8") \
            from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, "(syntax)", None, f"not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(source, "(syntax)", None, f"values are nested too deeply (a station "
                          f"profile needs at most {MAX_NESTING} levels)") from None
    depth = nesting_depth(data)
    if depth > MAX_NESTING:
        raise ConfigError(source, "(syntax)", None, f"values are nested {depth} levels deep; a "
                          f"station profile needs at most {MAX_NESTING}")
    return parse_profile(data, resolver, source=source, path=path)


def nesting_depth(value: Any) -> int:
    """How deeply tables and arrays nest in ``value`` (iteratively: a deep value must not
    exhaust the interpreter's stack while it is measured)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, Mapping):
            children: Any = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        deepest = max(deepest, depth + 1)
        if deepest > MAX_NESTING:
            return deepest  # enough to refuse it
        stack.extend((child, depth + 1) for child in children)
    return deepest


def parse_profile(data: Mapping[str, Any], resolver: ConfigResolver, *, source: str,
                  path: Path | None = None) -> StationProfile:
    """Validate an already-parsed profile table (see :func:`load_profile`)."""
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise ConfigError(source, unknown[0], data[unknown[0]],
                          f"unknown key; allowed top-level keys: {', '.join(sorted(_TOP_KEYS))}")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(source, "name", name, "required: a non-empty string naming the station")
    rate = data.get("control_rate_hz")
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 1 <= rate <= 1000:
        raise ConfigError(source, "control_rate_hz", rate, "required: a number from 1 to 1000 (Hz)")
    if "robot" not in data:
        raise ConfigError(source, "robot", None, "required: a [robot] table with a 'type' key")
    robot = _device(data["robot"], "robot", "robot", resolver, source)
    cameras = _device_list(data.get("cameras", []), "cameras", resolver, source)
    teleops = _device_list(data.get("teleops", []), "teleops", resolver, source)
    observers = _device_list(data.get("observers", []), "observers", resolver, source)
    description = data.get("description", "")
    if not isinstance(description, str):
        raise ConfigError(source, "description", description, "expected a string")
    return StationProfile(
        name=name.strip(),
        control_rate_hz=float(rate),
        robot=robot,
        cameras=cameras,
        teleops=teleops,
        observers=observers,
        action_space=build(ActionSpaceSettings, data.get("action_space", {}), source=source,
                           prefix="action_space."),
        safety=build(SafetyLimits, data.get("safety", {}), source=source, prefix="safety."),
        recording=build(RecordingSettings, data.get("recording", {}), source=source,
                        prefix="recording."),
        description=description,
        path=path,
    )


def _device_list(items: Any, key: str, resolver: ConfigResolver, source: str) -> tuple[DeviceSpec, ...]:
    if not isinstance(items, list):
        raise ConfigError(source, key, items, f"expected a list of tables: [[{key}]]")
    specs = tuple(_device(t, key, f"{key}[{i}]", resolver, source) for i, t in enumerate(items))
    seen: dict[str, int] = {}
    for i, spec in enumerate(specs):
        if spec.name in seen:
            raise ConfigError(source, f"{key}[{i}].name", spec.name,
                              f"names must be unique; {key}[{seen[spec.name]}] already uses it")
        seen[spec.name] = i
    return specs


def _device(table: Any, key: str, where: str, resolver: ConfigResolver, source: str) -> DeviceSpec:
    if not isinstance(table, Mapping):
        raise ConfigError(source, where, table, "expected a table with a 'type' key")
    kind = table.get("type")
    if not isinstance(kind, str):
        raise ConfigError(source, f"{where}.type", kind, "required: the device type, e.g. \"sim\"")
    try:
        config_cls = resolver(_GROUPS[key], kind)
    except LookupError as exc:
        raise ConfigError(source, f"{where}.type", kind, str(exc)) from None
    options = {k: v for k, v in table.items() if k != "type"}
    options.setdefault("name", kind)
    config = build(config_cls, options, source=source, prefix=f"{where}.")
    if not NAME_RE.match(config.name):
        raise ConfigError(source, f"{where}.name", config.name,
                          "names are lowercase letters, digits and _, starting with a letter "
                          "(they become dataset keys)")
    return DeviceSpec(kind, config)
