"""Train the example policies in `examples/policies/` (Metta's external format, `pytorch://`).

Imitation with DAgger on the batched runner: the learner (a small Metta `Recurrent`) plays whole
episodes through `play_episodes`; an expert that sees only the current view (`ViewExpert`: walk to a
visible altar or untagged opponent, else follow a wall) says what it would have done at every
step, in Metta's action heads (turn, then move forward). Early iterations let the expert drive; later
ones let the learner drive, so it learns to recover from its own mistakes. Each iteration trains
the LSTM on whole episodes (backpropagation through time) from the last few iterations.

Training maps are generated from the seed and are not the suites' maps. Same seed, same torch
build and thread count (`--threads`): same checkpoint. The shipped ones took 35 minutes (2 CPU
cores, shared with other work) and 12 minutes:

    python scripts/train_examples.py navigation --out examples/policies/navigation.pt
    python scripts/train_examples.py laser_tag --out examples/policies/laser_tag.pt
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml
from torch import nn

from pytest_policyeval.atomic import atomic_writer
from pytest_policyeval.collection.suite import load_suite
from pytest_policyeval.policies.base import Actor
from pytest_policyeval.policies.metta.network import Policy, Recurrent
from pytest_policyeval.policies.metta.policy import MettaActor, MettaPolicy
from pytest_policyeval.policies.metta.presets import DEFAULT_PRESET, PRESETS
from pytest_policyeval.runner import play_episodes
from pytest_policyeval.seeding import uniforms
from pytest_policyeval.spec import EnvSpec
from pytest_policyeval.task import Task

# Small enough for a checkpoint well under 2 MB, large enough to learn both games.
ARCHITECTURE = {
    "policy": {"cnn_channels": [32, 32], "hidden_size": 128, "cnn_hidden": 64, "self_hidden": 64},
    "input_size": 128,
    "hidden_size": 128,
}
# What the shipped checkpoints were trained with (laser_tag episodes hold up to 8 agents).
DEFAULTS = {
    "navigation": {"iterations": 16, "maps": 48, "epochs": 8, "keep": 4},
    "laser_tag": {"iterations": 16, "maps": 24, "epochs": 4, "keep": 3},
}
# The policies learn the default preset's meanings (Metta's June 2025 engine): 22 channels, 9 types.
PRESET = PRESETS[DEFAULT_PRESET]
ROTATE, MOVE = PRESET.action_types.index("rotate"), PRESET.action_types.index("move")


# -- training maps ---------------------------------------------------------------------------------


def room(rng: np.random.Generator, height: int, width: int, walls: float) -> np.ndarray:
    grid = np.full((height, width), ".")
    grid[0, :] = grid[-1, :] = grid[:, 0] = grid[:, -1] = "#"
    for _ in range(int(walls * height * width / 4)):  # short wall segments
        r, c = rng.integers(1, height - 1), rng.integers(1, width - 1)
        length, vertical = rng.integers(2, 6), rng.random() < 0.5
        for i in range(length):
            rr, cc = (r + i, c) if vertical else (r, c + i)
            if 0 < rr < height - 1 and 0 < cc < width - 1:
                grid[rr, cc] = "#"
    return grid


def maze(rng: np.random.Generator, cells_h: int, cells_w: int) -> np.ndarray:
    """A depth-first maze with some extra openings, so there are loops."""
    grid = np.full((2 * cells_h + 1, 2 * cells_w + 1), "#")
    stack, seen = [(0, 0)], {(0, 0)}
    grid[1, 1] = "."
    while stack:
        r, c = stack[-1]
        options = [
            (r + dr, c + dc)
            for dr, dc in ((0, 1), (1, 0), (0, -1), (-1, 0))
            if 0 <= r + dr < cells_h and 0 <= c + dc < cells_w and (r + dr, c + dc) not in seen
        ]
        if not options:
            stack.pop()
            continue
        nr, nc = options[rng.integers(len(options))]
        grid[2 * nr + 1, 2 * nc + 1] = grid[r + nr + 1, c + nc + 1] = "."
        seen.add((nr, nc))
        stack.append((nr, nc))
    inner = grid[1:-1, 1:-1]
    openings = rng.random(inner.shape) < 0.08
    inner[openings] = "."
    return grid


def connected_floor(grid: np.ndarray, start: tuple[int, int]) -> list[tuple[int, int]]:
    seen, todo = {start}, [start]
    while todo:
        r, c = todo.pop()
        for nr, nc in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):
            if grid[nr, nc] != "#" and (nr, nc) not in seen:
                seen.add((nr, nc))
                todo.append((nr, nc))
    return sorted(seen)


def place(rng: np.random.Generator, grid: np.ndarray, chars: list[str]) -> np.ndarray | None:
    floor = [tuple(cell) for cell in np.argwhere(grid == ".")]
    if not floor:
        return None
    region = connected_floor(grid, floor[rng.integers(len(floor))])
    if len(region) < len(chars) + 4:
        return None
    picks = rng.choice(len(region), size=len(chars), replace=False)
    for char, pick in zip(chars, picks, strict=True):
        grid[region[pick]] = char
    return grid


def navigation_map(rng: np.random.Generator) -> np.ndarray:
    while True:
        if rng.random() < 0.4:
            grid = maze(rng, int(rng.integers(3, 13)), int(rng.integers(3, 13)))
        else:
            grid = room(rng, int(rng.integers(7, 24)), int(rng.integers(7, 30)), float(rng.uniform(0, 0.5)))
        goals = ["_"] * int(rng.choice([1, 1, 1, 2, 3]))
        placed = place(rng, grid, ["@", *goals])
        if placed is not None:
            return placed


def laser_tag_map(rng: np.random.Generator) -> np.ndarray:
    while True:
        grid = room(rng, int(rng.integers(7, 16)), int(rng.integers(9, 26)), float(rng.uniform(0, 0.3)))
        per_team = int(rng.integers(1, 5))
        placed = place(rng, grid, ["1"] * per_team + ["2"] * per_team)
        if placed is not None:
            return placed


def training_suite(game: str, rng: np.random.Generator, count: int, folder: Path, seed: int) -> list[Task]:
    make = navigation_map if game == "navigation" else laser_tag_map
    tasks = []
    for index in range(count):
        (folder / f"{index}.map").write_text("\n".join("".join(row) for row in make(rng)) + "\n")
        task = {"name": f"train/{index}", "map": f"{index}.map", "max_steps": 150}
        if game == "navigation":  # every goal, as in sparse_goals
            task.update(max_steps=300, goals_to_finish="all")
        tasks.append(task)
    suite = {"name": "train", "seed": seed, "defaults": {"game": game, "num_episodes": 4}, "tasks": tasks}
    (folder / "train.yaml").write_text(yaml.safe_dump(suite))
    return list(load_suite(folder / "train.yaml").tasks)


# -- DAgger on the runner --------------------------------------------------------------------------


@dataclass
class Recording:
    boxes: list[torch.Tensor] = field(default_factory=list)  # per step: [rows, C, W, W] uint8
    slots: list[np.ndarray] = field(default_factory=list)
    kinds: list[np.ndarray] = field(default_factory=list)
    args: list[np.ndarray] = field(default_factory=list)

    def sequences(self, num_slots: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Time-major padded tensors: boxes [T, S, C, W, W], labels [T, S] x2, mask [T, S]."""
        steps = len(self.boxes)
        shape = self.boxes[0].shape[1:]
        boxes = torch.zeros((steps, num_slots, *shape), dtype=torch.uint8)
        kinds = torch.zeros((steps, num_slots), dtype=torch.long)
        args = torch.zeros((steps, num_slots), dtype=torch.long)
        mask = torch.zeros((steps, num_slots), dtype=torch.bool)
        for step, (box, slots, kind, arg) in enumerate(
            zip(self.boxes, self.slots, self.kinds, self.args, strict=True)
        ):
            index = torch.from_numpy(slots)
            boxes[step, index] = box
            kinds[step, index] = torch.from_numpy(kind)
            args[step, index] = torch.from_numpy(arg)
            mask[step, index] = True
        return boxes, kinds, args, mask


