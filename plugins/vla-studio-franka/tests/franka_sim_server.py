"""franky-sim's MuJoCo FR3 behind libfranka's protocol, on loopback only, with fault injection.

Run as a child process by the tests (``tests/sim_process.py``) or by hand for the example
station::

    python plugins/vla-studio-franka/tests/franka_sim_server.py [--hostname 127.0.0.1]

It prints ``ready <hostname>`` once the robot (TCP 1337) and gripper (TCP 1338) servers listen,
then reads commands, one per line, on stdin (EOF or ``quit`` stops it):

* ``reflex <error> [<error> ...]``: abort the running motion the way a Franka controller does
  for a reflex (``MoveStatus.kReflexAborted``, robot mode ``Reflex``, the errors set in
  ``current_errors``/``last_motion_errors``); libfranka then raises its ControlException. With no
  motion running the robot just enters ``Reflex`` mode. Automatic error recovery clears it.
* ``wrench fx fy fz tx ty tz``: the external wrench the robot state reports (O_F_ext_hat_K).
* ``home``: put the arm back on its start pose, at rest, holding there (a running motion is
  preempted; faults and the wrench are cleared): what a test cell does before each test.
  Without it every test started where the last one left the arm; their +x moves added up to a
  pose near full reach, where Cartesian motions made the simulated joints spin at 10-20 rad/s
  and franky's planner failed (measured).

franky-sim itself never reports protocol errors and binds its UDP sockets to every interface;
here they are bound to the server's loopback address.
"""

from __future__ import annotations

import argparse
import os
import queue
import socket
import sys
import threading

import franky_sim
import mujoco
from franky_sim.franka_gripper_server import FrankaGripperServer
from franky_sim.franka_robot_protocol import (AutomaticErrorRecoveryCommand, MoveStatus,
                                              RobotCommand, RobotMode)
from franky_sim.franka_robot_server import FrankaRobotServer
from franky_sim.franka_server import BaseCommand, NonBlockingReceiver
from franky_sim.mujoco_simulator import MujocoSimulator

# libfranka's order of the 41 error flags, read from franky itself so it cannot drift.
import franky

N_ERRORS = 41


def error_index(name: str) -> int:
    """Position of libfranka error ``name`` in the robot state's error array."""
    for i in range(N_ERRORS):
        errors = franky.Errors.__new__(franky.Errors)
        flags = [False] * N_ERRORS
        flags[i] = True
        errors.__setstate__(tuple(flags))
        if getattr(errors, name, False) is True:
            return i
    raise ValueError(f"unknown libfranka error {name!r}")


class LoopbackUDP:
    """Bind the state/command UDP socket to the server's own loopback address."""

    def _setup_udp_connection(self, network_udp_port: int) -> None:
        super()._setup_udp_connection(network_udp_port)  # type: ignore[misc]
        old = self._FrankaServer__udp_socket
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((self.hostname, 0))
        sock.setblocking(False)
        old.close()
        self._FrankaServer__udp_socket = sock
        self._FrankaServer__udp_receiver = NonBlockingReceiver(sock)


class LoopbackGripperServer(LoopbackUDP, FrankaGripperServer):
    pass


