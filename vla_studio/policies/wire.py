"""What travels between a policy client and a policy server (openpi's message layout).

The protocol is openpi's: on connect the server sends a metadata map; then each request is an
observation map and each answer ``{"actions": [H, D], "server_timing": {...}}``. VLA Studio names
the observation keys like this, and lists them in the metadata's ``observation_spec`` so any
client can build a valid observation without reading our code::

    observation/image/<camera>   uint8  [H, W, 3]   RGB, resized to the policy's image size
    observation/state/<feature>  float32 [n]        robot state, raw units (the policy normalises)
    prompt                       str                the language instruction

Answers may also carry ``confidence`` ``[H]`` (with ``confidence_method``, a short name such as
``token_probability``) and ``samples`` ``[N, H, D]``; other keys are ignored. Times never cross
the wire: the client stamps a chunk with its own host monotonic clock (the observation's tick
time, send and receive times), so a remote clock cannot make an action look fresh.
"""

from __future__ import annotations

import math
import time
from typing import Any, Mapping

import cv2
import numpy as np

from vla_studio.core.action_space import ActionSpace
from vla_studio.core.types import Feature, Frame, Observation
from vla_studio.policies.base import ActionChunk, PolicySpec
from vla_studio.policies.errors import PolicyProtocolError

PROTOCOL = "vla-studio/1"
INSTRUCTION_KEY = "prompt"
IMAGE_PREFIX = "observation/image/"
STATE_PREFIX = "observation/state/"
RESET_KEY = "__reset__"  # our extension: {"__reset__": True, "prompt": ...} -> {"reset": True}
MAX_PROMPT_CHARS = 4096
MAX_KEYS = 256
MAX_IMAGE_SIDE = 4096


# ----- spec <-> plain data ---------------------------------------------------------------------
def spec_to_dict(spec: PolicySpec) -> dict[str, Any]:
    """``spec`` as msgpack/JSON-friendly data (inverse of :func:`spec_from_dict`)."""
    return {
        "cameras": list(spec.cameras),
        "image_size": list(spec.image_size),
        "state_features": {k: _feature_to_dict(f) for k, f in spec.state_features.items()},
        "action_space": {"kind": spec.action_space.kind, "names": list(spec.action_space.names)},
        "control_rate_hz": float(spec.control_rate_hz),
        "chunk_size": int(spec.chunk_size),
        "normalization": {k: np.asarray(v, np.float64).tolist() for k, v in spec.normalization.items()},
    }


def spec_from_dict(d: Any, where: str = "policy spec") -> PolicySpec:
    """Parse :func:`spec_to_dict` output (from a file or a server).

    Raises:
        PolicyProtocolError: a missing or malformed field, named.
    """
    if not isinstance(d, Mapping):
        raise PolicyProtocolError(f"{where}: expected a table, got {type(d).__name__}")
    try:
        space = d["action_space"]
        action_space = ActionSpace(str(space["kind"]), tuple(str(n) for n in space["names"]))
        size = tuple(int(v) for v in d.get("image_size", (0, 0)))
        if len(size) != 2 or min(size) < 0 or max(size) > MAX_IMAGE_SIDE:
            raise ValueError(f"image_size {size} must be [height, width] up to {MAX_IMAGE_SIDE}")
        rate = float(d["control_rate_hz"])
        if not math.isfinite(rate) or rate <= 0:
            raise ValueError(f"control_rate_hz {rate} must be a positive number")
        chunk = int(d.get("chunk_size", 1))
        if chunk < 1:
            raise ValueError(f"chunk_size {chunk} must be at least 1")
        return PolicySpec(
            cameras=tuple(str(c) for c in d.get("cameras", ())),
            image_size=(size[0], size[1]),
            state_features={str(k): _feature_from_dict(v)
                            for k, v in dict(d.get("state_features", {})).items()},
            action_space=action_space,
            control_rate_hz=rate,
            chunk_size=chunk,
            normalization={str(k): np.asarray(v, np.float64)
                           for k, v in dict(d.get("normalization", {})).items()},
        )
    except KeyError as exc:
        raise PolicyProtocolError(f"{where}: {exc.args[0]!r} is missing") from None
    except (TypeError, ValueError) as exc:
        raise PolicyProtocolError(f"{where}: {exc}") from None


def _feature_to_dict(f: Feature) -> dict[str, Any]:
    return {"dtype": f.dtype, "shape": list(f.shape),
            "names": list(f.names) if f.names is not None else None, "unit": f.unit}