STEP = {0: (-1, 0), 1: (1, 0), 2: (0, -1), 3: (0, 1)}  # Metta orientations: Up, Down, Left, Right
RIGHT_OF = {0: 3, 3: 1, 1: 2, 2: 0}
LEFT_OF = {value: key for key, value in RIGHT_OF.items()}
TURN_ROUND = np.array([1, 0, 3, 2])


class ViewExpert(Actor):
    """The expert both games are imitated from: it needs no map memory, so a small recurrent
    policy can copy it closely.

    With a target in view (an altar; in laser_tag an opponent that is not frozen) it walks the
    shortest path there within the view, around walls and other agents; otherwise it keeps its
    right hand on a wall (or walks straight until it meets one). Its choices depend only on the
    view, the agent's orientation and one bit of memory: a turn in place is followed by a step
    forward (re-deciding after the turn would turn again at every corner). It answers in absolute
    directions, like a scripted policy.
    """

    def __init__(self, env: EnvSpec, orientation_of: MettaActor):
        self.tag = env.feature_names.index("tag")
        self.wall = env.tag_names.index("type:wall")
        self.goal = env.tag_names.index("type:altar") if "type:altar" in env.tag_names else -1
        self.group = env.feature_id("agent:group")
        self.ready = env.feature_id("inv:ready")  # only laser_tag has it
        self.centre = env.obs_height // 2
        self.moves = [env.action_names.index(f"move_{d}") for d in ("north", "south", "west", "east")]
        self.orientation_of = orientation_of
        self.turned = np.zeros(0, dtype=bool)

    def reset(self, slot_seeds: np.ndarray) -> None:
        self.turned = np.zeros(len(slot_seeds), dtype=bool)

    def act(self, observations: np.ndarray, slots: np.ndarray, step: int) -> np.ndarray:
        facing = self.orientation_of.orientation[slots]
        directions = [
            self._one(obs, int(o), bool(turned))
            for obs, o, turned in zip(observations, facing, self.turned[slots], strict=True)
        ]
        self.turned[slots] = np.array(directions) != facing
        return np.array([self.moves[d] for d in directions])

    def _one(self, tokens: np.ndarray, facing: int, turned: bool) -> int:
        spatial = tokens[tokens[:, 0] < 0xFE]
        centre = self.centre
        cells = [((int(c) >> 4) - centre, (int(c) & 0xF) - centre, int(f), int(v)) for c, f, v in spatial]
        walls = {(r, c) for r, c, f, v in cells if f == self.tag and v == self.wall}
        targets = {(r, c) for r, c, f, v in cells if f == self.tag and v == self.goal}
        if self.ready is not None:  # laser_tag: opponents that can be tagged; every agent is in the way
            groups = {(r, c): v for r, c, f, v in cells if f == self.group}
            ready = {(r, c): v for r, c, f, v in cells if f == self.ready}
            full = max(ready.values(), default=0)
            mine = groups.get((0, 0), 0)
            targets = {cell for cell, group in groups.items() if group != mine and ready.get(cell, 0) >= full}
            walls |= {cell for cell in groups if cell != (0, 0) and cell not in targets}
        if turned and STEP[facing] not in walls:
            return facing
        direction = self._to_target(walls, targets) if targets else None
        if direction is None:
            direction = self._follow(walls, facing)
        return direction

    def _to_target(self, walls: set, targets: set) -> int | None:
        # mettagrid shows a disc, not the whole square: cells beyond it are unseen, not free.
        seen = self.centre**2 + 1
        todo, first = [(0, 0)], {(0, 0): None}
        for cell in todo:
            if cell in targets:
                return first[cell]
            for direction, (dr, dc) in STEP.items():
                nxt = (cell[0] + dr, cell[1] + dc)
                if nxt in first or nxt in walls or nxt[0] ** 2 + nxt[1] ** 2 > seen:
                    continue
                first[nxt] = direction if first[cell] is None else first[cell]
                todo.append(nxt)
        return None

    def _follow(self, walls: set, facing: int) -> int:
        def free(direction: int) -> bool:
            return STEP[direction] not in walls

        right, left = RIGHT_OF[facing], LEFT_OF[facing]
        back_right = (STEP[right][0] - STEP[facing][0], STEP[right][1] - STEP[facing][1])
        if not free(right) or back_right in walls:  # a wall at the right hand: keep it there
            order = [right, facing, left, LEFT_OF[left]]
        else:
            order = [facing, left, right, LEFT_OF[left]]
        return next((d for d in order if free(d)), facing)


