"""Episodes recorded by the gateway: which episode an exchange belongs to, and writing each one to the run folder.

Every exchange (one request and the teacher's reply) is one `Step`. After each exchange the episode is appended to
`trajectories.jsonl` again, whole, with its `revision` raised by one: the file stays append-only (a crash loses at
most the line being written, cut on restart by `RunFolder.repair`) and a reader keeps each episode's last revision.
On start the book re-reads the run, so a client that continues a conversation after a restart lands in the episode
it began.

An episode is recorded ungraded (`Trajectory.graded` False) until feedback grades it; a step added after feedback
makes it ungraded again (the grade was for a shorter episode).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agentkd.errors import GatewayError
from agentkd.evaluate.prices import Price
from agentkd.gateway.conversation import prefix_digests
from agentkd.records import Role, Step, Task, Trajectory, Usage, Vote
from agentkd.run.folder import RunFolder
from agentkd.tool_calls import message_text, tool_calls_of
from agentkd.version import __version__

SOURCE = "gateway"
"""`Task.metadata["source"]` of the episodes the gateway records."""
REPLY_POSITIONS = "reply_positions"
"""`Task.metadata` key: the index in `Trajectory.messages` of each step's reply."""
FORKED_FROM = "forked_from"
"""`Task.metadata` key of an episode that branched off another one (a request continuing an earlier state of it)."""


class UnknownEpisodeError(GatewayError):
    """Feedback named an episode this run has not recorded."""


@dataclass
class Episode:
    """One recorded episode and where its replies sit in its conversation."""

    trajectory: Trajectory
    positions: list[int] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    written: bool = False
    """Whether a line of this episode is in the run already (later lines are revisions)."""

    @property
    def id(self) -> str:
        return self.trajectory.task.id


