"""Studies of the generation process: x0 trajectory, cross-attention maps, parameter sweeps.

`run_study(StudyConfig)` is the entry point of `headshot study`; docs/study.md explains each output.
"""
