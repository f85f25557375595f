"""Regularized evolution (Real et al. 2019, "aging evolution"; AutoML-Zero), as a pure,
asynchronous, steady-state object.

The population is the ``population_size`` individuals whose results came in last.
Whenever the evaluator has a free slot, a child is proposed: the next initial genome, or
a mutation of the fittest of ``tournament_size`` individuals drawn from the population.
A child that shares a key with one already trained (or in flight) is a duplicate: it is
never evaluated, it inherits that one's fitness, and it does not count towards the budget.
When a result comes back, the child joins the population and the oldest individual dies.
After ``max_duplicate_streak`` duplicates in a row the search has stalled and proposes no
more.

Multi-fidelity (asynchronous successive halving, ASHA: Li et al. 2020, "A System for
Massively Parallel Hyperparameter Tuning"). Evaluations happen at rungs ``0 .. rungs-1``
(longer training at each). A new child is evaluated at rung 0. Whenever a slot is free,
before proposing a child, the highest rung ``k`` with a promotable individual promotes
one: an individual is promotable from rung ``k`` when it is ``ok`` there, among the best
``floor(n_k * promote)`` of the ``n_k`` individuals evaluated at rung ``k`` (ties to the
older), and not promoted yet. An individual ranks by the highest rung it reached, then its
fitness there (:func:`fitness_key`); a failure at any rung ranks it last. The budget counts
rung-0 evaluations; once it is spent, promotions go on until none is left.

Every random choice behind proposal ``i`` comes from ``rng(i)`` (:func:`proposal_rng`:
``default_rng([seed, i])``), so a run with one evaluation at a time is reproduced by its
seed, and a run resumes exactly where it stood (:meth:`RegularizedEvolution.restore`
rebuilds the population as the youngest finished individuals).

Nothing here trains, stores or reads programs: the genome type, its mutation and keys,
the evaluator and the record keeping (:class:`Journal`) are passed in, so the algorithm
is tested in milliseconds on toy genomes (tests/test_evolution.py).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

import numpy as np

from evozero.status import Status

#: Consecutive duplicate proposals after which the search is declared stalled.
MAX_DUPLICATE_STREAK = 1000

G = TypeVar("G")  # a genome
R = TypeVar("R", bound="Scored")  # an evaluation's result


class Scored(Protocol):
    """What the algorithm reads of a result: how the evaluation ended, and its fitness
    (higher is better; None for a failed one, which loses every tournament)."""

    @property
    def status(self) -> Status: ...

    @property
    def fitness(self) -> float | None: ...


@dataclass(eq=False)
class Individual(Generic[G]):
    """One proposal: an initial genome (``origin`` names it) or a mutant of ``parent``.

    ``status`` and ``fitness`` are those of its result at ``rung``, the highest rung it was
    evaluated at (``running`` until its first result comes); ``ladder`` holds every rung's
    ``(status, fitness)``. A duplicate gets ``duplicate``, the standing of the individual
    it duplicates and that one's id in ``duplicate_of``; it is never promoted.
    """

    id: int
    genome: G
    origin: str
    parent: int | None = None
    mutation: str | None = None
    status: Status = Status.RUNNING
    fitness: float | None = None
    duplicate_of: int | None = None
    rung: int = 0
    ladder: dict[int, tuple[Status, float | None]] = field(default_factory=dict)

    def settle(self, rung: int, status: Status, fitness: float | None) -> None:
        """Its result at ``rung`` came: it is now its standing."""
        self.ladder[rung] = (status, fitness)
        self.rung, self.status, self.fitness = rung, status, fitness


class Evaluator(Protocol[G, R]):
    """Evaluates individuals, several at a time, results in any order."""

    @property
    def slots(self) -> int:
        """How many evaluations may be in flight at once."""
        ...

    def submit(self, individual: Individual[G], rung: int) -> None:
        """Starts evaluating ``individual`` at ``rung`` (a slot is free)."""
        ...

    def wait(self) -> Iterable[tuple[int, R]]:
        """Waits a while for results; ``(id, result)`` of the evaluations that finished,
        in the order they finished (possibly none)."""
        ...


class Journal(Generic[G, R]):
    """Hears of every event, in order (the driver records them); does nothing by itself."""

    def proposed(self, child: Individual[G]) -> None:
        """``child`` was proposed (it has its id; it is not evaluated yet)."""

    def evaluated(self, individual: Individual[G], result: R) -> None:
        """``individual``'s rung-0 result came back; it joins the population next."""

    def promoted(self, individual: Individual[G], rung: int) -> None:
        """``individual`` is promoted: it is evaluated at ``rung`` next."""

    def rung_evaluated(self, individual: Individual[G], rung: int, result: R) -> None:
        """``individual``'s result at ``rung`` (1 or more) came back."""

    def duplicate(self, child: Individual[G], original: Individual[G]) -> None:
        """``child`` duplicates ``original`` and inherits its result; it joins the
        population next."""


