"""`headshot batch`: many subjects on Ray, each stage a Ray task calling `headshot run`'s stage functions.

This package is the only one that imports Ray, and only inside functions: the stages know
nothing of it, and `headshot --help` never loads it. `config` reads the batch file and keys
each stage's settings, `tasks` is what runs on the workers, `runner` decides what is
already finished and drives the rest, `record` is batch.json and the live table, `store` is
where the signed headshots' manifests go.
"""
