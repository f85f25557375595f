"""Reading what a search found: explanations against the reference rules, the HTML run
report and its figures, TensorBoard logs.

Downstream of every other layer: it reads programs, runs (through the run store's public
methods) and exports, and writes nothing but its own outputs.
"""