class DaggerActor(Actor):
    """Acts as the learner or the expert (chosen per agent-step with probability `beta`); records
    the learner's observations with the expert's choice as the label."""

    def __init__(self, learner: MettaActor, expert: Actor, beta: float, recording: Recording):
        self.learner, self.expert, self.beta, self.recording = learner, expert, beta, recording
        self.seeds = np.zeros(0, dtype=np.uint64)

    def reset(self, slot_seeds: np.ndarray) -> None:
        self.seeds = np.asarray(slot_seeds, dtype=np.uint64) ^ np.uint64(0xDA66E5)
        self.learner.reset(slot_seeds)
        self.expert.reset(slot_seeds)

    def rewarded(self, rewards: np.ndarray, slots: np.ndarray) -> None:
        self.learner.rewarded(rewards, slots)  # the policy sees last_reward in training too

    def act(self, observations: np.ndarray, slots: np.ndarray, step: int) -> np.ndarray:
        expert_actions = self.expert.act(observations, slots, step)
        facing = self.learner.orientation[slots]
        label_kind, label_arg = self.learner.actions.label(expert_actions, facing)
        # Turn round rather than step back: the expert's wall rule reads the facing as its heading.
        back = (label_kind == MOVE) & (label_arg == 1)
        label_kind[back], label_arg[back] = ROTATE, TURN_ROUND[facing[back]]
        box = self.learner.observe(observations, slots, step)
        kinds, args = self.learner.decide(box, slots, step)
        follow = uniforms(self.seeds[slots], step, 1)[:, 0] < self.beta
        kinds = np.where(follow, label_kind, kinds)
        args = np.where(follow, label_arg, args)
        self.recording.boxes.append(box.clamp(0, 255).to(torch.uint8))
        self.recording.slots.append(np.asarray(slots))
        self.recording.kinds.append(label_kind)
        self.recording.args.append(label_arg)
        return self.learner.apply(kinds, args, slots)


