"""``eval --tensorboard`` and ``evolve --tensorboard``: what is logged, and the one-line
install hint without the optional library. Most tests put a recording stand-in with
tensorboardX's API in its place (to see every call); one reads the real library's event
files back."""

from __future__ import annotations

import json
import struct
import sys
import types
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import evozero
from evozero.analysis.tensorboard import log_training
from evozero.cli import app
from evozero.native.train import UPDATE_STATS

runner = CliRunner()
PPO = str(Path(__file__).resolve().parents[1] / "programs" / "ppo.evz")


class Recorder:
    """tensorboardX's ``SummaryWriter`` as far as evozero uses it, recording every call."""

    logs: dict[str, list[tuple[str, float, int]]] = defaultdict(list)

    def __init__(self, logdir: str) -> None:
        self.logdir = logdir
        Recorder.logs[logdir]  # noqa: B018  (a folder per writer, even if empty)

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        Recorder.logs[self.logdir].append((tag, float(value), int(step)))

    def add_text(self, tag: str, text: str) -> None:
        Recorder.logs[self.logdir].append((tag, float("nan"), 0))

    def close(self) -> None:
        pass


@pytest.fixture
def fake_tensorboardx(monkeypatch: pytest.MonkeyPatch) -> type[Recorder]:
    module = types.ModuleType("tensorboardX")
    module.SummaryWriter = Recorder  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tensorboardX", module)
    Recorder.logs.clear()
    return Recorder


def _series(events: list[tuple[str, float, int]], tag: str) -> list[tuple[float, int]]:
    return [(v, s) for t, v, s in events if t == tag]


