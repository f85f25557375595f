"""Program search, in the order the data flows:

:mod:`~evozero.search.evolution` (the regularized-evolution algorithm, pure),
:mod:`~evozero.search.driver` (feeds it: trains candidates on a backend, records them),
:mod:`~evozero.search.config` (a search's settings and initial population),
:mod:`~evozero.search.tasks` (tasks and suites), :mod:`~evozero.search.protocol` (the
worker's jobs and replies, typed JSON), :mod:`~evozero.search.backends` (where jobs run),
:mod:`~evozero.search.fitness` (the worker's job and the scores),
:mod:`~evozero.search.store` (the run store) and :mod:`~evozero.search.report` (hall of
fame and final report).
"""
