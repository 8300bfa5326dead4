"""An OpenAI-compatible gateway that records an existing agent's trajectories (`agentkd gateway`).

Point an agent written for OpenAI's chat-completions API at the gateway; it forwards every request to the teacher,
answers with the teacher's reply, and records each conversation as an episode (one step per exchange) in a run
folder. Feedback (`POST /v1/feedback`) grades an episode.
"""

from agentkd.gateway.episodes import EpisodeBook, UnknownEpisodeError
from agentkd.gateway.protocol import RequestRefused
from agentkd.gateway.server import Gateway, serve
from agentkd.gateway.settings import GatewaySettings

__all__ = ["EpisodeBook", "Gateway", "GatewaySettings", "RequestRefused", "UnknownEpisodeError", "serve"]
