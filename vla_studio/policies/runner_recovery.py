"""What a policy runner does when its model fails or its confidence drops (the client thread).

A mixin of :class:`~vla_studio.policies.runner.PolicyRunner`, kept apart so the runner's main
module stays about the normal path: every method here runs on the runner's client thread and
uses the runner's own state (flush, session, events, host).

* crash (the child died) -> hold, pause, ``policy.crashed``; restart on request;
* hang (no answer within ``request_timeout_s``) -> hold, pause, ``policy.hung``; a local child is
  killed and restarted (the run stays paused);
* a remote server unreachable -> hold, ``policy.disconnected``, reconnect with backoff;
* failing requests -> counted; ``ERRORS_BEFORE_PAUSE`` in a row pause the run;
* low confidence -> the fallback: pause and ask for help, hold, or hand over to teleop.
"""

from __future__ import annotations

import logging

from vla_studio.core.session import ControlMode, SessionError
from vla_studio.policies.client import PolicyTimeout
from vla_studio.policies.errors import PolicyConnectionError, PolicyError, one_line
from vla_studio.policies.runner_stats import CRASHED, DISCONNECTED, ERROR, HUNG, IDLE, STARTING
from vla_studio.policies.station_fit import check_fit

log = logging.getLogger("vla_studio.policies.runner")
ERRORS_BEFORE_PAUSE = 3


class RunnerRecovery:
    """Failure and fallback handling of the policy runner (see the module docstring)."""

    def _run_fallback(self) -> None:
        reason, mode = self._fallback_reason, self.settings.fallback
        if mode == "pause" and self.session is not None:
            self.session.pause(reason)
        elif mode == "teleop" and self.session is not None:
            self.session.set_mode(ControlMode.TELEOP)  # pauses: the handover is explicit
            try:
                self.session.start(ControlMode.TELEOP)
            except SessionError as exc:
                log.warning("low-confidence handover to teleop refused: %s", exc)
        action = {"pause": "the run is paused: take over or press Start to let it continue",
                  "hold": "the robot holds: take over, or resume the policy",
                  "teleop": "the teleop device has control"}[mode]
        self.events.emit("policy.help", f"{reason[0].upper()}{reason[1:]}; {action}.",
                         logging.WARNING, fallback=mode, confidence=self.confidence)

    def _restart_model(self, why: str) -> None:
        self.flush()
        self.state, self.message = STARTING, f"restarting the model ({why})"
        try:
            policy = self.host.restart()
            if self.offer is not None:
                check_fit(policy.spec, self.offer, self.host.label, self.settings.rate_tolerance)
            policy.reset(self._instruction)
        except PolicyError as exc:
            self._fail(ERROR, f"restarting the policy failed: {exc}")
            return
        self._policy, self._last_chunk, self._last_sent_tick = policy, None, -1
        self.restarts += 1
        self.state, self.message = IDLE, ""
        self.events.emit("policy.restarted", f"Policy restarted ({why}).")

    def _fail(self, state: str, message: str, kind: str = "policy.error",
              pause: bool = True) -> None:
        self.flush()
        self.message = message
        if pause and self.session is not None:
            self.session.pause(message)
        self.events.emit(kind, message[0].upper() + message[1:] + ".", logging.ERROR,
                         state=state)
        # The state last: whoever waits for it (the panel, tests) finds the session paused and
        # the event published already.
        self.state = state

    def _on_hung(self, exc: PolicyTimeout) -> None:
        self.errors += 1
        t = self.settings.request_timeout_s
        if self.host.can_kill and self.settings.restart_on_hang:
            self._fail(HUNG, f"the model did not answer within {t:.1f} s: it was stopped and is "
                       "restarting; press Start to continue", kind="policy.hung")
            self.host.kill()
            self._restart_model("it hung")
        else:
            self._fail(HUNG, f"the model did not answer within {t:.1f} s; restart the policy",
                       kind="policy.hung")

    def _on_connection_error(self, exc: PolicyConnectionError) -> None:
        self.errors += 1
        if not self.host.alive():
            self._fail(CRASHED, f"the policy process {self.host.exit_description()}: the robot "
                       "holds; restart the policy to continue", kind="policy.crashed")
            return
        if self.state != DISCONNECTED:
            self.flush()
            self.state, self.message = DISCONNECTED, f"{exc}; holding and reconnecting"
            self.events.emit("policy.disconnected", f"{exc}: the robot holds while VLA Studio "
                             "reconnects.", logging.WARNING)
        self._last_sent_tick = -1  # retry with the next observation (the client backs off)

    def _on_error(self, exc: Exception) -> None:
        self.errors += 1
        self._consecutive_errors += 1
        text = str(exc) if isinstance(exc, PolicyError) else f"the policy failed: {one_line(exc)}"
        log.warning("policy request failed: %s", text)
        if self._consecutive_errors >= ERRORS_BEFORE_PAUSE:
            self._fail(ERROR, f"{text} ({self._consecutive_errors} times in a row); fix it and "
                       "restart the policy")
        elif self._consecutive_errors == 1:
            self.events.emit("policy.error", f"Policy request failed: {text}", logging.WARNING)
