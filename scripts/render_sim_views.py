"""Render the simulated station's cameras to PNG (the README's screenshots).

Runs the scripted expert on a task until a chosen phase, so the pictures show the arm at work,
then renders the front and wrist cameras at the size asked for, with shadows on the front view
(``--shadows``; the default profile renders without them to save CPU):

    python scripts/render_sim_views.py                       # docs/images/sim_front.png, sim_wrist.png
    python scripts/render_sim_views.py --out /tmp --size 320x240 --phase close
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2

from vla_studio.sim.expert import PHASES, ScriptedExpert
from vla_studio.sim.render import SceneRenderer
from vla_studio.sim.scene import load_model
from vla_studio.sim.tasks import parse_instruction
from vla_studio.sim.world import SimWorld

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    parser.add_argument("--size", default="640x480", help="WIDTHxHEIGHT")
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--instruction", default="put the red cube in the bowl")
    parser.add_argument("--phase", default="descend", choices=PHASES,
                        help="stop when the expert reaches this phase")
    parser.add_argument("--extra-ticks", type=int, default=3, help="ticks to run into the phase")
    parser.add_argument("--cameras", default="front,wrist")
    parser.add_argument("--shadows", default="front", help="cameras rendered with shadows")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))

    world = SimWorld(load_model())
    task = parse_instruction(args.instruction)
    world.reset(args.seed, accept=task.accepts)
    expert = ScriptedExpert(world)
    expert.reset(task)
    extra = None
    for _ in range(2000):
        action = expert.act(0.05)
        if action is None:
            break
        world.step_ee_delta(action, 0.05)
        if extra is None and expert.phase == args.phase:
            extra = args.extra_ticks
        if extra is not None:
            extra -= 1
            if extra <= 0:
                break
    args.out.mkdir(parents=True, exist_ok=True)
    shadows = set(args.shadows.split(","))
    for camera in args.cameras.split(","):
        renderer = SceneRenderer(world.model, camera, width, height, shadows=camera in shadows)
        rgb, _ = renderer.render(world.snapshot())
        renderer.close()
        path = args.out / f"sim_{camera}.png"
        cv2.imwrite(str(path), rgb[..., ::-1])
        print(path)


if __name__ == "__main__":
    main()
