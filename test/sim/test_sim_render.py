"""Rendering writes images from world frames with overlays."""

import numpy as np

from rap_planner.sim.render import EpisodeFrame, render_episode
from rap_planner.sim.world import SumoWorld


def _frames(steps: int) -> list[EpisodeFrame]:
    frames = []
    with SumoWorld("merge", seed=0, ego_controlled=False) as world:
        for _ in range(steps):
            world.step()
            ego, agents = world.ego(), world.agents()
            t = np.arange(1, 21)[:, None] * 0.1
            means = [np.stack([[a.x_m, a.y_m] + t * [a.vx_mps, a.vy_mps]] * 2) for a in agents[:5]]
            covs = [np.broadcast_to(np.eye(2) * 0.5, (2, 20, 2, 2)) for _ in means]
            weights = [np.array([0.6, 0.4]) for _ in means]
            cands = np.stack([[ego.x_m, ego.y_m] + t * [ego.v_mps, lat] for lat in (-1.0, 0.0, 1.0)])
            frames.append(EpisodeFrame(world.time_s, ego, agents, means, weights, covs, cands,
                                       np.array([0.3, 0.1, 0.9]), cands[1], text="test"))
    return frames


def test_render_writes_png_and_gif(tmp_path):
    frames = _frames(12)
    written = render_episode(frames, tmp_path / "f.png", tmp_path / "f.gif", scenario="merge", max_frames=6)
    assert [p.name for p in written] == ["f.png", "f.gif"]
    assert (tmp_path / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "f.gif").read_bytes()[:6] in (b"GIF89a", b"GIF87a")
