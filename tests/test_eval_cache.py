"""Per-episode results are kept: an unchanged policy and task is never played twice, a change of
what matters plays again exactly what changed, and a resumed gate continues where it stopped."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers import make_checkpoint, task_details, write_suite

SUITE = """
name: kept
seed: 4
defaults: {{num_episodes: 6, max_steps: {steps}}}
tasks:
  - name: nav/one
    map: maps/coin.map
    threshold: 0.3
  - name: nav/two
    map: maps/coin.map
    max_steps: 12
"""
COIN = "#######\n#_.@..#\n#######"


def round_files(data_dir: Path) -> list[Path]:
    """The episode cache's round files (not its hints)."""
    return [p for p in (data_dir / "episodes").rglob("*.json") if p.parent.name != "hints"]


def run(pytester: pytest.Pytester, data: Path, *args: str, steps: int = 10, out: str = "out.json"):
    write_suite(pytester.path, SUITE.format(steps=steps), maps={"coin": COIN})
    result = pytester.runpytest(
        "--policy-uri", "random://", "--data-dir", str(data), "--eval-json", out, *args
    )
    return result, task_details(pytester.path / out)


def test_a_second_run_plays_nothing_and_gives_identical_results(pytester: pytest.Pytester, tmp_path) -> None:
    first, before = run(pytester, tmp_path, out="first.json")
    second, after = run(pytester, tmp_path, out="second.json")
    for key, detail in before.items():
        assert not any(detail["episode_cached"])
        assert detail["agent_steps"] > 0 and after[key]["agent_steps"] == 0  # kept episodes cost none
        assert all(after[key]["episode_cached"]) and after[key]["episode_cached"]
        for field in (
            "episode_scores",
            "seeds",
            "episode_steps",
            "outcome",
            "ci_low",
            "ci_high",
            "num_episodes",
        ):
            assert after[key][field] == detail[field], field
    assert first.ret == second.ret
    assert list((tmp_path / "episodes").iterdir())
    # The terminal says it too, not only the files.
    used = sum(len(detail["episode_cached"]) for detail in after.values())
    first.stdout.fnmatch_lines([f"*Episodes: {used} decided on, 0 of them from the episode cache*"])
    second.stdout.fnmatch_lines([f"*Episodes: {used} decided on, {used} of them from the episode cache*"])


