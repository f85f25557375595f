"""Regularized evolution on toy genomes: no agent is trained, every test takes milliseconds.

Genomes are tuples of bits; fitness is a function of the genome (OneMax: the number of
ones), evaluated by a fake evaluator that can hold several individuals in flight and
return them in any order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

from evozero.search.evolution import (
    Individual,
    Journal,
    RegularizedEvolution,
    proposal_rng,
    tournament_select,
)
from evozero.status import Status

Genome = tuple[int, ...]


@dataclass(frozen=True)
class Score:
    status: Status
    fitness: float | None


def onemax(genome: Genome) -> float:
    return float(sum(genome))


def flip(genome: Genome, rng: np.random.Generator) -> tuple[Genome, str]:
    """Flips one random bit."""
    i = int(rng.integers(len(genome)))
    return genome[:i] + (1 - genome[i],) + genome[i + 1 :], f"flip {i}"


class FakeEvaluator:
    """Scores genomes with ``fitness`` (None: the evaluation failed), ``slots`` at a time.

    Each wait returns one result: the oldest in flight (``order="fifo"``), the newest
    (``"lifo"``), or every second wait none at all (``"slow"``). ``stop_after``: the wait
    after that many results raises KeyboardInterrupt (a run stopped mid-flight).
    """

    def __init__(
        self,
        fitness: Callable[[Genome], float | None] = onemax,
        slots: int = 1,
        order: str = "fifo",
        stop_after: int | None = None,
        at_rung: Callable[[Genome, int], float | None] | None = None,
    ) -> None:
        self.fitness = at_rung or (lambda genome, rung: fitness(genome))
        self.slots = slots
        self.order = order
        self.stop_after = stop_after
        self.running: list[tuple[Individual[Genome], int]] = []
        self.evaluated: list[Genome] = []  # every genome submitted at rung 0, in order
        self.promotions: list[tuple[int, int]] = []  # (id, rung) submitted above rung 0
        self.results = 0
        self.waits = 0
        self.most_in_flight = 0

    def submit(self, individual: Individual[Genome], rung: int) -> None:
        assert len(self.running) < self.slots
        self.running.append((individual, rung))
        if rung:
            self.promotions.append((individual.id, rung))
        else:
            self.evaluated.append(individual.genome)
        self.most_in_flight = max(self.most_in_flight, len(self.running))

    def wait(self) -> list[tuple[int, Score]]:
        self.waits += 1
        if self.stop_after is not None and self.results >= self.stop_after:
            raise KeyboardInterrupt
        if self.order == "slow" and self.waits % 2:
            return []
        individual, rung = self.running.pop(-1 if self.order == "lifo" else 0)
        self.results += 1
        f = self.fitness(individual.genome, rung)
        return [(individual.id, Score(Status.OK if f is not None else Status.ERROR, f))]


class Record(Journal[Genome, Score]):
    """Every event, and what a run store would hold (to resume from)."""

    def __init__(self) -> None:
        self.events: list[tuple] = []
        self.individuals: dict[int, Individual[Genome]] = {}
        self.done: list[int] = []  # ids in the order their results came
        self.promoting: dict[int, int] = {}  # id -> rung, promoted without a result yet

    def proposed(self, child: Individual[Genome]) -> None:
        self.events.append(("proposed", child.id, child.genome, child.parent, child.mutation))
        self.individuals[child.id] = child

    def evaluated(self, individual: Individual[Genome], result: Score) -> None:
        assert individual.status == result.status and individual.fitness == result.fitness
        self.events.append(("evaluated", individual.id, result.fitness))
        self.done.append(individual.id)

    def duplicate(self, child: Individual[Genome], original: Individual[Genome]) -> None:
        assert child.status == Status.DUPLICATE and child.duplicate_of == original.id
        assert child.fitness == original.fitness
        self.events.append(("duplicate", child.id, original.id))
        self.done.append(child.id)

    def promoted(self, individual: Individual[Genome], rung: int) -> None:
        self.events.append(("promoted", individual.id, rung))
        self.promoting[individual.id] = rung

    def rung_evaluated(self, individual: Individual[Genome], rung: int, result: Score) -> None:
        assert individual.rung == rung and individual.fitness == result.fitness
        self.events.append(("rung", individual.id, rung, result.fitness))
        del self.promoting[individual.id]

    def stored(self) -> tuple[list[Individual[Genome]], list[Individual[Genome]]]:
        """Fresh copies of (finished in result order, unfinished in proposal order)."""
        finished = [
            dataclasses.replace(self.individuals[i], ladder=dict(self.individuals[i].ladder))
            for i in self.done
        ]
        unfinished = [
            dataclasses.replace(ind, status=Status.RUNNING)
            for i, ind in sorted(self.individuals.items())
            if i not in self.done
        ]
        return finished, unfinished


def evolution(
    initial: list[Genome] | None = None,
    *,
    seed: int = 0,
    population: int = 6,
    tournament: int = 3,
    journal: Record | None = None,
    **kwargs,
) -> RegularizedEvolution[Genome, Score]:
    initial = initial if initial is not None else [(0,) * 8]
    return RegularizedEvolution(
        [(f"init:{i}", g) for i, g in enumerate(initial)],
        flip,
        population_size=population,
        tournament_size=tournament,
        rng=proposal_rng(seed),
        journal=journal,
        **kwargs,
    )


def trained_ids(record: Record) -> list[int]:
    return [e[1] for e in record.events if e[0] == "evaluated"]


def parents(record: Record, size: int) -> list[tuple[int, list[int]]]:
    """``(parent, population then)`` of each mutant: the ``size`` youngest finished."""
    finished: list[int] = []
    out = []
    for event in record.events:
        if event[0] == "proposed" and event[3] is not None:
            out.append((event[3], finished[-size:]))
        elif event[0] in ("evaluated", "duplicate"):
            finished.append(event[1])
    return out


# ----------------------------------------------------------------------------- the algorithm


def test_best_fitness_improves_on_onemax():
    record = Record()
    evo = evolution(journal=record, population=10, tournament=4)
    evo.run(FakeEvaluator(slots=3), budget=150)
    fitnesses = [e[2] for e in record.events if e[0] == "evaluated"]
    assert fitnesses[0] == 0.0 and max(fitnesses[:10]) <= 3.0
    assert max(fitnesses) == 8.0  # the optimum, from all zeros
    # selection pays: mutants of tournament winners beat mutants of random parents
    assert np.mean(fitnesses[10:60]) > 4.0


def test_the_budget_counts_trained_individuals_and_slots_bound_the_flight():
    record = Record()
    evaluator = FakeEvaluator(slots=4, order="slow")
    evo = evolution([(0,) * 6, (1,) + (0,) * 5], journal=record)
    evo.run(evaluator, budget=20)
    assert evo.trained == len(evaluator.evaluated) == len(trained_ids(record)) == 20
    assert evaluator.most_in_flight == 4 and not evo.in_flight
    assert any(e[0] == "duplicate" for e in record.events)  # 6 bits: repeats, uncounted
    assert len(record.done) == len(record.individuals) > 20


def test_the_oldest_dies_however_fit():
    record = Record()
    champion = (1,) * 8  # the optimum: it wins every tournament it is drawn in
    evo = evolution([champion, (0,) * 8], journal=record, population=3, tournament=3)
    evo.run(FakeEvaluator(), budget=2)
    assert [i.id for i in evo.population] == [0, 1]
    evo.run(FakeEvaluator(), budget=6)
    assert [i.id for i in evo.population] == record.done[-3:]
    assert champion not in [i.genome for i in evo.population if i.id == 0]
    assert all(i.id != 0 for i in evo.population)


def test_tournament_picks_the_fittest_of_its_draw_and_failed_ones_last():
    def ind(id: int, fitness: float | None) -> Individual[Genome]:
        return Individual(id, (id,), "x", status=Status.OK, fitness=fitness)

    pop = [ind(0, 0.2), ind(1, None), ind(2, 0.9), ind(3, -0.5)]
    rng = np.random.default_rng(0)
    assert tournament_select(pop, 4, rng).id == 2
    assert tournament_select(pop[:2], 2, rng).id == 0
    wins = {tournament_select(pop, 2, np.random.default_rng(s)).id for s in range(50)}
    assert wins <= {0, 2, 3} and 2 in wins  # never the failed one when a finite one is drawn
    for s in range(20):  # exactly the fittest of the draw
        drawn = np.random.default_rng(s).choice(4, size=2, replace=False)
        best = max(drawn, key=lambda i: -np.inf if pop[i].fitness is None else pop[i].fitness)
        assert tournament_select(pop, 2, np.random.default_rng(s)).id == best
    tie = [ind(0, 1.0), ind(1, 1.0)]
    assert tournament_select(tie, 2, rng).id == 0  # ties go to the oldest


def test_a_parent_is_drawn_from_the_population_and_its_child_is_a_mutant():
    record = Record()
    evolution(journal=record, population=4, tournament=2).run(FakeEvaluator(slots=2), 30)
    drawn = parents(record, 4)
    assert len(drawn) > 20
    for parent, population in drawn:
        assert parent in population
    for _, _, genome, parent, mutation in (e for e in record.events if e[0] == "proposed"):
        if parent is not None:
            parent_genome = record.individuals[parent].genome
            changed = [
                i for i, (a, b) in enumerate(zip(genome, parent_genome, strict=True)) if a != b
            ]
            assert [f"flip {i}" for i in changed] == [mutation]


# ----------------------------------------------------------------------------- duplicates


def test_duplicates_are_never_evaluated_and_inherit_the_result():
    record = Record()
    evaluator = FakeEvaluator(slots=2)
    # a 3-bit space: after 8 distinct genomes every proposal is a duplicate
    evo = evolution(
        [(0, 0, 0)], journal=record, population=4, tournament=2, max_duplicate_streak=50
    )
    evo.run(evaluator, budget=100)
    assert len(evaluator.evaluated) == len(set(evaluator.evaluated)) == evo.trained <= 8
    assert evo.stalled  # the space ran out before the budget
    genomes = {id: ind.genome for id, ind in record.individuals.items()}
    dups = [e for e in record.events if e[0] == "duplicate"]
    assert len(dups) >= 50
    for _, child, original in dups:
        assert genomes[child] == genomes[original] and original in trained_ids(record)


def test_a_duplicate_of_one_in_flight_waits_for_its_result():
    record = Record()
    same = (1, 0, 1, 0)
    evaluator = FakeEvaluator(slots=3, order="lifo")
    evo = evolution([same, same, (0, 0, 0, 0)], journal=record)
    evo.run(evaluator, budget=2)
    assert evaluator.evaluated == [same, (0, 0, 0, 0)]
    # id 1 waited on id 0, in flight; it is settled right after id 0's result (which the
    # lifo evaluator returns after id 2's)
    assert record.events[3:] == [("evaluated", 2, 0.0), ("evaluated", 0, 2.0), ("duplicate", 1, 0)]
    assert [i.id for i in evo.population] == [2, 0, 1]


def test_keys_decide_what_is_a_duplicate():
    record = Record()
    # genomes with the same number of ones count as the same
    evo = evolution([(1, 0), (0, 1), (1, 1)], journal=record, keys=lambda g: (sum(g),))
    evaluator = FakeEvaluator()
    evo.run(evaluator, budget=2)
    assert evaluator.evaluated == [(1, 0), (1, 1)]
    assert ("duplicate", 1, 0) in record.events


def test_a_genome_with_several_keys_duplicates_the_oldest_that_shares_one():
    record = Record()
    # keys: the number of ones, and the last bit (as the driver's canonical key and
    # fingerprint); (0, 0, 1) shares its sum with id 1 and its last bit with id 0
    evo = evolution(
        [(0, 1, 1), (1, 0, 0), (0, 0, 1)],
        journal=record,
        keys=lambda g: (("sum", sum(g)), ("last", g[-1])),
    )
    evaluator = FakeEvaluator()
    evo.run(evaluator, budget=3)
    # every genome now shares its last bit with one of the two: the search stalls
    assert evaluator.evaluated == [(0, 1, 1), (1, 0, 0)] and evo.stalled
    assert record.events[4] == ("proposed", 2, (0, 0, 1), None, None)
    assert record.events[5] == ("duplicate", 2, 0)


def test_a_stall_resets_when_a_new_individual_is_submitted():
    evo = evolution([(0, 0), (0, 0), (0, 0), (1, 1)], max_duplicate_streak=3)
    evaluator = FakeEvaluator()
    evo.run(evaluator, budget=2)
    assert evaluator.evaluated == [(0, 0), (1, 1)]  # two duplicates in between, no stall
    assert not evo.stalled and evo.streak == 0


# ----------------------------------------------------------------------------- reproducibility


@pytest.mark.parametrize("slots,order", [(1, "fifo"), (3, "fifo"), (3, "lifo"), (2, "slow")])
def test_the_same_seed_gives_the_same_run(slots: int, order: str):
    def events(seed: int) -> list[tuple]:
        record = Record()
        evolution(journal=record, seed=seed).run(FakeEvaluator(slots=slots, order=order), 40)
        return record.events

    assert events(7) == events(7)
    assert events(7) != events(8)


def test_proposal_i_draws_from_its_own_generator():
    calls = []

    def rng(i: int) -> np.random.Generator:
        calls.append(i)
        return np.random.default_rng([5, i])

    record = Record()
    evo = RegularizedEvolution(
        [("init", (0,) * 8)], flip, population_size=3, tournament_size=2, rng=rng, journal=record
    )
    evo.run(FakeEvaluator(slots=2), budget=6)
    mutants = [e[1] for e in record.events if e[0] == "proposed" and e[3] is not None]
    assert calls == mutants  # one generator per mutant, seeded with its proposal id
    assert proposal_rng(5)(9).random() == np.random.default_rng([5, 9]).random()


@pytest.mark.parametrize("stop_after", [0, 1, 5, 17])
def test_a_resumed_run_continues_identically(stop_after: int):
    whole = Record()
    evolution(journal=whole, seed=3).run(FakeEvaluator(), budget=30)

    first = Record()
    with pytest.raises(KeyboardInterrupt):  # stopped with an individual in flight
        evolution(journal=first, seed=3).run(FakeEvaluator(stop_after=stop_after), budget=30)
    finished, unfinished = first.stored()
    assert unfinished  # the one in flight at the stop goes first on resume
    second = Record()
    resumed = evolution(journal=second, seed=3)
    resumed.restore(finished, unfinished)
    assert resumed.trained == sum(1 for e in first.events if e[0] == "evaluated")
    resumed.run(FakeEvaluator(), budget=30)
    assert first.events + second.events == whole.events


def test_resume_rebuilds_the_population_as_the_youngest_finished():
    record = Record()
    evo = evolution(journal=record, population=5)
    evo.run(FakeEvaluator(slots=2, order="lifo"), budget=12)
    finished, _ = record.stored()
    again = evolution(population=5)
    again.restore(finished)
    assert [i.id for i in again.population] == [i.id for i in evo.population]
    assert again.next_id == evo.next_id and again.trained == evo.trained
    assert again.lookup(Individual(-1, finished[0].genome, "x")).id == min(
        i.id for i in finished if i.genome == finished[0].genome and i.status != "duplicate"
    )
    with pytest.raises(RuntimeError, match="fresh"):
        again.restore(finished)


def test_failed_evaluations_count_but_never_win():
    record = Record()
    evaluator = FakeEvaluator(fitness=lambda g: None if g[0] else onemax(g))
    evo = evolution(journal=record, population=8, tournament=8)
    evo.run(evaluator, budget=25)
    assert evo.trained == 25
    failed = {e[1] for e in record.events if e[0] == "evaluated" and e[2] is None}
    assert failed
    # a tournament of the whole population picks a failed one only when all failed
    fitness = {
        i: -1.0 if ind.fitness is None else ind.fitness for i, ind in record.individuals.items()
    }
    for parent, population in parents(record, 8):
        assert fitness[parent] == max(fitness[i] for i in population)


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="at least 1"):
        evolution(population=0)
    with pytest.raises(ValueError, match="at least 1"):
        evolution(tournament=0)


# ----------------------------------------------------------------------------- promotion (ASHA)


def noisy(genome: Genome, rung: int) -> float:
    """OneMax plus a genome- and rung-dependent wobble: rankings differ between rungs."""
    return onemax(genome) + ((hash(genome) + 7 * rung) % 5) / 10


def ladder_run(budget: int, slots: int = 1, order: str = "fifo", seed: int = 0, **kwargs):
    record = Record()
    evo = evolution(journal=record, seed=seed, population=6, rungs=3, promote=0.5, **kwargs)
    evaluator = FakeEvaluator(slots=slots, order=order, at_rung=noisy)
    evo.run(evaluator, budget=budget)
    return record, evo, evaluator


def top(evo: RegularizedEvolution, rung: int) -> set[int]:
    """Ids of the best floor(n * promote) ok individuals evaluated at ``rung``."""
    done = evo.evaluated_at[rung]
    ranked = sorted(done, key=lambda i: (-i.ladder[rung][1], i.id))
    return {i.id for i in ranked[: int(len(done) * evo.promote)]}


@pytest.mark.parametrize("slots,order", [(1, "fifo"), (3, "lifo"), (2, "slow")])
def test_each_promotion_is_from_the_top_fraction_of_its_rung(slots: int, order: str):
    record = Record()
    evo = evolution(journal=record, population=6, rungs=3, promote=0.5)
    evaluator = FakeEvaluator(slots=slots, order=order, at_rung=noisy)
    results: dict[int, dict[int, float]] = {0: {}, 1: {}, 2: {}}  # rung -> id -> fitness
    evo.run(evaluator, budget=24)
    for event in record.events:  # replayed: each promotion against the results before it
        if event[0] == "evaluated":
            results[0][event[1]] = event[2]
        elif event[0] == "rung":
            results[event[2]][event[1]] = event[3]
        elif event[0] == "promoted":
            id, rung = event[1], event[2]
            below = results[rung - 1]
            ranked = sorted(below, key=lambda i: (-below[i], i))
            assert id in ranked[: int(len(below) * 0.5)]  # in the top half at the time
    # promotions go on after the budget is spent until none is left: each rung's final
    # top half was promoted, and nothing reached a rung without passing the one below
    assert evo.trained == 24 and not evo.in_flight and not record.promoting
    for rung in (0, 1):
        assert top(evo, rung) <= evo.promoted_from[rung]
        assert {i.id for i in evo.evaluated_at[rung + 1]} == evo.promoted_from[rung]
    assert len(evaluator.evaluated) == 24  # promotions do not count towards the budget
    assert len(evo.evaluated_at[1]) >= 12 and len(evo.evaluated_at[2]) >= 6
    assert evaluator.promotions and all(r in (1, 2) for _, r in evaluator.promotions)


def test_selection_ranks_by_the_highest_rung_then_its_score():
    def ind(id: int, rung: int, fitness: float | None) -> Individual[Genome]:
        status = Status.OK if fitness is not None else Status.DIVERGED
        return Individual(id, (id,), "x", status=status, fitness=fitness, rung=rung)

    high_but_short, low_but_long, failed_long = ind(0, 0, 5.0), ind(1, 1, 0.1), ind(2, 2, None)
    rng = np.random.default_rng(0)
    assert tournament_select([high_but_short, low_but_long], 2, rng).id == 1
    assert tournament_select([failed_long, high_but_short], 2, rng).id == 0  # failed: last
    assert tournament_select([ind(3, 1, 0.2), low_but_long], 2, rng).id == 3


def test_a_promoted_failure_loses_its_standing_and_is_not_promoted_further():
    # genomes with an odd number of ones blow up at rung 1 (a rule that collapses at a
    # long horizon)
    evo2 = evolution(population=6, rungs=3, promote=0.5)
    evaluator = FakeEvaluator(at_rung=lambda g, r: None if r and sum(g) % 2 else onemax(g))
    evo2.run(evaluator, budget=16)
    blown = [i for i in evo2.evaluated_at[1] if i.ladder[1][0] is Status.ERROR]
    assert blown
    for i in blown:
        assert i.rung == 1 and i.fitness is None and i.id not in evo2.promoted_from[1]


def test_a_duplicate_of_a_promoted_individual_is_settled_at_once():
    # (1,1) is promoted while a duplicate of it arrives: it does not wait for rung 1
    record = Record()
    same = (1, 1)
    evo = evolution([same, (0, 0), (0, 1), same, (1, 0)], journal=record, rungs=2, promote=0.5)
    evaluator = FakeEvaluator(slots=2)
    evo.run(evaluator, budget=4)
    events = [e[:3] for e in record.events]
    assert events.index(("duplicate", 3, 0)) < events.index(("rung", 0, 1))
    assert (0, 1) in evaluator.promotions and not evo.in_flight


@pytest.mark.parametrize("slots,order", [(1, "fifo"), (3, "lifo"), (2, "slow")])
def test_a_multi_fidelity_run_is_reproduced_by_its_seed(slots: int, order: str):
    def events(seed: int) -> list[tuple]:
        return ladder_run(20, slots, order, seed)[0].events

    assert events(4) == events(4)
    assert events(4) != events(5)


@pytest.mark.parametrize("stop_after", [3, 9, 14, 22, 27])
def test_a_multi_fidelity_run_resumes_identically(stop_after: int):
    whole, _, _ = ladder_run(16)
    first = Record()
    with pytest.raises(KeyboardInterrupt):
        evolution(journal=first, population=6, rungs=3, promote=0.5).run(
            FakeEvaluator(at_rung=noisy, stop_after=stop_after), budget=16
        )
    finished, unfinished = first.stored()
    promotions = list(first.promoting.items())
    assert promotions or unfinished  # something was in flight at the stop
    second = Record()
    second.promoting = dict(first.promoting)
    resumed = evolution(journal=second, population=6, rungs=3, promote=0.5)
    resumed.restore(finished, unfinished, promotions)
    evaluator = FakeEvaluator(at_rung=noisy)
    resumed.run(evaluator, budget=16)
    assert first.events + second.events == whole.events
    # nothing trained twice at the same rung across the two sessions
    trained = [e[1:3] for e in first.events + second.events if e[0] == "rung"]
    assert len(trained) == len(set(trained))


def test_stop_ends_dispatching_and_waits_for_those_in_flight():
    evo = evolution(population=6, rungs=2, promote=0.5)
    evaluator = FakeEvaluator(slots=3, order="slow")
    evo.run(evaluator, budget=1000, stop=lambda: evaluator.results >= 5)
    assert not evo.in_flight and 5 <= evaluator.results < 5 + 3
    assert len(evaluator.evaluated) + len(evaluator.promotions) == evaluator.results


def test_bad_rungs_are_refused():
    with pytest.raises(ValueError, match="at least 1"):
        evolution(rungs=0)
    with pytest.raises(ValueError, match="promote"):
        evolution(rungs=2, promote=0.0)