def proposal_rng(seed: int) -> Callable[[int], np.random.Generator]:
    """The generator of proposal ``i``: ``default_rng([seed, i])``."""
    return lambda i: np.random.default_rng([seed, i])


def fitness_key(individual: Individual | Scored) -> tuple[float, float]:
    """Tournament order: the highest rung reached, then the fitness there; failed
    individuals (fitness None) last."""
    f = individual.fitness
    if f is None or math.isnan(f):
        return (-math.inf, -math.inf)
    return (float(getattr(individual, "rung", 0)), f)


def tournament_select(
    population: Sequence[Individual[G]], size: int, rng: np.random.Generator
) -> Individual[G]:
    """The fittest of ``size`` individuals drawn without replacement (all if fewer);
    ties go to the oldest."""
    k = min(size, len(population))
    picks = rng.choice(len(population), size=k, replace=False)
    return max((population[int(i)] for i in sorted(picks)), key=fitness_key)


class RegularizedEvolution(Generic[G, R]):
    """The algorithm's state and its loop, :meth:`run`.

    Args:
        initial: ``(origin, genome)`` of the first proposals, in order.
        mutate: ``mutate(genome, rng) -> (child genome, description of the mutation)``.
        population_size: individuals kept alive.
        tournament_size: individuals drawn to pick each parent.
        rng: the generator of proposal ``i`` (see :func:`proposal_rng`).
        keys: the keys a trained genome is known by (default: the genome itself, which
            must then be hashable).
        probes: the keys a new genome is looked up by; it duplicates a genome that is
            known by one of them (default: ``keys``, so two genomes sharing a key are the
            same; a separate ``probes`` expresses an asymmetric rule).
        journal: told of each proposal and result.
        max_duplicate_streak: consecutive duplicates after which no more are proposed.
        rungs: fidelities an individual can be evaluated at (1: no promotion).
        promote: fraction of each rung promoted to the next (ASHA's ``1/eta``).

    Raises:
        ValueError: a size below 1, or ``promote`` outside (0, 1].
    """

    def __init__(
        self,
        initial: Sequence[tuple[str, G]],
        mutate: Callable[[G, np.random.Generator], tuple[G, str]],
        *,
        population_size: int,
        tournament_size: int,
        rng: Callable[[int], np.random.Generator],
        keys: Callable[[G], Iterable[Hashable]] = lambda genome: (genome,),
        probes: Callable[[G], Iterable[Hashable]] | None = None,
        journal: Journal[G, R] | None = None,
        max_duplicate_streak: int = MAX_DUPLICATE_STREAK,
        rungs: int = 1,
        promote: float = 0.25,
    ) -> None:
        if min(population_size, tournament_size, max_duplicate_streak, rungs) < 1:
            raise ValueError(
                "population_size, tournament_size, max_duplicate_streak and rungs must be at "
                "least 1"
            )
        if not 0 < promote <= 1:
            raise ValueError(f"promote must be in (0, 1], got {promote}")
        self.rungs = rungs
        self.promote = promote
        self.initial = list(initial)
        self.mutate = mutate
        self.population_size = population_size
        self.tournament_size = tournament_size
        self.rng = rng
        self.keys = keys
        self.probes = probes or keys
        self.journal: Journal[G, R] = journal or Journal()
        self.max_duplicate_streak = max_duplicate_streak
        self.population: deque[Individual[G]] = deque()  # oldest first
        self.in_flight: dict[int, Individual[G]] = {}  # in submission order
        self.in_flight_rung: dict[int, int] = {}  # in-flight id -> the rung it is at
        self.trained = 0  # individuals with a rung-0 result of their own
        # Per rung: the individuals evaluated there, and the ids promoted from there.
        self.evaluated_at: list[list[Individual[G]]] = [[] for _ in range(rungs)]
        self.promoted_from: list[set[int]] = [set() for _ in range(rungs)]
        self._promotions: deque[tuple[Individual[G], int]] = deque()  # from a stopped run
        self.next_id = 0
        self.next_initial = 0  # initial genomes proposed (ids may be taken by others)
        self.streak = 0  # duplicates proposed since the last submission
        self._unfinished: deque[Individual[G]] = deque()  # from a stopped run: they go first
        self._waiting: dict[int, list[Individual[G]]] = {}  # in-flight id -> its duplicates
        self._known: dict[Hashable, Individual[G]] = {}  # key -> first trained individual

    @property
    def stalled(self) -> bool:
        """Whether the last ``max_duplicate_streak`` proposals were all duplicates."""
        return self.streak >= self.max_duplicate_streak

    def run(
        self,
        evaluator: Evaluator[G, R],
        budget: int,
        stop: Callable[[], bool] = lambda: False,
    ) -> None:
        """Evolves until ``budget`` individuals are trained at rung 0 (duplicates are
        free) or the search stalls, and no promotion is left, or until ``stop()`` says
        so; then waits for the evaluations in flight."""
        while True:
            while len(self.in_flight) < evaluator.slots and not stop():
                promotion = self.next_promotion()
                if promotion is not None:
                    self._submit(evaluator, *promotion)
                    continue
                if self.trained + self._new_in_flight() >= budget or self.stalled:
                    break
                child = self._unfinished.popleft() if self._unfinished else self.propose()
                if child is None:
                    break  # nothing to breed from until a result arrives
                original = self.lookup(child)
                if original is None:
                    self._submit(evaluator, child, 0)
                    self.streak = 0
                else:
                    self.inherit(child, original)
                    self.streak += 1
            if not self.in_flight:
                return
            for id, result in evaluator.wait():
                self.finish(id, result)

    def next_promotion(self) -> tuple[Individual[G], int] | None:
        """``(individual, rung)``: a promotion left by a stopped run, else the best
        promotable individual of the highest rung that has one (see the module's
        docstring), marked promoted; None when there is none."""
        if self._promotions:
            return self._promotions.popleft()
        for k in range(self.rungs - 2, -1, -1):
            done = self.evaluated_at[k]
            ok = [i for i in done if i.ladder[k][0] is Status.OK and i.ladder[k][1] is not None]
            ok.sort(key=lambda i: (-(i.ladder[k][1] or 0.0), i.id))
            for individual in ok[: math.floor(len(done) * self.promote)]:
                if individual.id not in self.promoted_from[k]:
                    self.promoted_from[k].add(individual.id)
                    self.journal.promoted(individual, k + 1)
                    return individual, k + 1
        return None

    def _submit(self, evaluator: Evaluator[G, R], individual: Individual[G], rung: int) -> None:
        evaluator.submit(individual, rung)
        self.in_flight[individual.id] = individual
        self.in_flight_rung[individual.id] = rung

    def _new_in_flight(self) -> int:
        return sum(1 for rung in self.in_flight_rung.values() if rung == 0)

    def _unsettled(self, individual: Individual[G]) -> bool:
        """Whether ``individual`` is in flight for its first result (a promoted one has
        one already)."""
        return self.in_flight_rung.get(individual.id) == 0

    def propose(self) -> Individual[G] | None:
        """The next child: the next initial genome, else a mutant of a tournament's
        winner; None while the population is empty."""
        i = self.next_id
        if self.next_initial < len(self.initial):
            origin, genome = self.initial[self.next_initial]
            self.next_initial += 1
            child = Individual(i, genome, origin)
        elif not self.population:
            return None
        else:
            rng = self.rng(i)
            parent = tournament_select(self.population, self.tournament_size, rng)
            genome, mutation = self.mutate(parent.genome, rng)
            child = Individual(i, genome, "mutation", parent.id, mutation)
        self.next_id += 1
        self.journal.proposed(child)
        return child

    def lookup(self, child: Individual[G]) -> Individual[G] | None:
        """The individual ``child`` duplicates: the first trained one known by one of its
        probes, else the first in flight that is; None when ``child`` is new."""
        keys = set(self.probes(child.genome))
        known = [self._known[k] for k in keys if k in self._known]
        if known:
            return min(known, key=lambda individual: individual.id)
        return next(
            (
                other
                for other in self.in_flight.values()
                if self._unsettled(other) and keys.intersection(self.keys(other.genome))
            ),
            None,
        )

    def inherit(self, child: Individual[G], original: Individual[G]) -> None:
        """Settles duplicate ``child`` with ``original``'s result (once it has one)."""
        if self._unsettled(original):
            self._waiting.setdefault(original.id, []).append(child)
            return
        child.status, child.fitness = Status.DUPLICATE, original.fitness
        child.rung, child.duplicate_of = original.rung, original.id
        self.journal.duplicate(child, original)
        self._join(child)

    def finish(self, id: int, result: R) -> None:
        """Individual ``id``'s result came back. At rung 0 it joins the population, and so
        do the duplicates that waited for it; at a higher rung it only changes its
        standing."""
        individual = self.in_flight.pop(id)
        rung = self.in_flight_rung.pop(id)
        individual.settle(rung, result.status, result.fitness)
        self.evaluated_at[rung].append(individual)
        if rung:
            self.journal.rung_evaluated(individual, rung, result)
            return
        self.journal.evaluated(individual, result)
        self._remember(individual)
        self._join(individual)
        for child in self._waiting.pop(id, []):
            self.inherit(child, individual)

    def restore(
        self,
        finished: Iterable[Individual[G]],
        unfinished: Iterable[Individual[G]] = (),
        promotions: Iterable[tuple[int, int]] = (),
        *,
        taken: int = 0,
    ) -> None:
        """Continues a stopped run (call it first): ``finished`` individuals in the order
        their rung-0 results came (the population is the youngest of them; each with its
        ``ladder``), ``unfinished`` ones (proposed, no result) in proposal order, and the
        ``(id, rung)`` promotions that had no result; :meth:`run` dispatches the
        promotions, then the unfinished, before anything new. New ids start at ``taken``
        or above (ids used outside the evolution)."""
        if self.next_id or self.population or self.in_flight:
            raise RuntimeError("restore() is for a fresh RegularizedEvolution")
        ids = [-1]
        by_id: dict[int, Individual[G]] = {}
        for individual in finished:
            if individual.status is not Status.DUPLICATE:
                if not individual.ladder:  # a run stored before rungs existed
                    individual.ladder[0] = (individual.status, individual.fitness)
                self._remember(individual)
                by_id[individual.id] = individual
                for rung in sorted(individual.ladder):
                    self.evaluated_at[rung].append(individual)
                    if rung:
                        self.promoted_from[rung - 1].add(individual.id)
            self._join(individual)
            ids.append(individual.id)
            self.next_initial += individual.parent is None
        for id, rung in promotions:
            self.promoted_from[rung - 1].add(id)
            self._promotions.append((by_id[id], rung))
        self._unfinished.extend(unfinished)
        self.next_id = max(taken, 1 + max(ids + [u.id for u in self._unfinished]))
        self.next_initial += sum(1 for u in self._unfinished if u.parent is None)

    def _remember(self, individual: Individual[G]) -> None:
        """``individual`` was trained: count it, and look it up by its keys from now on."""
        self.trained += 1
        for key in self.keys(individual.genome):
            self._known.setdefault(key, individual)

    def _join(self, individual: Individual[G]) -> None:
        self.population.append(individual)
        if len(self.population) > self.population_size:
            self.population.popleft()  # the oldest dies
