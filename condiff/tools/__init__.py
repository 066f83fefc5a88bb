"""The maintainers' tools (not imported by the notebooks): the ``train-all`` driver, for now."""
