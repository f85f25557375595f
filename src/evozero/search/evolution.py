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
from dataclasses import dataclass
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

    ``status`` is ``running`` until its result comes; a duplicate gets ``duplicate``, the
    fitness of the individual it duplicates and that one's id in ``duplicate_of``.
    """

    id: int
    genome: G
    origin: str
    parent: int | None = None
    mutation: str | None = None
    status: Status = Status.RUNNING
    fitness: float | None = None
    duplicate_of: int | None = None


class Evaluator(Protocol[G, R]):
    """Evaluates individuals, several at a time, results in any order."""

    @property
    def slots(self) -> int:
        """How many evaluations may be in flight at once."""
        ...

    def submit(self, individual: Individual[G]) -> None:
        """Starts evaluating ``individual`` (a slot is free)."""
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
        """``individual``'s result came back; it joins the population next."""

    def duplicate(self, child: Individual[G], original: Individual[G]) -> None:
        """``child`` duplicates ``original`` and inherits its result; it joins the
        population next."""


def proposal_rng(seed: int) -> Callable[[int], np.random.Generator]:
    """The generator of proposal ``i``: ``default_rng([seed, i])``."""
    return lambda i: np.random.default_rng([seed, i])


def fitness_key(individual: Individual | Scored) -> float:
    """Tournament order: fitness, failed individuals (fitness None) last."""
    f = individual.fitness
    return -math.inf if f is None or math.isnan(f) else f


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

    Raises:
        ValueError: a size below 1.
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
    ) -> None:
        if min(population_size, tournament_size, max_duplicate_streak) < 1:
            raise ValueError(
                "population_size, tournament_size and max_duplicate_streak must be at least 1"
            )
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
        self.trained = 0  # individuals with a result of their own
        self.next_id = 0
        self.streak = 0  # duplicates proposed since the last submission
        self._unfinished: deque[Individual[G]] = deque()  # from a stopped run: they go first
        self._waiting: dict[int, list[Individual[G]]] = {}  # in-flight id -> its duplicates
        self._known: dict[Hashable, Individual[G]] = {}  # key -> first trained individual

    @property
    def stalled(self) -> bool:
        """Whether the last ``max_duplicate_streak`` proposals were all duplicates."""
        return self.streak >= self.max_duplicate_streak

    def run(self, evaluator: Evaluator[G, R], budget: int) -> None:
        """Evolves until ``budget`` individuals are trained (duplicates are free) or the
        search stalls, and the evaluations in flight have come back."""
        while True:
            while (
                self.trained + len(self.in_flight) < budget
                and not self.stalled
                and len(self.in_flight) < evaluator.slots
            ):
                child = self._unfinished.popleft() if self._unfinished else self.propose()
                if child is None:
                    break  # nothing to breed from until a result arrives
                original = self.lookup(child)
                if original is None:
                    evaluator.submit(child)
                    self.in_flight[child.id] = child
                    self.streak = 0
                else:
                    self.inherit(child, original)
                    self.streak += 1
            if not self.in_flight:
                return
            for id, result in evaluator.wait():
                self.finish(id, result)

    def propose(self) -> Individual[G] | None:
        """The next child: the next initial genome, else a mutant of a tournament's
        winner; None while the population is empty."""
        i = self.next_id
        if i < len(self.initial):
            origin, genome = self.initial[i]
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
                if keys.intersection(self.keys(other.genome))
            ),
            None,
        )

    def inherit(self, child: Individual[G], original: Individual[G]) -> None:
        """Settles duplicate ``child`` with ``original``'s result (once it has one)."""
        if original.id in self.in_flight:
            self._waiting.setdefault(original.id, []).append(child)
            return
        child.status, child.fitness = Status.DUPLICATE, original.fitness
        child.duplicate_of = original.id
        self.journal.duplicate(child, original)
        self._join(child)

    def finish(self, id: int, result: R) -> None:
        """Individual ``id``'s result came back: it joins the population, and so do the
        duplicates that waited for it."""
        individual = self.in_flight.pop(id)
        individual.status, individual.fitness = result.status, result.fitness
        self.journal.evaluated(individual, result)
        self._remember(individual)
        self._join(individual)
        for child in self._waiting.pop(id, []):
            self.inherit(child, individual)

    def restore(
        self, finished: Iterable[Individual[G]], unfinished: Iterable[Individual[G]] = ()
    ) -> None:
        """Continues a stopped run (call it first): ``finished`` individuals in the order
        their results came (the population is the youngest of them), and ``unfinished``
        ones (proposed, no result) in proposal order, which :meth:`run` dispatches before
        proposing anything new."""
        if self.next_id or self.population or self.in_flight:
            raise RuntimeError("restore() is for a fresh RegularizedEvolution")
        ids = [-1]
        for individual in finished:
            if individual.status is not Status.DUPLICATE:
                self._remember(individual)
            self._join(individual)
            ids.append(individual.id)
        self._unfinished.extend(unfinished)
        self.next_id = 1 + max(ids + [u.id for u in self._unfinished])

    def _remember(self, individual: Individual[G]) -> None:
        """``individual`` was trained: count it, and look it up by its keys from now on."""
        self.trained += 1
        for key in self.keys(individual.genome):
            self._known.setdefault(key, individual)

    def _join(self, individual: Individual[G]) -> None:
        self.population.append(individual)
        if len(self.population) > self.population_size:
            self.population.popleft()  # the oldest dies
