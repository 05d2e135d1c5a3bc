"""Sweeps: methods as trials on one engine, results tables and Pareto fronts on test data.

A trial is ``(method, setting, seed) -> train -> test`` with the same training budget and
data for every method (the original ``batch_exp.py`` and ``random_sampler.py``):

* ``search`` -- search at a hardware penalty, then train the found genotype;
* ``random`` -- a random genotype of the same space and bit-widths;
* ``espcn`` / ``fsrcnn`` / ``edsr`` -- fixed baselines quantized uniformly (4, 8, 32 bits);
* ``uniform`` -- a found genotype retrained with every layer at one bit-width.

Modules: :mod:`~quantnas.sweep.trials` (the plan and config hashes),
:mod:`~quantnas.sweep.runner` (one trial), :mod:`~quantnas.sweep.results`
(``results.csv`` / ``results.jsonl``), :mod:`~quantnas.sweep.pareto` (fronts and target
counts), :mod:`~quantnas.sweep.driver` (``quantnas sweep``; the trials run on the engines
of :mod:`quantnas.engines`), :mod:`~quantnas.sweep.front` (the front's figure and table,
``quantnas pareto``). This package file imports nothing, so
:mod:`quantnas.plots` can use the front maths without a cycle.
"""
