"""The scripted expert: solves every tabletop task through the end-effector-delta interface.

It is *reactive*: each tick it looks at the world (cube poses, grasp contacts, the TCP) and
decides what to do from there, with only a little memory (the current phase and a timer). So it
works from any state a learner may have driven the arm into, which is what a DAgger corrector
needs, and it recovers by itself from a missed grasp or a dropped cube.

```
 pick / place / stack:  approach (up, over; yaw aligned near the cube) -> descend -> close -> lift
                        place/stack: -> carry -> lower -> release -> retreat -> done
 push:                  approach behind the cube (gripper closed) -> descend -> push -> retreat
 any phase holding a cube that is no longer grasped -> back to approach (gripper opens)
```
Motion goes through :class:`~vla_studio.sim.motion.MotionShaper`: bounded speed and
acceleration with eased stops, like an operator's hand, within the station's safety caps.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from vla_studio.sim.layout import SHAPES
from vla_studio.sim.motion import DOWN, MotionLimits, MotionShaper, down_with_yaw
from vla_studio.sim.rotations import wrap_angle, yaw_of
from vla_studio.sim.scene import BOWL, BOWL_HEIGHT_M, CUBE_HALF_M, cube_name
from vla_studio.sim.tasks import Task, parse_instruction, side_sign
from vla_studio.sim.world import SimWorld

log = logging.getLogger(__name__)

OPEN, CLOSED = 1.0, 0.0
PHASES = ("approach", "descend", "close", "lift", "carry", "lower", "release", "retreat", "push",
          "done")


@dataclass(frozen=True)
class ExpertSettings:
    """Heights (TCP, metres above the table), speeds and timings of the expert."""

    travel: MotionLimits = MotionLimits(speed=0.16, accel=0.6)
    fine: MotionLimits = MotionLimits(speed=0.06, accel=0.4)
    hover_above_cube: float = 0.09  # approach height above the cube centre
    safe_travel_z: float = 0.085  # below this the TCP only moves vertically to reach a new spot
    grasp_offset: float = 0.004  # TCP above the cube centre when closing
    carry_z: float = 0.16
    close_s: float = 0.6
    release_s: float = 0.45
    lift_above: float = 0.10  # pick: lift the cube this far
    push_z: float = 0.027  # TCP height while pushing (pads just above the table)
    push_standoff: float = 0.062  # TCP behind the cube centre at the start of a push
    push_overshoot: float = 0.03  # push this much past the success distance
    pos_tolerance: float = 0.005
    yaw_tolerance: float = 0.06  # to close the gripper (and for place/push alignments)
    align_radius: float = 0.04  # grasps: turn to the grasp heading within this of the hover point
    descend_yaw_tolerance: float = 0.15  # grasps: start down within this of the grasp heading


class ScriptedExpert:
    """Proposes the next EE-delta action for the current task, from privileged world state.

    Usable as a teleop source (see :mod:`vla_studio.devices.teleop.scripted`) or directly as a
    policy-shaped corrector: ``reset(instruction)`` then ``act(dt)`` every control tick (on the
    thread that owns the world), which returns ``[dx, dy, dz, droll, dpitch, dyaw, gripper]`` in
    the robot base frame, or None once the task is done.

    Args:
        world: the simulated world to read.
        settings: heights, speeds and timings.
    """

    def __init__(self, world: SimWorld, settings: ExpertSettings | None = None) -> None:
        self.world = world
        self.settings = settings or ExpertSettings()
        self.task: Task | None = None
        self.phase = "done"
        self._shaper = MotionShaper()
        self._timer = 0.0
        self._yaw: float | None = None
        self._gripper = OPEN
        self.attempts = 0

    # ----- public API --------------------------------------------------------------------------
    def reset(self, instruction: str | Task) -> Task:
        """Start a task (parsed from the instruction). Raises UnknownInstruction."""
        task = instruction if isinstance(instruction, Task) else parse_instruction(instruction)
        self.task = task
        self.phase = "approach"
        self._shaper.reset()
        self._timer = 0.0
        self._yaw = None
        self._gripper = CLOSED if task.family == "push" else OPEN
        self.attempts = 0
        return task

    def stop_motion(self) -> None:
        """Forget the current speed (after a stop the next move starts from rest)."""
        self._shaper.reset()

    @property
    def done(self) -> bool:
        return self.phase == "done"

    @property
    def progress(self) -> float:
        """Phase index normalised to [0, 1] (display only)."""
        return PHASES.index(self.phase) / (len(PHASES) - 1)

    def act(self, dt: float) -> np.ndarray | None:
        """The action for the next tick of ``dt`` seconds (None when done or without a task)."""
        if self.task is None or self.phase == "done":
            return None
        handler = self._push_step if self.task.family == "push" else self._grasp_step
        return handler(dt)

    # ----- pick / place / stack ------------------------------------------------------------------
    def _grasp_step(self, dt: float) -> np.ndarray | None:
        task, st, w = self.task, self.settings, self.world
        assert task is not None
        name = cube_name(task.cube)
        cube = w.object_pos(name)
        pos, mat = w.tcp_pose()
        holding = w.grasped(name)
        if self.phase in ("lift", "carry", "lower") and not holding:
            self._restart("the cube slipped")
        if self.phase == "approach" and holding:
            self.phase = "lift"  # handed over with the cube already in the gripper
            self._gripper = CLOSED
        if self.phase == "approach":
            if self._gripper == CLOSED and w.gripper_opening() < 0.9:
                self._gripper = OPEN  # open before (re)approaching
            yaw = self._choose_grasp_yaw(task.cube, yaw_of(mat))
            hover = np.array([cube[0], cube[1], cube[2] + st.hover_above_cube])
            # Turn to the grasp heading only near the cube, where the wrist camera sees it
            # large: a learner can see the misalignment it has to correct there (far away a
            # few degrees of a cube's heading are invisible). Travelling keeps the heading.
            turn = self._near(pos, hover, st.align_radius, xy_only=True)
            action = self._move(pos, mat, self._via(pos, hover), yaw if turn else yaw_of(mat),
                                st.travel, dt)
            if (self._near(pos, hover, 0.008, xy_only=True)
                    and self._yaw_ok(mat, yaw, st.descend_yaw_tolerance)
                    and w.gripper_opening() > 0.9):
                self.phase = "descend"  # the last degrees are turned on the way down
            return action
        if self.phase == "descend":
            yaw = self._choose_grasp_yaw(task.cube, yaw_of(mat))
            grasp = np.array([cube[0], cube[1], cube[2] + st.grasp_offset])
            if not self._near(pos, grasp, 0.012, xy_only=True):
                self.phase, self._yaw = "approach", None  # the cube moved away: re-approach
            elif self._near(pos, grasp, st.pos_tolerance) and self._yaw_ok(mat, yaw):
                self.phase, self._timer = "close", 0.0
            return self._move(pos, mat, grasp, yaw, st.fine, dt)
        if self.phase == "close":
            self._gripper = CLOSED
            self._timer += dt
            if self._timer >= st.close_s:
                if holding:
                    self.phase = "lift"
                else:
                    self._restart("missed the grasp")
            return self._hold(pos, mat, dt)
        if self.phase == "lift":
            target = np.array([pos[0], pos[1], self._lift_z()])
            if task.family == "pick":
                if self._near(pos, target, st.pos_tolerance) and task.success(w):
                    self.phase = "done"
                    return None
            elif pos[2] > min(st.carry_z, target[2]) - 0.02:
                self.phase = "carry"
            return self._move(pos, mat, target, self._keep_yaw(mat), st.travel, dt)
        return self._place_step(dt, name, cube, pos, mat)

    def _place_step(self, dt: float, name: str, cube: np.ndarray, pos: np.ndarray,
                    mat: np.ndarray) -> np.ndarray | None:
        task, st, w = self.task, self.settings, self.world
        assert task is not None
        if task.family == "stack":
            base = w.cube_pos(task.other)
            yaw = self._closest_yaw(w.cube_yaw(task.other), yaw_of(mat))
            self._yaw = yaw  # the retreat keeps this heading
            drop = np.array([base[0], base[1], base[2] + 2 * CUBE_HALF_M + 0.004])
        else:
            base = w.object_pos(BOWL)
            yaw = self._keep_yaw(mat)
            drop = np.array([base[0], base[1], base[2] + BOWL_HEIGHT_M + 0.002])
        # The cube hangs from the TCP at a fixed offset: move the TCP so the *cube* reaches
        # its goal (corrects for where exactly it sits between the fingers).
        offset = pos - cube
        if self.phase == "carry":
            above = drop + np.array([0.0, 0.0, 0.05])
            goal = np.array([above[0], above[1], max(st.carry_z, (above + offset)[2])])
            if self._near(cube, above, 0.006, xy_only=True) and self._yaw_ok(mat, yaw):
                self.phase = "lower"
            return self._move(pos, mat, goal, yaw, st.travel, dt)
        if self.phase == "lower":
            if not self._near(cube, drop, 0.012, xy_only=True):
                self.phase = "carry"
            elif self._near(cube, drop, 0.004):
                self.phase, self._timer = "release", 0.0
            return self._move(pos, mat, drop + offset, yaw, st.fine, dt)
        if self.phase == "release":
            self._gripper = OPEN
            self._timer += dt
            if self._timer >= st.release_s:
                self.phase = "retreat"
            return self._hold(pos, mat, dt)
        if self.phase == "retreat":
            if not task.success(w) and not w.touches_gripper(name):
                self._restart("the cube did not end up in place")
                return self._hold(pos, mat, dt)
            target = np.array([pos[0], pos[1], max(pos[2], drop[2] + 0.09)])
            if self._near(pos, target, st.pos_tolerance) and task.success(w):
                self.phase = "done"
                return None
            target[2] = drop[2] + 0.10
            return self._move(pos, mat, target, self._keep_yaw(mat), st.fine, dt)
        raise AssertionError(f"unknown phase {self.phase}")

    def _lift_z(self) -> float:
        st = self.settings
        if self.task is not None and self.task.family == "pick":
            return CUBE_HALF_M + st.grasp_offset + st.lift_above
        return st.carry_z

    # ----- push ----------------------------------------------------------------------------------
    def _push_step(self, dt: float) -> np.ndarray | None:
        task, st, w = self.task, self.settings, self.world
        assert task is not None
        name = cube_name(task.cube)
        s = side_sign(task.side)
        cube = w.object_pos(name)
        start = w.initial_positions[name]
        pos, mat = w.tcp_pose()
        self._gripper = CLOSED
        yaw = self._keep_yaw(mat) if self.phase == "push" else 0.0
        behind = np.array([cube[0], cube[1] - s * st.push_standoff, st.push_z])
        if self.phase == "approach":
            action = self._move(pos, mat, self._via(pos, behind + [0, 0, 0.06]), yaw, st.travel, dt)
            if self._near(pos, behind, 0.008, xy_only=True) and self._yaw_ok(mat, yaw):
                self.phase = "descend"
            return action
        if self.phase == "descend":
            if not self._near(pos, behind, 0.015, xy_only=True):
                self.phase = "approach"
            elif self._near(pos, behind, st.pos_tolerance):
                self.phase = "push"
            return self._move(pos, mat, behind, yaw, st.fine, dt)
        if self.phase == "push":
            moved = float(cube[1] - start[1]) * s
            lateral = float(cube[0] - pos[0])
            if moved >= 0.10 + st.push_overshoot:
                self.phase = "retreat"
            elif abs(lateral) > 0.02 or float(cube[1] - pos[1]) * s < 0.0:
                self._restart("the cube slid off the pusher")
                return self._hold(pos, mat, dt)
            # Aim a little beyond the cube's far side so the pusher keeps contact, and steer
            # sideways to stay in line with the cube's centre.
            goal = np.array([cube[0], cube[1] + s * 0.03, st.push_z])
            return self._move(pos, mat, goal, yaw, st.fine, dt)
        if self.phase == "retreat":
            target = np.array([pos[0] - 0.0, pos[1] - s * 0.03, st.push_z + 0.08])
            if pos[2] > st.push_z + 0.06:
                if task.success(w):
                    self.phase = "done"
                    return None
                self._restart("the push fell short")
            return self._move(pos, mat, target, yaw, st.fine, dt)
        raise AssertionError(f"unknown phase {self.phase}")

    # ----- helpers -----------------------------------------------------------------------------
    def _restart(self, why: str) -> None:
        self.attempts += 1
        log.debug("expert (%s): %s; trying again (attempt %d)", self.task, why, self.attempts + 1)
        self.phase = "approach"
        self._yaw = None
        if self.task is not None and self.task.family != "push":
            self._gripper = OPEN

    def _move(self, pos: np.ndarray, mat: np.ndarray, target: np.ndarray, yaw: float,
              limits: MotionLimits, dt: float) -> np.ndarray:
        delta = self._shaper.step(pos, mat, target, down_with_yaw(yaw), dt, limits)
        return np.concatenate([delta, [self._gripper]])

    def _hold(self, pos: np.ndarray, mat: np.ndarray, dt: float) -> np.ndarray:
        return self._move(pos, mat, pos, self._keep_yaw(mat), self.settings.fine, dt)

    def _via(self, pos: np.ndarray, target: np.ndarray) -> np.ndarray:
        """Go up before going over: low down, only vertical motion towards ``target``."""
        st = self.settings
        far = math.hypot(target[0] - pos[0], target[1] - pos[1]) > 0.02
        if far and pos[2] < min(st.safe_travel_z, target[2] - 0.01):
            return np.array([pos[0], pos[1], target[2]])
        return target

    @staticmethod
    def _near(a: np.ndarray, b: np.ndarray, tol: float, xy_only: bool = False) -> bool:
        d = (a - b)[:2] if xy_only else a - b
        return float(np.linalg.norm(d)) < tol

    def _yaw_ok(self, mat: np.ndarray, yaw: float, tolerance: float | None = None) -> bool:
        tilt = float(np.linalg.norm(mat[:, 2] - DOWN[:, 2]))
        tol = self.settings.yaw_tolerance if tolerance is None else tolerance
        return abs(wrap_angle(yaw_of(mat) - yaw)) < tol and tilt < 0.08

    def _keep_yaw(self, mat: np.ndarray) -> float:
        if self._yaw is None:
            self._yaw = yaw_of(mat)
        return self._yaw

    @staticmethod
    def _closest_yaw(cube_yaw: float, current: float) -> float:
        """The quarter-turn alignment of ``cube_yaw`` nearest to ``current``."""
        options = [cube_yaw + k * math.pi / 2 for k in range(-3, 4)]
        options = [o for o in options if abs(o) < 2.0]
        return min(options, key=lambda o: abs(wrap_angle(o - current)))

    def _choose_grasp_yaw(self, colour: str, current: float) -> float:
        """Grasp heading: aligned with the cube's faces, turning as little as possible, with
        the fingers' closing line clear of neighbouring objects. Chosen once per approach."""
        if self._yaw is not None:
            return self._yaw
        w = self.world
        name = cube_name(colour)
        cube = w.object_pos(name)
        base = w.cube_yaw(colour)
        options = sorted((base + k * math.pi / 2 for k in range(-3, 4) if abs(base + k * math.pi / 2) < 2.0),
                         key=lambda o: abs(wrap_angle(o - current)))
        for yaw in options:
            finger_line = np.array([-math.sin(yaw), math.cos(yaw)])
            if all(self._clear(cube, finger_line, n) for n in w.index.objects if n != name):
                self._yaw = yaw
                return yaw
        self._yaw = options[0]
        return self._yaw

    def _clear(self, cube: np.ndarray, line: np.ndarray, other: str) -> bool:
        o = self.world.object_pos(other)
        rel = o[:2] - cube[:2]
        along, across = float(rel @ line), float(abs(rel @ np.array([-line[1], line[0]])))
        reach = 0.075  # fingers open to 4.1 cm from the centre, plus their thickness
        return not (abs(along) < reach + SHAPES[other].radius and across < 0.02 + SHAPES[other].radius)