def _feature_from_dict(d: Any) -> Feature:
    if not isinstance(d, Mapping):
        raise ValueError(f"a feature must be a table with dtype and shape, got {d!r:.60}")
    names = d.get("names")
    return Feature(str(d.get("dtype", "float32")), tuple(int(n) for n in d["shape"]),
                   tuple(str(n) for n in names) if names is not None else None,
                   str(d.get("unit", "")))


def observation_spec(spec: PolicySpec) -> dict[str, dict[str, Any]]:
    """Every observation key ``spec`` reads, with its shape and dtype (sent in the metadata)."""
    h, w = spec.image_size
    keys: dict[str, dict[str, Any]] = {
        IMAGE_PREFIX + cam: {"shape": [h, w, 3], "dtype": "uint8"} for cam in spec.cameras}
    for name, f in spec.state_features.items():
        keys[STATE_PREFIX + name] = {"shape": list(f.shape), "dtype": "float32"}
    keys[INSTRUCTION_KEY] = {"shape": [], "dtype": "str"}
    return keys


def server_metadata(spec: PolicySpec, policy_id: str, max_message_bytes: int,
                    accepts_reset: bool = True) -> dict[str, Any]:
    """The metadata map a server sends on connect."""
    return {
        "protocol": PROTOCOL,
        "policy_id": policy_id,
        "observation_spec": observation_spec(spec),
        "instruction_key": INSTRUCTION_KEY,
        "action_shape": [int(spec.chunk_size), int(spec.action_space.dim)],
        "action_space": {"kind": spec.action_space.kind, "names": list(spec.action_space.names)},
        "control_rate_hz": float(spec.control_rate_hz),
        "policy_spec": spec_to_dict(spec),
        "max_message_bytes": int(max_message_bytes),
        "accepts_reset": bool(accepts_reset),
    }