class Learner(MettaPolicy):
    """The network under training as a policy the runner can play, recording as it goes."""

    def __init__(self, network: Recurrent, beta: float):
        super().__init__(
            uri="train://learner",
            name="learner",
            network=network,
            feature_names=PRESET.feature_names(network.obs_channels, "train"),
            action_types=list(PRESET.action_types),
            type_ids=dict(PRESET.type_ids),
            info={},
            preset=PRESET,
        )
        self.beta = beta
        self.recordings: list[Recording] = []

    def actor(self, env: EnvSpec, device: str = "cpu") -> Actor:
        recording = Recording()
        learner = MettaActor(self, env, device)
        actor = DaggerActor(learner, ViewExpert(env, learner), self.beta, recording)
        self.recordings.append(recording)
        return actor


def batches(data: list, size: int) -> list:
    """Stack episodes' sequences side by side (padding time), `size` recordings per batch."""
    out = []
    for first in range(0, len(data), size):
        group = data[first : first + size]
        steps = max(part[0].shape[0] for part in group)

        def pad(tensor: torch.Tensor, steps: int = steps) -> torch.Tensor:
            extra = torch.zeros((steps - tensor.shape[0], *tensor.shape[1:]), dtype=tensor.dtype)
            return torch.cat([tensor, extra])

        out.append(tuple(torch.cat([pad(part[i]) for part in group], dim=1) for i in range(4)))
    return out


