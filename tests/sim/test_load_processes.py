"""sim.load across processes and a Dask cluster (sim/shards.py): merged results in call order,
unique sids, seeds that do not depend on the shard count, progress, failed shards reported."""

from __future__ import annotations

import logging
import sys
import threading
import types
from collections.abc import Iterator
from typing import Any

import pytest

import jambonz_lab as jl
from jambonz_lab import sim
from jambonz_lab.sim import shards

from . import loadshards


def turn_app(lab: jl.Lab, path: str = "/turn") -> str:
    """say + gather, then a say and a hangup: two turns per call."""

    @lab.service(path).on("session:new")
    def new(session: jl.Session) -> None:
        @session.on("/said")
        def said(msg: jl.Message) -> None:
            session.say(text=f"you said {msg.transcript}").hangup().reply()

        session.gather(input=["speech"], actionHook="/said", say={"text": "hello"}).send()

    return lab.url + path


CALLER = sim.Caller.saying("a coffee")


def test_two_processes_complete_every_call_in_call_order(
    lab: jl.Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    url = turn_app(lab)
    results = sim.load(
        url, calls=24, concurrency=6, caller=CALLER, processes=2, options=sim.SimOptions(seed=7)
    )
    assert len(results) == 24 and not results.failures
    assert all(r.ok for r in results), [r.errors for r in results if not r.ok]
    assert all(r.said == ["hello", "you said a coffee"] for r in results)
    assert len({r.call_sid for r in results}) == 24
    assert [r.seed for r in results] == list(range(7, 31))  # call order: shard 0's, then shard 1's
    assert "24/24" in capsys.readouterr().err  # the bar reached N
    # the lab in this process recorded both shards' calls (without call time: see shards.py)
    sids = set(lab.log.to_dataframe()["call_sid"].dropna())
    assert {r.call_sid for r in results} <= sids


@pytest.mark.parametrize("processes", [1, 2, 3])
def test_a_seed_gives_call_i_the_same_seed_whatever_the_shard_count(lab: jl.Lab, processes: int) -> None:
    url = turn_app(lab)
    results = sim.load(
        url,
        calls=9,
        concurrency=3,
        caller=CALLER,
        processes=processes,
        options=sim.SimOptions(seed=100),
        progress=False,
    )
    assert [r.seed for r in results] == list(range(100, 109))
    assert all(r.ok for r in results)


def test_without_a_seed_no_two_calls_of_two_loads_share_one(lab: jl.Lab) -> None:
    """Seeds are reserved in this process: two shards never both count from 0."""
    url = turn_app(lab)
    first = sim.load(url, calls=6, concurrency=4, caller=CALLER, processes=2, progress=False)
    second = sim.load(url, calls=6, concurrency=4, caller=CALLER, processes=2, progress=False)
    seeds = [r.seed for r in first + second]
    assert None not in seeds and len(set(seeds)) == 12
    assert len({r.call_sid for r in first + second}) == 12


def test_progress_of_each_shard_reaches_its_calls(lab: jl.Lab) -> None:
    url = turn_app(lab)
    seen: dict[int, list[int]] = {}
    plan = shards.plan(url, 10, 4, 2, range(10), caller=CALLER)
    results, failures = shards.run_processes(plan, lambda k, n: seen.setdefault(k, []).append(n))
    assert not failures and sorted(results) == [0, 1]
    assert {k: counts[-1] for k, counts in seen.items()} == {0: 5, 1: 5}
    assert all(counts == sorted(counts) for counts in seen.values())


def test_plan_cuts_contiguous_shards_and_shares_the_concurrency() -> None:
    plan = shards.plan("ws://x", 10, 5, 3, range(50, 60))
    assert [s.calls for s in plan] == [(0, 1, 2), (3, 4, 5), (6, 7, 8, 9)]
    assert [s.seeds for s in plan] == [(50, 51, 52), (53, 54, 55), (56, 57, 58, 59)]
    assert [s.concurrency for s in plan] == [1, 2, 2]
    assert len(shards.plan("ws://x", 2, 1, 4, range(2))) == 2  # never an empty shard
    assert [s.concurrency for s in shards.plan("ws://x", 4, 1, 2, range(4))] == [1, 1]


def test_a_failing_shard_is_reported_and_the_others_kept(
    lab: jl.Lab, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    url = turn_app(lab)
    real = shards.run_processes

    def injected(plan: list[shards.Shard], progress: shards.Progress) -> Any:
        return real(plan, progress, target=loadshards.fail_shard_one)

    monkeypatch.setattr(shards, "run_processes", injected)
    with caplog.at_level(logging.WARNING, logger="jambonz_lab.sim"):
        results = sim.load(url, calls=9, concurrency=3, caller=CALLER, processes=3, progress=False)
    assert [str(f) for f in results.failures] == [
        "shard 1 (calls 3-5): ValueError: direction must be 'inbound' or 'outbound', not 'sideways'"
    ]
    assert results.failures[0].calls == (3, 4, 5)
    assert len(results) == 6 and all(r.ok for r in results)
    lines = [r.getMessage() for r in caplog.records if r.name == "jambonz_lab.sim"]
    assert lines == ["sim.load: " + str(results.failures[0])]


def test_a_process_that_cannot_start_raises_its_own_error() -> None:
    """A start that fails (here: a target the forkserver cannot pickle; in a script without the
    ``__main__`` guard, multiprocessing's "bootstrapping phase" error) is what the caller sees, not
    an error about joining the processes that never started."""
    plan = shards.plan("ws://127.0.0.1:9/none", 2, 2, 2, range(2))
    with pytest.raises(Exception, match="lambda") as caught:
        shards.run_processes(plan, lambda k, n: None, target=lambda shard, out: None)
    assert not isinstance(caught.value, AssertionError)


def test_a_shard_process_that_dies_is_reported(lab: jl.Lab) -> None:
    url = turn_app(lab)
    plan = shards.plan(url, 6, 2, 2, range(6), caller=CALLER)
    results, failures = shards.run_processes(plan, lambda k, n: None, target=loadshards.die_shard_zero)
    assert [str(f) for f in failures] == ["shard 0 (calls 0-2): process exited with code 3"]
    assert sorted(results) == [1] and all(r.ok for r in results[1])


def test_results_that_do_not_pickle_are_each_shards_error_in_one_line(lab: jl.Lab) -> None:
    url = turn_app(lab)
    plan = shards.plan(url, 4, 2, 2, range(4), caller=CALLER)
    results, failures = shards.run_processes(plan, lambda k, n: None, target=loadshards.unpicklable_results)
    assert sorted(results) == [] and [f.shard for f in failures] == [0, 1]
    assert str(failures[1]) == "shard 1 (calls 2-3): TypeError: cannot pickle '_thread.lock' object"


def test_a_caller_that_does_not_pickle_is_refused_in_one_line(lab: jl.Lab) -> None:
    caller = sim.Caller(inputs=[sim.Speech("x")])
    caller.name = threading.Lock()  # type: ignore[assignment]
    with pytest.raises(ValueError, match="must pickle: TypeError: cannot pickle '_thread.lock' object"):
        sim.load(turn_app(lab), calls=2, caller=caller, processes=2, progress=False)


class NotebookCaller(sim.Caller):
    """A Caller subclass as a notebook cell defines it (module ``__main__``)."""


def test_a_class_defined_in_a_notebook_is_refused_in_one_line(
    lab: jl.Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kernel's ``__main__`` has no file: a shard process could not import the class and would
    die before its first call; refused before any process starts, naming the class."""
    notebook = types.ModuleType("__main__")
    monkeypatch.setattr(NotebookCaller, "__module__", "__main__")
    monkeypatch.setattr(notebook, "NotebookCaller", NotebookCaller, raising=False)
    monkeypatch.setitem(sys.modules, "__main__", notebook)
    with pytest.raises(ValueError, match="NotebookCaller is defined in this notebook"):
        sim.load(turn_app(lab), calls=2, caller=NotebookCaller(), processes=2, progress=False)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"processes": 0}, "processes must be >= 1"),
        ({"processes": 2, "client": object()}, "processes or a Dask client, not both"),
        ({"concurrency": 0}, "concurrency >= 1"),
        ({"processes": 2, "tag": {"id": 1}}, "only for direction='outbound'"),
        ({"processes": 2, "direction": "sideways"}, "direction must be 'inbound' or 'outbound'"),
    ],
)
def test_bad_arguments(kw: dict[str, Any], message: str) -> None:
    """Refused here, once, before any shard starts (not as one failure per shard)."""
    with pytest.raises(ValueError, match=message):
        sim.load("ws://127.0.0.1:9/x", calls=2, **kw)


def test_no_calls_start_no_process(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_shards(*args: Any, **kw: Any) -> Any:
        raise AssertionError("a load of no calls started shard processes")

    monkeypatch.setattr(shards, "run_processes", no_shards)
    results = sim.load("ws://127.0.0.1:9/x", calls=0, processes=2)
    assert results == [] and results.failures == []


@pytest.fixture(scope="module")
def dask_client() -> Iterator[Any]:
    distributed = pytest.importorskip(
        "distributed", reason="dask.distributed is not installed (the scale extra)"
    )
    with (
        distributed.LocalCluster(
            processes=True, n_workers=2, threads_per_worker=1, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


def test_a_dask_cluster_runs_the_shards(
    lab: jl.Lab, dask_client: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    url = turn_app(lab)
    results = sim.load(
        url, calls=12, concurrency=4, caller=CALLER, client=dask_client, options=sim.SimOptions(seed=3)
    )
    assert len(results) == 12 and not results.failures
    assert all(isinstance(r, sim.CallResult) and r.ok for r in results)
    assert all(r.said == ["hello", "you said a coffee"] for r in results)
    assert [r.seed for r in results] == list(range(3, 15))
    assert len({r.call_sid for r in results}) == 12
    assert "12/12" in capsys.readouterr().err


def test_a_failing_dask_shard_is_reported(lab: jl.Lab, dask_client: Any) -> None:
    """An unreachable URL does not fail a shard (its calls fail); a shard that raises does."""
    plan = shards.plan(turn_app(lab), 4, 2, 2, range(4), caller=CALLER)
    plan[1] = shards.Shard(1, plan[1].url, plan[1].calls, plan[1].seeds, 1, direction="sideways")  # type: ignore[arg-type]
    results, failures = shards.run_dask(dask_client, plan, lambda k, n: None)
    assert [str(f) for f in failures] == [
        "shard 1 (calls 2-3): ValueError: direction must be 'inbound' or 'outbound', not 'sideways'"
    ]
    assert sorted(results) == [0] and all(r.ok for r in results[0])


def test_a_client_without_dask_installed_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    with pytest.raises(ImportError, match=r"pip install 'jambonz-lab\[scale\]'"):
        sim.load("ws://127.0.0.1:9/x", calls=2, client=object(), progress=False)