class EpisodeBook:
    """The gateway's episodes: groups exchanges into episodes and appends them to the run folder.

    Not thread-safe: the gateway calls it from its event loop only, between awaits."""

    def __init__(self, folder: RunFolder, teacher: str, price: Price, success_threshold: float = 0.5,
                 policy: str | None = None, prices: dict[str, Price] | None = None) -> None:
        self.folder = folder
        self.teacher = teacher
        self.price = price
        self.prices = {"teacher": price, **(prices or {})}
        """role -> price of the tokens spent in it (a role left out costs $0)."""
        self.policy = policy or f"gateway:{teacher}"
        """`Trajectory.policy` of new episodes."""
        self.success_threshold = success_threshold
        self.episodes: dict[str, Episode] = {}
        self._index: dict[str, tuple[str, int]] = {}
        """Digest of a conversation ending in a step's reply -> (episode id, step index)."""

    # reading the run ----------------------------------------------------------------
    def load(self) -> int:
        """Cut a torn last line, then re-read the gateway episodes the run holds. Returns how many."""
        self.folder.repair()
        for trajectory in self.folder.iter_trajectories():
            if trajectory.task.metadata.get("source") != SOURCE:
                continue
            positions = [int(p) for p in trajectory.task.metadata.get(REPLY_POSITIONS, [])]
            episode = Episode(trajectory=trajectory, positions=positions, written=True,
                              started=_started(trajectory))
            self.episodes[episode.id] = episode
            self._index_episode(episode)
        return len(self.episodes)

    def _index_episode(self, episode: Episode) -> None:
        digests = prefix_digests(episode.trajectory.messages)
        for step, position in enumerate(episode.positions):
            if 0 <= position < len(digests):
                self._index[digests[position]] = (episode.id, step)

    # recording ----------------------------------------------------------------------
    def record(self, messages: list[dict[str, Any]], reply: dict[str, Any], usage: Usage, latency_s: float,
               tools: list[dict[str, Any]] | None = None, episode_id: str | None = None,
               model: str | None = None, role: Role = "teacher", vote: Vote | None = None,
               candidates: list[str] | None = None, role_usage: dict[str, Usage] | None = None) -> Trajectory:
        """Add one exchange (the request's `messages`, the `reply` message that answered it) as a step of its
        episode, and append the episode to the run. The episode is `episode_id` when given (created when new), else
        the one whose conversation `messages` continues, else a new one.

        `role` answered; a cascade step also gives its `vote`, the student's `candidates` and the usage of each
        role (`role_usage`, which then replaces `usage`). Each role's tokens are priced at its price."""
        episode, prior = self._episode_for(messages, episode_id)
        trajectory = episode.trajectory
        if trajectory.steps and prior is not None:
            trajectory.steps[-1].observation = observation_text(messages[prior:])
        split = {name: self._priced(name, spent) for name, spent in (role_usage or {role: usage}).items()}
        usage = sum(split.values(), Usage())
        calls = tool_calls_of(reply)
        text = message_text(reply.get("content"))
        step = Step(index=len(trajectory.steps), role=role, model=model or self.teacher, output=text,
                    thought=text if calls else "", tool_calls=calls, usage=usage, latency_s=latency_s,
                    vote=vote, candidates=candidates, role_usage=split if len(split) > 1 else {})
        if trajectory.steps and prior is None:  # named episode, conversation not continued: earlier replies unplaced
            episode.positions = [-1] * len(episode.positions)
        trajectory.steps.append(step)
        trajectory.messages = [*messages, reply]
        episode.positions.append(len(messages))
        trajectory.task.metadata[REPLY_POSITIONS] = list(episode.positions)
        if tools is not None:
            trajectory.tools = tools
        trajectory.usage = trajectory.usage + usage
        trajectory.final_answer = None if calls else text
        trajectory.duration_s = round(time.time() - episode.started, 3)
        trajectory.graded, trajectory.score, trajectory.success = False, 0.0, False
        self._write(episode)
        self._index[prefix_digests(trajectory.messages)[-1]] = (episode.id, step.index)
        return trajectory

    def _priced(self, role: str, usage: Usage) -> Usage:
        price = self.prices.get(role)
        return usage.model_copy(update={"cost_usd": price.dollars(usage) if price is not None else 0.0})

    def _episode_for(self, messages: list[dict[str, Any]], episode_id: str | None) -> tuple[Episode, int | None]:
        """The episode of a request, and how many of its messages the episode's conversation already holds."""
        digests = prefix_digests(messages)
        if episode_id is not None:
            episode = self.episodes.get(episode_id)
            if episode is None:
                return self._new(messages, episode_id), None
            held = len(episode.trajectory.messages)
            known = prefix_digests(episode.trajectory.messages)
            continues = 0 < held < len(messages) and digests[held - 1] == known[-1]
            return episode, held if continues else None
        for length in range(len(messages) - 1, 0, -1):  # the longest earlier conversation this request extends
            found = self._index.get(digests[length - 1])
            if found is None:
                continue
            episode = self.episodes[found[0]]
            if found[1] != len(episode.trajectory.steps) - 1:
                episode = self._fork(episode, found[1])
            return episode, length
        return self._new(messages, None), None

    def _new(self, messages: list[dict[str, Any]], episode_id: str | None) -> Episode:
        first_user = next((message_text(m.get("content")) for m in messages if m.get("role") == "user"), "")
        episode_id = episode_id or f"ep-{uuid.uuid4().hex[:16]}"
        trajectory = Trajectory(task=Task(id=episode_id, prompt=first_user, metadata={"source": SOURCE}),
                                policy=self.policy, versions={"agentkd": __version__}, graded=False)
        episode = Episode(trajectory=trajectory)
        self.episodes[episode_id] = episode
        return episode

    def _fork(self, episode: Episode, step: int) -> Episode:
        """A new episode holding `episode`'s first `step + 1` steps: a request continued an earlier state of it."""
        source = episode.trajectory
        fork = self._new(source.messages, None)
        kept = episode.positions[: step + 1]
        fork.trajectory.messages = [dict(m) for m in source.messages[: kept[-1] + 1]]
        fork.trajectory.steps = [s.model_copy(deep=True) for s in source.steps[: step + 1]]
        fork.trajectory.tools = source.tools
        fork.trajectory.usage = sum((s.usage for s in fork.trajectory.steps), Usage())
        fork.trajectory.task.metadata[FORKED_FROM] = episode.id
        fork.positions = list(kept)
        fork.started = episode.started
        return fork

    # grading ------------------------------------------------------------------------
    def grade(self, episode_id: str, score: float, success: bool | None = None) -> Trajectory:
        """Record an episode's outcome: `score` in [0, 1]; success as given, else score >= the success threshold."""
        episode = self.episodes.get(episode_id)
        if episode is None:
            raise UnknownEpisodeError(f"no episode {episode_id!r} in {self.folder.path}: use the id the gateway "
                                      "returned in the X-Agentkd-Episode header")
        trajectory = episode.trajectory
        trajectory.score = score
        trajectory.success = success if success is not None else score >= self.success_threshold
        trajectory.graded = True
        self._write(episode)
        return trajectory

    def _write(self, episode: Episode) -> None:
        """Append the episode as one line: revision 0 the first time, then one more each time."""
        if episode.written:
            episode.trajectory.revision += 1
        self.folder.append(episode.trajectory)
        episode.written = True


def observation_text(messages: list[dict[str, Any]]) -> str:
    """What followed a reply, as text: the tool results (and any user turn) the next request brought."""
    parts = []
    for message in messages:
        text = message_text(message.get("content"))
        role = message.get("role")
        parts.append(text if role == "tool" else f"[{role}] {text}")
    return "\n".join(parts)


def _started(trajectory: Trajectory) -> float:
    """When a recorded episode began, as a timestamp (now when its record does not say)."""
    try:
        return datetime.fromisoformat(trajectory.started_at).timestamp()
    except ValueError:
        return time.time()
