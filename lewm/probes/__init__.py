"""The four probes of the published LeWM study (latent structure, horizon, surprise, actions; ARCHITECTURE.md
gives their protocols and published figures) plus a linear physics probe, a pose probe (ridge and MLP probes on
still frames of the reset distribution) and violation of expectation. Each is a function over a model (anything
with the two-call interface, handed in by the caller) and episodes, all computed by lewm.stream.LatentStream (the
pose probe: by the model's encoder alone, on still frames).

    from lewm.probes import scene_episodes, run_horizon
    from lewm.torch_backend import TorchBackend
    model = TorchBackend.from_folder("runs/small64/checkpoint")
    result = run_horizon(model, scene_episodes("expert", 5, 1_000_000, model.image_size), horizon=20)
"""
from lewm.probes.actions import run_actions
from lewm.probes.common import dataset_episodes, run_stream, scene_episodes
from lewm.probes.horizon import run_horizon
from lewm.probes.latent import run_latent
from lewm.probes.physics import run_physics
from lewm.probes.pose import run_pose
from lewm.probes.suite import PROBES, ProbeSettings, run_all, run_probe
from lewm.probes.surprise import run_surprise
from lewm.probes.voe import run_voe

__all__ = ["PROBES", "ProbeSettings", "dataset_episodes", "run_actions", "run_all", "run_horizon",
           "run_latent", "run_physics", "run_pose", "run_probe", "run_stream", "run_surprise", "run_voe",
           "scene_episodes"]
