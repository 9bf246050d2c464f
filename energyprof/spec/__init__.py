"""Torch-free specifications: the parameter table, sweep spec, replay plan, loop options and the plain records of a
run. The dashboard imports these; nothing here imports a runtime."""
