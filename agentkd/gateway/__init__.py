"""An OpenAI-compatible gateway that records an existing agent's trajectories (`agentkd gateway`).

Point an agent written for OpenAI's chat-completions API at the gateway; it forwards every request to the teacher,
answers with the teacher's reply, and records each conversation as an episode (one step per exchange) in a run
folder. Feedback (`POST /v1/feedback`) grades an episode. With `GatewaySettings.cascade` a local student answers
first and the teacher only when the student is unsure (`agentkd gateway --cascade`).
"""

from agentkd.gateway.episodes import EpisodeBook, UnknownEpisodeError
from agentkd.gateway.protocol import RequestRefused
from agentkd.gateway.server import Gateway, serve
from agentkd.gateway.settings import CascadeGatewaySettings, GatewaySettings

__all__ = ["CascadeGatewaySettings", "EpisodeBook", "Gateway", "GatewaySettings", "RequestRefused",
           "UnknownEpisodeError", "serve"]