def train_on(
    network: Recurrent, data: list, epochs: int, optimiser: torch.optim.Optimizer, batch: int
) -> float:
    network.train()
    losses = []
    for _ in range(epochs):
        for boxes, kinds, args, mask in batches(data, batch):
            logits, _ = network.sequence(boxes.float())
            loss_kind = nn.functional.cross_entropy(logits[0][mask], kinds[mask])
            # The argument matters for move (forward/back) and rotate (which way) only.
            has_arg = mask & ((kinds == MOVE) | (kinds == ROTATE))
            loss_arg = nn.functional.cross_entropy(logits[1][has_arg], args[has_arg]) if has_arg.any() else 0
            loss = loss_kind + loss_arg
            optimiser.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(network.parameters(), 1.0)
            optimiser.step()
            losses.append(float(loss.detach()))
    network.eval()
    return float(np.mean(losses[-max(1, len(data) // batch) :]))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("game", choices=sorted(DEFAULTS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (results depend on it)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--iterations", type=int, help="DAgger iterations (default: the game's)")
    parser.add_argument("--maps", type=int, help="training maps per iteration (default: the game's)")
    parser.add_argument("--epochs", type=int, help="passes over the kept episodes per iteration")
    parser.add_argument("--keep", type=int, help="iterations of episodes kept for training")
    parser.add_argument("--batch", type=int, default=4, help="maps' episodes per gradient step")
    args = parser.parse_args()
    for key, value in DEFAULTS[args.game].items():
        if getattr(args, key) is None:
            setattr(args, key, value)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    arch = ARCHITECTURE
    network = Recurrent(Policy(**arch["policy"]), arch["input_size"], arch["hidden_size"])
    optimiser = torch.optim.Adam(network.parameters(), lr=2e-3)
    data: list = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for iteration in range(args.iterations):
            beta = max(0.0, 1.0 - iteration / max(1, args.iterations - 2))
            folder = Path(tmp) / str(iteration)
            folder.mkdir()
            tasks = training_suite(args.game, rng, args.maps, folder, seed=args.seed * 1000 + iteration)
            learner = Learner(network, beta)
            scores = []
            for task in tasks:
                rollout = play_episodes(task, learner)
                scores.append(np.mean([np.mean(e.rewards) for e in rollout.episodes]))
            if iteration == 0:  # the normaliser: each feature's largest value seen
                seen = torch.stack(
                    [box.float().amax(dim=(0, 2, 3)) for r in learner.recordings for box in r.boxes]
                )
                network.policy.max_vec.copy_(seen.amax(dim=0).clamp(min=1.0).view_as(network.policy.max_vec))
            for recording in learner.recordings:
                agents = max(int(slots.max()) for slots in recording.slots) + 1
                data.append(recording.sequences(agents))
            data = data[-args.keep * args.maps :]  # keep the last few iterations' episodes
            loss = train_on(network, data, args.epochs, optimiser, args.batch)
            print(
                f"iteration {iteration}: beta {beta:.2f}, mean score {np.mean(scores):.3f} "
                f"(learner share {1 - beta:.0%}), loss {loss:.3f}, {time.perf_counter() - start:.0f}s",
                flush=True,
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    # Upstream's layout (PufferLib 3.0's Recurrent): `lstm.*` and `cell.*` share storage, so
    # torch.save writes those weights once.
    with atomic_writer(args.out) as handle:
        torch.save(network.state_dict(), handle)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