# ----- observations ----------------------------------------------------------------------------
def fit_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` (HxWx3 uint8) resized to ``size`` = (height, width); unchanged when it fits."""
    h, w = size
    if image.shape[0] == h and image.shape[1] == w:
        return image
    # Area averaging when shrinking keeps fine detail from aliasing; linear when enlarging.
    interp = cv2.INTER_AREA if image.shape[0] > h else cv2.INTER_LINEAR
    return cv2.resize(image, (w, h), interpolation=interp)


def encode_observation(obs: Observation, spec: PolicySpec, instruction: str) -> dict[str, Any]:
    """The wire map of ``obs`` for a policy with ``spec`` (images resized on this side, so a
    remote link carries policy-sized images, not camera-sized ones).

    Raises:
        PolicyProtocolError: a camera or state feature the policy reads is missing.
    """
    msg: dict[str, Any] = {}
    for cam in spec.cameras:
        frame = obs.frames.get(cam)
        if frame is None or frame.color is None:
            raise PolicyProtocolError(f"camera '{cam}' has no colour frame")
        msg[IMAGE_PREFIX + cam] = np.ascontiguousarray(fit_image(frame.color, spec.image_size))
    for name, f in spec.state_features.items():
        if name not in obs.state:
            raise PolicyProtocolError(f"robot state '{name}' is missing")
        value = np.asarray(obs.state[name], np.float32)
        if value.size != int(np.prod(f.shape)):
            raise PolicyProtocolError(f"robot state '{name}' has {value.size} values, the policy "
                                      f"reads {int(np.prod(f.shape))}")
        msg[STATE_PREFIX + name] = value.reshape(f.shape)
    msg[INSTRUCTION_KEY] = instruction
    return msg


def decode_observation(msg: Any, spec: PolicySpec, tick: int = 0) -> tuple[Observation, str]:
    """Check a received observation against ``spec`` and build the policy's input.

    Images of another size are resized; state of any real dtype is cast to float32; unknown keys
    are ignored (openpi clients send extras). Frames are stamped with this host's clock.

    Returns:
        The observation and its instruction (``""`` when the client sent none).

    Raises:
        PolicyProtocolError: a missing key, a wrong shape or dtype, an oversized prompt.
    """
    if not isinstance(msg, Mapping):
        raise PolicyProtocolError(f"an observation must be a map, got {type(msg).__name__}")
    if len(msg) > MAX_KEYS:
        raise PolicyProtocolError(f"an observation has at most {MAX_KEYS} keys, got {len(msg)}")
    now = time.monotonic()
    frames: dict[str, Frame | None] = {}
    for cam in spec.cameras:
        key = IMAGE_PREFIX + cam
        img = _required(msg, key)
        if (not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3
                or img.shape[2] != 3 or not 0 < max(img.shape[:2]) <= MAX_IMAGE_SIDE
                or min(img.shape[:2]) == 0):
            raise PolicyProtocolError(f"'{key}' must be a uint8 [H, W, 3] image up to "
                                      f"{MAX_IMAGE_SIDE} pixels a side, got {_describe(img)}")
        frames[cam] = Frame(cam, tick, now, color=fit_image(img, spec.image_size))
    state: dict[str, np.ndarray] = {}
    for name, f in spec.state_features.items():
        key = STATE_PREFIX + name
        value = _required(msg, key)
        arr = np.asarray(value) if isinstance(value, (np.ndarray, np.generic, list, float, int)) else None
        if arr is None or arr.dtype.kind not in "biuf" or arr.size != int(np.prod(f.shape)):
            raise PolicyProtocolError(f"'{key}' must be {int(np.prod(f.shape))} numbers "
                                      f"(shape {list(f.shape)}), got {_describe(value)}")
        state[name] = arr.astype(np.float32).reshape(f.shape)
    prompt = msg.get(INSTRUCTION_KEY, "")
    if isinstance(prompt, np.ndarray) and prompt.dtype.kind in "US" and prompt.size == 1:
        prompt = str(prompt.reshape(-1)[0])
    if not isinstance(prompt, str) or len(prompt) > MAX_PROMPT_CHARS:
        raise PolicyProtocolError(f"'{INSTRUCTION_KEY}' must be a string of at most "
                                  f"{MAX_PROMPT_CHARS} characters, got {_describe(prompt)}")
    return Observation(tick, now, state, frames), prompt


def _required(msg: Mapping[str, Any], key: str) -> Any:
    if key not in msg:
        raise PolicyProtocolError(f"the observation has no '{key}' (see the server's "
                                  "observation_spec for every key it reads)")
    return msg[key]


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"{value.dtype} array of shape {list(value.shape)}"
    if isinstance(value, str):
        return f"a string of {len(value)} characters"
    return type(value).__name__


# ----- answers ---------------------------------------------------------------------------------
MAX_METHOD_CHARS = 64  # a confidence method is a name, not a payload
def encode_chunk(chunk: ActionChunk) -> dict[str, Any]:
    """The answer map of ``chunk`` (``server_timing`` is added by the server)."""
    msg: dict[str, Any] = {"actions": np.asarray(chunk.actions, np.float32)}
    if chunk.confidence is not None:
        msg["confidence"] = np.asarray(chunk.confidence, np.float32)
        method = chunk.extras.get("confidence_method")
        if isinstance(method, str) and method:
            msg["confidence_method"] = method[:MAX_METHOD_CHARS]
    samples = chunk.extras.get("samples")
    if isinstance(samples, np.ndarray) and samples.ndim == 3:
        msg["samples"] = samples.astype(np.float32)
    return msg


def decode_chunk(msg: Any, action_dim: int, t_observation: float, t_start: float,
                 t_end: float) -> ActionChunk:
    """An :class:`ActionChunk` from a server's answer, stamped with this host's times.

    A single action ``[D]`` is read as a chunk of one.

    Raises:
        PolicyProtocolError: no ``actions``, a wrong action size, non-numeric values.
    """
    if not isinstance(msg, Mapping) or "actions" not in msg:
        keys = sorted(map(str, msg)) if isinstance(msg, Mapping) else type(msg).__name__
        raise PolicyProtocolError(f"the server's answer has no 'actions' (got {keys})")
    actions = np.asarray(msg["actions"])
    if actions.ndim == 1:
        actions = actions[None, :]
    if actions.dtype.kind not in "biuf" or actions.ndim != 2 or actions.shape[1] != action_dim \
            or actions.shape[0] == 0:
        raise PolicyProtocolError(f"the server's actions are {_describe(actions)}; this station "
                                  f"takes [H, {action_dim}] numbers")
    actions = actions.astype(np.float64)
    confidence = msg.get("confidence")
    conf = None
    if confidence is not None:
        conf = np.asarray(confidence, np.float64).reshape(-1)
        if conf.shape != (actions.shape[0],):
            raise PolicyProtocolError(f"the server's confidence has shape {list(conf.shape)}, "
                                      f"expected [{actions.shape[0]}]")
    extras: dict[str, Any] = {}
    method = msg.get("confidence_method")
    if conf is not None and isinstance(method, str) and method:
        extras["confidence_method"] = method[:MAX_METHOD_CHARS]
    samples = msg.get("samples")
    if isinstance(samples, np.ndarray) and samples.ndim == 3 and samples.shape[1:] == actions.shape:
        extras["samples"] = samples.astype(np.float64)
    timing = msg.get("server_timing")
    if isinstance(timing, Mapping):
        extras["server_timing"] = {str(k): float(v) for k, v in timing.items()
                                   if isinstance(v, (int, float))}
    return ActionChunk(actions, conf, t_observation, t_start, t_end, extras)