def test_training_log_holds_every_episode_and_the_per_update_means(
    fake_tensorboardx: type[Recorder],
) -> None:
    config = evozero.TrainConfig(total_steps=3 * 64 * 128)
    result = evozero.train(evozero.load(PPO), "breakout", config, seed=0)
    writer = Recorder("run")
    log_training(writer, result, config)
    events = Recorder.logs["run"]
    episodes = _series(events, "charts/episodic_return")
    assert episodes == list(
        zip(result.episode_returns.astype(float), result.episode_end_steps.astype(int), strict=True)
    )
    assert len(episodes) > 0
    per_update = 64 * 128
    means = _series(events, "charts/mean_episodic_return_per_update")
    for mean, step in means:
        mask = (result.episode_end_steps - 1) // per_update == step // per_update - 1
        assert mean == pytest.approx(float(result.episode_returns[mask].mean()))
    assert {s // per_update for _, s in means} <= {1, 2, 3}
    assert _series(events, "summary/final_return") == [(result.final_return, result.steps)]
    # CleanRL's per-update charts, at the env step that ends each update
    ends = [per_update * u for u in (1, 2, 3)]
    tags = {
        "losses/entropy": "entropy",
        "losses/loss": "loss",
        "losses/approx_kl": "approx_kl",
        **{
            f"coefficients/{c}_{s}": f"{c}_{s}"
            for c in ("d_logp", "d_v", "d_entropy")
            for s in ("mean", "std")
        },
    }
    assert set(tags.values()) == set(UPDATE_STATS)
    for tag, name in tags.items():
        column = result.update_stat(name).astype(float)
        assert _series(events, tag) == list(zip(column, ends, strict=True)), tag
    entropy = [v for v, _ in _series(events, "losses/entropy")]
    assert all(0 < h <= np.log(3) for h in entropy)  # breakout: 3 actions


def test_eval_writes_one_log_folder_per_seed(
    fake_tensorboardx: type[Recorder], tmp_path: Path
) -> None:
    out = tmp_path / "tb"
    result = runner.invoke(
        app,
        ["eval", PPO, "--steps", "8192", "--seeds", "2", "--json", "--tensorboard", str(out)],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert sorted(Recorder.logs) == [str(out / f"ppo_breakout_seed{s}") for s in (0, 1)]
    for run in summary["runs"]:
        events = Recorder.logs[str(out / f"ppo_breakout_seed{run['seed']}")]
        assert len(_series(events, "charts/episodic_return")) == run["episodes"]


def test_search_log_is_the_search_curve_and_the_counts(
    fake_tensorboardx: type[Recorder], tmp_path: Path
) -> None:
    from evozero.analysis.tensorboard import log_search
    from evozero.search.store import RunStore
    from evozero.status import TRAINED

    run = tmp_path / "run"
    evozero.evolve(3, suite="tiny", population=6, tournament=3, workers=2, out=run, report=False)
    with RunStore.open(run) as store:
        log_search(Recorder("search"), store)
        finished_candidates = store.finished()
        trained = [c for c in finished_candidates if c.status in TRAINED]
        counts = store.count_by_status()
        store_ladders = store.ladders()
    events = Recorder.logs["search"]
    ladders = store_ladders
    rungs = sorted({r for results in ladders.values() for r in results})
    assert rungs == [0, 1]  # the tiny suite promotes: one series per rung
    for rung in rungs:
        # every candidate with a result at this rung, promoted ones included
        fitness = [
            ladders[c.id][rung][1]
            for c in trained
            if rung in ladders.get(c.id, {}) and ladders[c.id][rung][1] is not None
        ]
        tag = f"search/rung_{rung}"
        assert [v for v, _ in _series(events, f"{tag}/fitness")] == fitness
        best = [v for v, _ in _series(events, f"{tag}/best_fitness")]
        assert best == list(np.maximum.accumulate(fitness))
    assert {t: v for t, v, _ in events if t.startswith("counts/") and "rung" not in t} == {
        f"counts/{s.value}": n for s, n in counts.items()
    }
    finished = [c.rung for c in finished_candidates]
    assert {t: v for t, v, _ in events if t.startswith("counts/rung_")} == {
        f"counts/rung_{r}": finished.count(r) for r in set(finished)
    }


@pytest.mark.parametrize("command", [["eval", PPO], ["evolve", "--budget", "2"]])
def test_without_the_library_the_flag_says_how_to_install_it(
    command: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # import fails
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    result = runner.invoke(app, [*command, "--tensorboard", str(tmp_path / "tb")])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "pip install 'evozero[tensorboard]'" in lines[0]
    assert not (tmp_path / "tb").exists()


def _read_events(folder: Path) -> list[tuple[str, float, int]]:
    """Every scalar in a folder's TensorBoard event files: TFRecord framing (u64 length,
    u32 crc, payload, u32 crc) around tensorboardX's ``Event`` protos."""
    event_pb2 = pytest.importorskip("tensorboardX.proto.event_pb2")
    scalars = []
    for path in sorted(folder.glob("events.out.tfevents.*")):
        data = path.read_bytes()
        i = 0
        while i < len(data):
            (length,) = struct.unpack_from("<Q", data, i)
            event = event_pb2.Event.FromString(data[i + 12 : i + 12 + length])
            i += 12 + length + 4
            for v in event.summary.value:
                scalars.append((v.tag, v.simple_value, event.step))
    return scalars


def test_eval_writes_event_files_tensorboard_reads(tmp_path: Path) -> None:
    pytest.importorskip("tensorboardX", reason="needs the extra evozero[tensorboard]")
    out = tmp_path / "tb"
    result = runner.invoke(
        app, ["eval", PPO, "--steps", "8192", "--seeds", "1", "--json", "--tensorboard", str(out)]
    )
    assert result.exit_code == 0, result.output
    run = json.loads(result.stdout)["runs"][0]
    scalars = _read_events(out / "ppo_breakout_seed0")
    episodes = [(v, s) for t, v, s in scalars if t == "charts/episodic_return"]
    assert len(episodes) == run["episodes"] > 0
    for tag in (
        "losses/entropy",
        "losses/loss",
        "coefficients/d_logp_mean",
        "coefficients/d_v_std",
    ):
        series = [(v, s) for t, v, s in scalars if t == tag]
        assert [s for _, s in series] == [8192], tag  # one update of 64 x 128 steps
        assert np.isfinite(series[0][0]), tag
    entropy = next(v for t, v, _ in scalars if t == "losses/entropy")
    assert 0 < entropy <= np.log(3)
    final = [v for t, v, _ in scalars if t == "summary/final_return"]
    assert final == [pytest.approx(run["final_return"], rel=1e-6)]
