"""The benchmark suite's package (its entry point is ``scripts/bench_suite.py``).

Modules by job: `config` (constants, sizes), `workloads` (names and units), `dataset` (the
objects), `systems` (mounts and environments), `worker` (one client-side measurement in its own
process), `samples` (a measured case), `measuring` (cases of a workload group), `targets`,
`reporting` (markdown) and `chart` (SVG).
"""
