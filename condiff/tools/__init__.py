"""The programs around the library: the command line, and the maintainers' tools that make the records, tables
and posts. The library (the core the notebooks import and teach) is ``condiff`` minus this subpackage.

    commands    the readers' commands: train, sample, evaluate (a front end over the library)
    results     score every shipped model: weights/results.json and the README's table
    readme      put generated tables between the README's markers
    cards       ship a run into weights/NAME and write the weights cards (huggingface_hub.ModelCard)
    benchmark   training throughput, sampler table, accuracy against training time
    blog        executed notebooks as Markdown posts
    tutorial    run the notebooks headless
    train_all   train, score and record every model, one after the other
    cli         ``python -m condiff``: the readers' commands plus the maintainers' ones

The core (``condiff`` minus this subpackage) never imports from here.
"""
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parents[2]  # a clone: README.md, notebooks/, weights/
