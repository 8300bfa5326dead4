"""An OpenAI-compatible gateway that records an existing agent's trajectories (`agentkd gateway`).

Point an agent written for OpenAI's chat-completions API at the gateway; it forwards every request to the teacher,
answers with the teacher's reply, and records each conversation as an episode (one step per exchange) in a run
folder. Feedback (`POST /v1/feedback`) grades an episode. With `GatewaySettings.cascade` a local student answers
first and the teacher only when the student is unsure (`agentkd gateway --cascade`).

Names are imported on first use, so that `agentkd.gateway.settings` loads without the server (the command line reads
it while it parses its arguments).
"""

from __future__ import annotations

import importlib
from typing import Any

_MODULE_OF = {
    "CascadeGatewaySettings": "settings", "GatewaySettings": "settings", "EpisodeBook": "episodes",
    "UnknownEpisodeError": "episodes", "RequestRefused": "protocol", "Gateway": "server", "serve": "server",
    "TrafficCalibration": "calibration", "calibrate_traffic": "calibration", "traffic_threshold": "calibration",
}
__all__ = list(_MODULE_OF)


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'agentkd.gateway' has no attribute {name!r}")
    return getattr(importlib.import_module(f"agentkd.gateway.{_MODULE_OF[name]}"), name)