def test_a_cache_that_cannot_be_written_is_said_once_and_results_stand(
    pytester: pytest.Pytester, tmp_path
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("")  # the data dir is a file: no round can be kept below it
    result, details = run(pytester, blocked)
    assert all(detail["error"] is None for detail in details.values())
    result.stdout.fnmatch_lines(["*EpisodeCacheWarning: the episode cache cannot be written at *a-file*"])
    assert result.stdout.str().count("EpisodeCacheWarning") == 1
    # Warnings as errors: still shown, and still no task's error.
    strict, details = run(pytester, blocked, "-W", "error", out="strict.json")
    assert all(detail["error"] is None for detail in details.values())
    strict.stdout.fnmatch_lines(["*EpisodeCacheWarning: the episode cache cannot be written*"])


def test_a_changed_task_plays_again_and_only_that_task(pytester: pytest.Pytester, tmp_path) -> None:
    run(pytester, tmp_path)
    # max_steps of nav/one changes (the default); nav/two sets its own, so it is unchanged.
    _, after = run(pytester, tmp_path, steps=11)
    assert not any(after[("nav/one", "random")]["episode_cached"])
    assert all(after[("nav/two", "random")]["episode_cached"])


def test_gate_settings_reuse_the_episodes(pytester: pytest.Pytester, tmp_path) -> None:
    run(pytester, tmp_path)
    _, after = run(pytester, tmp_path, "--eval-gate", "mean")
    assert all(after[("nav/one", "random")]["episode_cached"])
    assert after[("nav/one", "random")]["gate"] == "mean"


def test_no_eval_cache_plays_everything(pytester: pytest.Pytester, tmp_path) -> None:
    run(pytester, tmp_path)
    _, after = run(pytester, tmp_path, "--no-eval-cache")
    assert not any(e for detail in after.values() for e in detail["episode_cached"])


def test_a_changed_checkpoint_plays_again(pytester: pytest.Pytester, tmp_path) -> None:
    write_suite(pytester.path, SUITE.format(steps=10), maps={"coin": COIN})
    checkpoint = pytester.path / "policy.pt"

    def go(seed: int) -> dict:
        make_checkpoint(checkpoint, COIN, seed=seed)
        pytester.runpytest(
            "--policy-uri", str(checkpoint), "--data-dir", str(tmp_path), "--eval-json", "o.json"
        )
        return task_details(pytester.path / "o.json")[("nav/two", "policy")]

    assert not any(go(1)["episode_cached"])
    assert all(go(1)["episode_cached"])
    assert not any(go(2)["episode_cached"])  # same path, other weights: another digest


def test_a_resumed_gate_continues_where_it_stopped(pytester: pytest.Pytester, tmp_path) -> None:
    _, full = run(pytester, tmp_path / "a")
    one = full[("nav/one", "random")]
    assert one["episodes_run"] > 6  # the premise: the gate needed more than its first round
    # An interrupted run kept only its first round: a rerun plays the rest, and decides the same.
    run(pytester, tmp_path / "b", "--eval-gate", "mean")
    _, resumed = run(pytester, tmp_path / "b")
    again = resumed[("nav/one", "random")]
    assert again["episode_cached"][:6] == [True] * 6 and not any(again["episode_cached"][6:])
    assert (again["outcome"], again["num_episodes"], again["episode_scores"]) == (
        one["outcome"],
        one["num_episodes"],
        one["episode_scores"],
    )


def test_an_unreadable_cache_file_is_played_again(pytester: pytest.Pytester, tmp_path) -> None:
    _, before = run(pytester, tmp_path)
    files = round_files(tmp_path)
    assert files
    for n, path in enumerate(files):
        # Broken JSON, and JSON whose numbers no int can hold (Python reads Infinity and 1e400 as inf).
        bad = [
            "{not json",
            '{"episodes": [{"index": Infinity}]}',
            '{"episodes": [{"index": 0, "seed": 1e400}]}',
        ]
        path.write_text(bad[n % 3])
        if n == 0:
            path.with_name("zzz.json").write_text(bad[1])  # a stray file beside the rounds, too
    result, after = run(pytester, tmp_path)
    for key, detail in after.items():
        assert detail["error"] is None, detail["error"]
        assert detail["episode_scores"] == before[key]["episode_scores"]
        assert not any(detail["episode_cached"])
    assert json.loads((pytester.path / "out.json").read_text())["complete"] is True
    assert result.ret in (0, 1)


def test_a_tampered_episode_is_played_again(pytester: pytest.Pytester, tmp_path) -> None:
    _, before = run(pytester, tmp_path)
    for path in round_files(tmp_path):
        body = json.loads(path.read_text())
        body["episodes"][0]["seed"] = 42  # not the seed of its index
        body["episodes"][-1]["rewards"] = [7.0]  # a score outside the map's range [0, 1]
        path.write_text(json.dumps(body))
    _, after = run(pytester, tmp_path)
    for key, detail in after.items():
        assert 42 not in detail["seeds"]
        assert detail["episode_scores"] == before[key]["episode_scores"]
        assert detail["episode_cached"][0] is False


def test_links_and_fifos_in_the_cache_are_never_read(pytester: pytest.Pytester, tmp_path) -> None:
    import os

    run(pytester, tmp_path)
    folder = next((tmp_path / "episodes").iterdir())
    os.mkfifo(folder / "0000000-0000001.json")  # opening it to read would block forever
    (folder / "0000002-0000003.json").symlink_to("/dev/zero")
    result, after = run(pytester, tmp_path)
    assert result.ret in (0, 1) and after


def test_the_cache_key_holds_no_password_of_an_npc_uri(tmp_path) -> None:
    from pytest_policyeval.collection.suite import load_suite
    from pytest_policyeval.gating import episodes_key
    from pytest_policyeval.policies import LoadOptions, load_policy

    body = """
    name: npc
    defaults: {game: laser_tag, num_episodes: 2, max_steps: 4}
    tasks:
      - {name: tag/one, map: maps/duel.map, policy_agents_pct: 0.5, npc_policy_uri: "s3://me:s3cretT0ken@b/x.pt"}
    """
    (task,) = load_suite(write_suite(tmp_path, body, maps={"duel": "#####\n#1.2#\n#####"})).tasks
    npc = load_policy("random://", LoadOptions())
    _, meta = episodes_key(task, load_policy("random://", LoadOptions()), npc, "cpu")
    assert "s3cretT0ken" not in json.dumps(meta)
    assert meta["npc"]["uri"] == "random://"  # the npc still counts, by what it is


def test_a_replayed_episode_that_differs_from_the_kept_one_is_the_task_error(
    pytester: pytest.Pytester, tmp_path
) -> None:
    run(pytester, tmp_path)
    for path in round_files(tmp_path):
        body = json.loads(path.read_text())
        for episode in body["episodes"]:
            if episode["index"] == 0:  # still a possible episode: another score in range
                episode["rewards"] = [1.0 - episode["rewards"][0]]
        path.write_text(json.dumps(body))
    # Episode 0 is played again for its replay and no longer matches what was kept.
    _, after = run(pytester, tmp_path, "--save-replays=replays")
    for detail in after.values():
        assert "played again for its replay" in detail["error"] and "--no-eval-cache" in detail["error"]


def test_hints_name_keys_and_nothing_else(tmp_path: Path) -> None:
    from pytest_policyeval.episode_cache import MAX_HINT_KEYS, EpisodeCache

    cache = EpisodeCache(tmp_path)
    hint, keys = "a" * 40, [f"{i:040x}" for i in range(MAX_HINT_KEYS + 3)]
    for key in keys:
        cache.remember(hint, key)
    assert cache.recall(hint) == keys[::-1][:MAX_HINT_KEYS]  # the latest first, a few kept
    cache.remember(hint, keys[5])
    assert cache.recall(hint)[0] == keys[5] and len(cache.recall(hint)) == MAX_HINT_KEYS
    # Neither a hint nor a key can name a path outside the cache.
    cache.remember("../../escape", keys[0])
    cache.remember(hint, "../../escape")
    assert not list(tmp_path.rglob("escape*")) and "../../escape" not in cache.recall(hint)
    assert cache.load("../hints") == {} and cache.recall("../" + hint) == []
    path = tmp_path / "episodes" / "hints" / f"{hint}.json"
    for hostile in ('{"not": "a list"}', '["zz", 3, null]', "[" * 60_000, "x" * (1 << 17)):
        path.write_text(hostile)
        assert cache.recall(hint) == []
    path.unlink()
    path.symlink_to(tmp_path / "elsewhere.json")
    (tmp_path / "elsewhere.json").write_text(json.dumps(keys[:2]))
    assert cache.recall(hint) == []  # a link is not followed


@pytest.mark.parametrize(
    "field, value",
    [
        ("rewards", "1"),  # a string is not a list of rewards, though float() reads its characters
        ("rewards", [True]),
        ("rewards", ["1"]),
        ("index", "3"),
        ("index", 2.5),
        ("index", True),
        ("seed", "7"),
        ("steps", 44.9),
        ("policy_agents", [0.0]),
    ],
)
def test_a_kept_value_of_the_wrong_type_is_never_converted(tmp_path: Path, field: str, value: object) -> None:
    from pytest_policyeval.episode_cache import CachedEpisode, EpisodeCache, cache_key

    meta = {"task": "nav/one"}
    cache, key = EpisodeCache(tmp_path), cache_key(meta)
    cache.store(key, [CachedEpisode(3, 7, [0.5], 10, [0])], meta)
    assert cache.load(key)[3].rewards == [0.5]  # as written, it is read
    (path,) = round_files(tmp_path)
    body = json.loads(path.read_text())
    body["episodes"][0][field] = value
    path.write_text(json.dumps(body))
    assert cache.load(key) == {}  # not ours: played again


def _play_once(pytester: pytest.Pytester, data: Path) -> tuple[list, list]:
    """random:// on the one task of the suite there: its episode scores and which were kept."""
    pytester.runpytest_subprocess(
        "-p", "no:importnb", "--policy-uri", "random://", "--data-dir", str(data), "--eval-json", "r.json"
    )
    (detail,) = task_details(pytester.path / "r.json").values()
    return detail["episode_scores"], detail["episode_cached"]


TOY_BASE = """
import gymnasium as gym


class Paying(gym.Env):
    def pay(self):
        return {pay}
"""
TOY_RULES = """
def bonus():
    return {bonus}
"""
TOY_ENV = """
import gymnasium as gym
import numpy as np
from toy_base import Paying
import toy_rules

REWARD = {reward}


class Toy(Paying):
    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2, np.float32), {{}}

    def step(self, action):
        self.t += 1
        return np.zeros(2, np.float32), REWARD * self.pay() + toy_rules.bonus(), self.t >= 6, False, {{}}
"""
TOY_SUITE = """
name: toy
defaults: {engine: gymnasium, env: PolicyevalToy-v0, num_episodes: 3, max_steps: 10, gate: mean}
tasks:
  - {name: t/toy, threshold: 5}
"""


def test_an_edited_environment_of_ones_own_plays_again(pytester: pytest.Pytester, tmp_path) -> None:
    # No installed distribution versions a conftest's environment: its source file must count.
    pytester.makeconftest(
        "import sys, gymnasium as gym\n"
        "sys.path.insert(0, __import__('os').path.dirname(__file__))\n"
        "gym.register('PolicyevalToy-v0', entry_point='toy_env:Toy', max_episode_steps=10)\n"
    )
    write_suite(pytester.path, TOY_SUITE)
    scores = []
    for reward, pay, bonus in ((1.0, 1, 0), (0.5, 1, 0), (0.5, 1, 0), (0.5, 2, 0), (0.5, 2, 1)):
        (pytester.path / "toy_env.py").write_text(TOY_ENV.format(reward=reward))
        (pytester.path / "toy_base.py").write_text(TOY_BASE.format(pay=pay))
        (pytester.path / "toy_rules.py").write_text(TOY_RULES.format(bonus=bonus))
        scores.append(_play_once(pytester, tmp_path))
    assert scores[0] == ([6.0] * 3, [False] * 3)
    assert scores[1] == ([3.0] * 3, [False] * 3)  # edited: played again
    assert scores[2] == ([3.0] * 3, [True] * 3)  # unchanged since: kept
    assert scores[3] == ([6.0] * 3, [False] * 3)  # a base class edited in its own file: played again
    assert scores[4] == ([12.0] * 3, [False] * 3)  # a helper module it imports, edited: played again


def test_helpers_of_ones_own_count_and_installed_or_standard_modules_do_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib
    import sys

    from pytest_policyeval.provenance import _helper_files, forget_sources, outside_code_digest

    forget_sources()
    (tmp_path / "mine_deep.py").write_text("DEPTH = 1\n")
    (tmp_path / "mine_helper.py").write_text(
        "import mine_deep\n\ndef shaped():\n    return mine_deep.DEPTH\n"
    )
    (tmp_path / "mine_consts.py").write_text("SCALE = 1.0\n")
    (tmp_path / "mine_lazy.py").write_text("LATE = 1\n")
    (tmp_path / "mine_env.py").write_text(
        "import json\nimport numpy as np\nfrom mine_helper import shaped\nfrom mine_consts import SCALE\n\n"
        "class Env:\n    def step(self):\n        from mine_lazy import LATE  # not imported until it runs\n"
        "        return LATE\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("mine_env", "mine_helper", "mine_deep", "mine_consts", "mine_lazy"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    module = importlib.import_module("mine_env")
    helpers = _helper_files("mine_env", module.__file__)
    # By function, then transitively, a plain value by its import statement, and a module imported
    # only inside a function that has not run (not loaded yet); not json, numpy.
    assert set(helpers) == {"mine_helper", "mine_deep", "mine_consts", "mine_lazy"}
    assert "mine_lazy" not in sys.modules  # found without importing it
    before = outside_code_digest(module.Env)
    (tmp_path / "mine_deep.py").write_text("DEPTH = 2\n")
    # Within a run, the code as first read (the one imported): an edit mid-run changes nothing
    # this run plays, so it must not change the key its episodes are kept under.
    assert outside_code_digest(module.Env) == before
    forget_sources()  # the next run
    assert outside_code_digest(module.Env) != before
    before = outside_code_digest(module.Env)
    (tmp_path / "mine_consts.py").write_text("SCALE = 5.0\n")
    forget_sources()
    assert outside_code_digest(module.Env) != before


def test_numpy_values_in_a_registration_are_kept_and_keyed(pytester: pytest.Pytester, tmp_path) -> None:
    """Registration kwargs holding numpy values reach the cache's metadata: they are written as
    JSON (not a TypeError that errs the task), and an array counts by every value it holds."""
    import numpy as np

    from pytest_policyeval.episode_cache import cache_key

    pytester.makeconftest(
        "import gymnasium as gym, numpy as np\n"
        "gym.register('PolicyevalNp-v0', entry_point='gymnasium.envs.classic_control.cartpole:CartPoleEnv',\n"
        "             max_episode_steps=20, kwargs={'sutton_barto_reward': np.bool_(False)})\n"
    )
    suite = "name: np\ndefaults: {engine: gymnasium, env: PolicyevalNp-v0, num_episodes: 3, max_steps: 20}\n"
    write_suite(pytester.path, suite + "tasks:\n  - {name: t/np}\n")
    cached = [_play_once(pytester, tmp_path)[1] for _ in range(2)]
    assert cached == [[False] * 3, [True] * 3]  # played (no TypeError), then kept
    big = np.zeros(2000)
    edited = big.copy()
    edited[1000] = 1.0  # str() of both arrays is the same elided text
    assert str(big) == str(edited) and cache_key({"a": big}) != cache_key({"a": edited})


FACTORY_ENV = """
import gymnasium as gym
import numpy as np


class Paid(gym.Env):
    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, pay=1.0):
        self.pay = pay

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.t += 1
        return np.zeros(2, np.float32), self.pay, self.t >= 4, False, {}
"""


def test_an_edited_factory_entry_point_plays_again(pytester: pytest.Pytester, tmp_path) -> None:
    """gym.register(entry_point=make): the factory's arguments decide the environment, and its
    code is in no class the environment is made of."""
    pytester.makepyfile(fact_env=FACTORY_ENV)
    suite = "name: fact\ndefaults: {engine: gymnasium, env: PolicyevalFactory-v0, num_episodes: 2, "
    suite += "max_steps: 10}\n"
    write_suite(pytester.path, suite + "tasks:\n  - {name: t/fact}\n")
    scores = []
    for pay in (1.0, 1.0, 2.0):
        pytester.makeconftest(
            "import os, sys, gymnasium as gym\n"
            "sys.path.insert(0, os.path.dirname(__file__))\n"
            "import fact_env\n"
            f"PAY = {pay}\n"
            "def make(**kwargs):\n"
            "    return fact_env.Paid(pay=PAY)\n"
            "gym.register('PolicyevalFactory-v0', entry_point=make, max_episode_steps=10)\n"
        )
        scores.append(_play_once(pytester, tmp_path))
    assert scores[0] == ([4.0, 4.0], [False, False])
    assert scores[1] == ([4.0, 4.0], [True, True])  # unchanged: kept
    assert scores[2] == ([8.0, 8.0], [False, False])  # the factory edited: played again


def test_torchs_thread_count_keys_only_episodes_a_torch_policy_plays() -> None:
    """random:// keeps one key whether or not another policy of the run loaded torch before it."""
    import torch  # as a torch policy listed first would have

    from pytest_policyeval.gating import _torch_threads
    from pytest_policyeval.policies import LoadOptions, load_policy

    random_policy = load_policy("random://", LoadOptions())
    scripted = load_policy("scripted://navigator", LoadOptions())
    assert _torch_threads(random_policy, None) is None and _torch_threads(random_policy, scripted) is None
    shipped = Path(__file__).resolve().parents[1] / "examples/policies/navigation.pt"
    torch_policy = load_policy(f"pytorch://{shipped}", LoadOptions())
    assert _torch_threads(torch_policy, None) == torch.get_num_threads()
    assert _torch_threads(random_policy, torch_policy) == torch.get_num_threads()  # an npc that uses torch


def test_a_conftests_environment_counts_its_own_helpers_with_other_conftests_about(
    pytester: pytest.Pytester, tmp_path
) -> None:
    """Every conftest outside a package is "conftest" in sys.modules, the last one imported: the
    environment's own file decides which module's imports count."""
    pytester.makepyfile(paid_env=FACTORY_ENV)
    (pytester.path / "suites").mkdir(exist_ok=True)
    (pytester.path / "suites" / "conftest.py").write_text("# another conftest, imported after the root's\n")
    pytester.makeconftest(
        "import os, sys, gymnasium as gym\n"
        "sys.path.insert(0, os.path.dirname(__file__))\n"
        "from paid_env import Paid\n"
        "from rules import BONUS\n"
        "class Mine(Paid):\n"
        "    def __init__(self):\n"
        "        super().__init__(pay=BONUS)\n"
        "gym.register('PolicyevalConftest-v0', entry_point=Mine, max_episode_steps=10)\n"
    )
    suite = "name: conf\ndefaults: {engine: gymnasium, env: PolicyevalConftest-v0, num_episodes: 2, "
    write_suite(pytester.path, suite + "max_steps: 10}\ntasks:\n  - {name: t/conf}\n")
    scores = []
    for bonus in (1, 1, 3):
        (pytester.path / "rules.py").write_text(f"BONUS = {bonus}\n")
        scores.append(_play_once(pytester, tmp_path))
    assert scores[1] == ([4.0, 4.0], [True, True])
    assert scores[2] == ([12.0, 12.0], [False, False])  # rules.py edited: played again


def test_an_edit_to_the_conftest_that_registers_a_policy_or_engine_plays_again(
    pytester: pytest.Pytester, tmp_path
) -> None:
    """The classes live in a module of their own; the conftest only builds them, with its own
    arguments. An edit there changes what plays, and the kept episodes must not stand for it."""
    import shutil

    example = Path(__file__).resolve().parents[1] / "examples/extending"
    shutil.copytree(example / "suites", pytester.path / "suites")
    parts = (example / "conftest.py").read_text()
    parts = parts.replace(
        "return np.ones(len(slots), dtype=np.int64)", "return np.full(len(slots), self.guess, dtype=np.int64)"
    )
    parts = parts.replace(
        "        return HeadsActor()",
        "        actor = HeadsActor()\n        actor.guess = self.guess\n        return actor",
    )
    parts = parts.replace(
        "    def __init__(self, uri: str):\n        self.uri,",
        "    def __init__(self, uri: str, guess: int = 1):\n        self.guess = guess\n        self.uri,",
    )
    (pytester.path / "parts.py").write_text(parts.replace("@pytest.hookimpl", "# not registered here:"))
    conftest = """
import pytest
from parts import CoinEngine, MedianGate, Oracle
GUESS = {guess}


@pytest.hookimpl
def pytest_policyeval_gates():
    return {{"median": MedianGate()}}


@pytest.hookimpl
def pytest_policyeval_engines():
    return {{"coin": CoinEngine()}}


@pytest.hookimpl
def pytest_policyeval_policy_schemes():
    return {{"guess": lambda uri, rest, options: Oracle(uri, GUESS)}}
"""
    data = tmp_path / "data"

    def play(guess: int) -> dict:
        (pytester.path / "conftest.py").write_text(conftest.format(guess=guess))
        pytester.runpytest_subprocess(
            "-p", "no:importnb", "--policy-uri", "guess://", "--data-dir", str(data), "--eval-json", "r.json",
            "-k", "loaded",
        )  # fmt: skip
        (detail,) = task_details(pytester.path / "r.json").values()
        return detail

    tails = play(0)
    assert tails["outcome"] == "fail" and not any(tails["episode_cached"])
    assert all(play(0)["episode_cached"])  # unchanged: kept
    heads = play(1)  # the conftest's argument alone changed: always heads now
    assert not any(heads["episode_cached"]) and heads["outcome"] == "pass"
    assert all(play(1)["episode_cached"])
    # The engine's registration is the conftest's code too: any edit there plays again.
    conftest = conftest.replace('{{"coin": CoinEngine()}}', '{{"coin": CoinEngine()}}  # edited')
    assert not any(play(1)["episode_cached"])


def test_episodes_filed_under_another_key_are_not_this_keys(tmp_path: Path) -> None:
    """A round file copied into another key's folder, or a key's folder that is a link to another's,
    holds that other key's episodes (another policy's, say): they are played again, not used."""
    from pytest_policyeval.episode_cache import CachedEpisode, EpisodeCache, cache_key

    cache = EpisodeCache(tmp_path)
    ours, theirs = {"policy": "checkpoint"}, {"policy": "scripted://navigator"}
    cache.store(cache_key(theirs), [CachedEpisode(0, 7, [1.0], 3, [0])], theirs)
    (kept,) = round_files(tmp_path)
    copied = cache.root / cache_key(ours) / kept.name
    copied.parent.mkdir(parents=True)
    copied.write_bytes(kept.read_bytes())
    assert cache.load(cache_key(theirs))[0].rewards == [1.0] and cache.load(cache_key(ours)) == {}
    copied.unlink()
    copied.parent.rmdir()
    copied.parent.symlink_to(kept.parent, target_is_directory=True)
    assert cache.load(cache_key(ours)) == {}


def test_a_key_with_integer_dict_keys_still_finds_its_episodes(tmp_path: Path) -> None:
    # JSON turns int keys into strings, which sort otherwise: the key is made from what is kept.
    from pytest_policyeval.collection.suite import load_suite
    from pytest_policyeval.episode_cache import CachedEpisode, EpisodeCache
    from pytest_policyeval.gating import episodes_key
    from pytest_policyeval.policies.random_policy import RandomPolicy

    task = load_suite(write_suite(tmp_path, SUITE.format(steps=10), maps={"coin": COIN})).tasks[0]
    policy = RandomPolicy("random://")
    policy.info = {**policy.info, "metadata": {"lr_by_epoch": {2: 0.1, 10: 0.01}}}
    key, meta = episodes_key(task, policy, None, "cpu")
    cache = EpisodeCache(tmp_path)
    cache.store(key, [CachedEpisode(0, 1, [1.0], 3, [0])], meta)
    assert cache.load(key)[0].rewards == [1.0]


def test_a_map_edited_after_it_was_read_keys_the_map_that_is_played(tmp_path: Path) -> None:
    """The grid is read once per process; an edit after that (mid-run) must not file the old
    map's episodes under the new map's digest, where a later run would take them for its own."""
    import hashlib

    from pytest_policyeval.collection.suite import load_suite
    from pytest_policyeval.engines import engine_for
    from pytest_policyeval.engines.mettagrid.gridmap import task_grid

    suite = write_suite(tmp_path, SUITE.format(steps=10), maps={"coin": COIN})
    task = load_suite(suite).tasks[0]
    map_file = tmp_path / "suites" / "maps" / "coin.map"
    played = task_grid(task)  # what this process plays
    before = hashlib.sha256(map_file.read_bytes()).hexdigest()
    map_file.write_text(COIN.replace("_..", "._."))  # the goal a step nearer
    assert engine_for(task).identity(task)["map_sha256"] == before == played.sha256
    # A process that reads the edited map keys it by its own bytes.
    fresh = load_suite(suite).tasks[0]
    task_grid.cache_clear()
    assert (
        engine_for(fresh).identity(fresh)["map_sha256"] == hashlib.sha256(map_file.read_bytes()).hexdigest()
    )


def test_a_partial_round_never_replaces_the_whole_rounds_file(tmp_path: Path) -> None:
    # Episodes 0, 5 and 9 played again (a check refused the kept ones) span the same indices as
    # the round 0-9 they came from: the round's other seven must stay kept.
    from pytest_policyeval.episode_cache import CachedEpisode, EpisodeCache, cache_key

    cache, meta = EpisodeCache(tmp_path), {"policy": "random://"}
    key = cache_key(meta)
    cache.store(key, [CachedEpisode(i, 100 + i, [float(i)], 3, [0]) for i in range(10)], meta)
    cache.store(key, [CachedEpisode(i, 100 + i, [float(i)], 3, [0]) for i in (0, 5, 9)], meta)
    assert len(round_files(tmp_path)) == 2
    assert sorted(cache.load(key)) == list(range(10))
    # An episode played again after its kept copy was refused is the one found, whatever the names.
    kept = next(p for p in round_files(tmp_path) if p.name == "0000000-0000009.json")
    os.utime(kept, ns=(1, 1))  # written long before
    cache.store(key, [CachedEpisode(5, 105, [50.0], 3, [0])], meta)
    assert cache.load(key)[5].rewards == [50.0] and len(round_files(tmp_path)) == 3
    (newer,) = (p for p in round_files(tmp_path) if p.name.startswith("0000005-"))
    newer.unlink()
    # The whole round again: the same file, not a third.
    cache.store(key, [CachedEpisode(i, 100 + i, [float(i)], 3, [0]) for i in range(10)], meta)
    assert len(round_files(tmp_path)) == 2


def test_a_linked_key_folder_is_not_written_through(tmp_path: Path) -> None:
    import warnings

    from pytest_policyeval.episode_cache import CachedEpisode, EpisodeCache, EpisodeCacheWarning, cache_key

    cache, meta = EpisodeCache(tmp_path / "data"), {"policy": "random://"}
    key = cache_key(meta)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    cache.root.mkdir(parents=True)
    (cache.root / key).symlink_to(elsewhere, target_is_directory=True)
    with warnings.catch_warnings(record=True) as caught:
        cache.store(key, [CachedEpisode(0, 1, [1.0], 3, [0])], meta)
    assert list(elsewhere.iterdir()) == []
    assert any(issubclass(w.category, EpisodeCacheWarning) for w in caught)


EDITED_MID_RUN = """
import pathlib

import pytest
from pytest_policyeval.policies.random_policy import RandomPolicy

VERSION = 1


def pytest_collection_finish(session):
    # After this file was imported, before any episode is keyed: as an editor's save mid-run.
    path = pathlib.Path(__file__)
    path.write_text(path.read_text().replace("VERSION = 1", "VERSION = 2"))


@pytest.hookimpl
def pytest_policyeval_policy_schemes():
    return {"mine": lambda uri, rest, options: RandomPolicy(uri)}
"""


def test_a_conftest_edited_mid_run_keys_the_code_that_ran(pytester: pytest.Pytester, tmp_path) -> None:
    """The run imported version 1; its episodes are kept under version 1's digest, so the next
    run, which imports version 2, plays them again instead of taking them for its own."""
    pytester.makeconftest(EDITED_MID_RUN)
    write_suite(pytester.path, SUITE.format(steps=10), maps={"coin": COIN})
    args = ("--policy-uri", "mine://", "--data-dir", str(tmp_path / "data"))
    pytester.runpytest(*args).stdout.fnmatch_lines(
        ["*Episodes: * decided on, 0 of them from the episode cache*"]
    )
    assert "VERSION = 2" in (pytester.path / "conftest.py").read_text()
    pytester.runpytest(*args).stdout.fnmatch_lines(
        ["*Episodes: * decided on, 0 of them from the episode cache*"]
    )
    # Unchanged since: all of them.
    third = pytester.runpytest(*args).stdout.str()
    assert "0 of them from the episode cache" not in third and "from the episode cache" in third


def test_a_local_plugin_edited_mid_run_keys_the_code_that_ran(pytester: pytest.Pytester, tmp_path) -> None:
    """As for a conftest, for a module of one's own loaded with -p (or pytest_plugins)."""
    pytester.makepyfile(localplug=EDITED_MID_RUN)
    pytester.syspathinsert()
    write_suite(pytester.path, SUITE.format(steps=10), maps={"coin": COIN})
    args = ("-p", "localplug", "--policy-uri", "mine://", "--data-dir", str(tmp_path / "data"))
    pytester.runpytest(*args).stdout.fnmatch_lines(
        ["*Episodes: * decided on, 0 of them from the episode cache*"]
    )
    assert "VERSION = 2" in (pytester.path / "localplug.py").read_text()
    pytester.runpytest(*args).stdout.fnmatch_lines(
        ["*Episodes: * decided on, 0 of them from the episode cache*"]
    )
