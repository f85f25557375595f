"""Program search: regularized evolution (:mod:`~evozero.search.evolution`), the driver
that trains candidates on a backend and records them in the run store, fitness suites and
the final report."""