class FaultInjectingRobotServer(LoopbackUDP, FrankaRobotServer):
    """franky-sim's robot server, plus the faults a real controller reports."""

    def __init__(self, robot, hostname_candidates) -> None:
        self.commands: queue.SimpleQueue[list[str]] = queue.SimpleQueue()
        self.errors: tuple[bool, ...] | None = None
        self.wrench = (0.0,) * 6
        super().__init__(robot, hostname_candidates)
        server = self

        class Recovery(AutomaticErrorRecoveryCommand):
            def handle(self, _server) -> None:
                server.errors = None
                super().handle(_server)

        self._FrankaServer__command_class_map[RobotCommand.kAutomaticErrorRecovery] = Recovery

    def _bind_children(self, hostname: str) -> None:
        if self.robot.has_gripper:
            gripper = LoopbackGripperServer(self.robot, hostname)
            gripper.init()
            self._FrankaRobotServer__gripper_server = gripper

    def process_commands(self) -> None:
        super().process_commands()
        while True:
            try:
                words = self.commands.get_nowait()
            except queue.Empty:
                return
            if words[0] == "reflex":
                self._reflex(words[1:])
            elif words[0] == "wrench":
                self.wrench = tuple(float(v) for v in words[1:7])
            elif words[0] == "home":
                self._home()
            reply(f"ok {' '.join(words)}")

    def _reflex(self, names: list[str]) -> None:
        flags = [False] * N_ERRORS
        for name in names:
            flags[error_index(name)] = True
        self.errors = tuple(flags)
        motion_id = self.current_motion_id
        self.stop_motion(send_preemption_signal=False)  # hold where it is, as a reflex does
        if motion_id:
            BaseCommand.send_response(self._tcp_socket, RobotCommand.kMove, motion_id,
                                      MoveStatus.kReflexAborted)
            self.reset_current_motion_id()

    def _home(self) -> None:
        """The arm on its start pose at rest, holding it (run between ``process_commands`` and
        the physics step, on the simulation's thread). A motion still running is preempted."""
        self.stop_motion(send_preemption_signal=True)
        robot = self.robot
        data = robot.data
        for addr, q in zip(robot._qpos_addrs, robot.initial_q):
            data.qpos[addr] = q
        for addr in robot._dof_addrs:
            data.qvel[addr] = 0.0
        data.qacc[:] = 0.0
        mujoco.mj_forward(robot.model, data)
        self._FrankaRobotServer__holding_q = tuple(robot.initial_q)
        # The desired-state trackers difference successive samples: the jump is no velocity.
        for component in robot._tracked_state_components.values():
            tracker = component.observers.get("fd")
            if tracker is not None:
                tracker.clear()
        self.errors, self.wrench = None, (0.0,) * 6

    @property
    def robot_state(self):
        state = super().robot_state.replace(O_F_ext_hat_K=self.wrench, K_F_ext_hat_K=self.wrench)
        if self.errors is not None:
            # On the wire: ``errors`` is libfranka's current_errors, ``reflex_reason`` its
            # last_motion_errors.
            state = state.replace(robot_mode=RobotMode.kReflex, errors=self.errors,
                                  reflex_reason=self.errors)
        return state


class LoopbackSimulationServer(franky_sim.SimulationServer):
    def init(self) -> None:
        for robot in self.sim.robots:
            rs = FaultInjectingRobotServer(robot, self._remaining_hostname_candidates)
            rs.init()
            self.robot_servers.append(rs)
        self.sim.start()


_out_lock = threading.Lock()


def reply(line: str) -> None:
    with _out_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hostname", default=None,
                        help="loopback address to serve on (default: the first free 127.x.y.z)")
    parser.add_argument("--nice", type=int, default=None,
                        help="run at this nice value (negative: ahead of other work; "
                             "ignored without the permission)")
    args = parser.parse_args()
    if args.nice is not None:
        try:  # before any thread starts: they all inherit it
            os.setpriority(os.PRIO_PROCESS, 0, args.nice)
        except OSError as exc:
            print(f"franky-sim keeps its priority ({exc})", file=sys.stderr)
    kwargs = {} if args.hostname is None else {"hostname_candidates": [args.hostname]}
    with MujocoSimulator() as sim:
        sim.add_robot()
        with LoopbackSimulationServer(sim, **kwargs) as server:
            robot_server = server.robot_servers[0]
            server.run_async()
            reply(f"ready {robot_server.hostname}")
            for line in sys.stdin:  # the parent holds our stdin: EOF means it is gone
                words = line.split()
                if not words:
                    continue
                if words[0] == "quit":
                    break
                robot_server.commands.put(words)
            server.running = False


if __name__ == "__main__":
    main()
