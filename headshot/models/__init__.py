"""Base models: what a `--base-model` names (model_spec), whether it can be had (hub_access,
hub_download), and loading it as a diffusers pipeline of its family (loading, deferred).

Below the stages: training, generate and the study all load through here.
"""
