"""The maintainers' tools: what makes the records, tables and posts, apart from the core the notebooks teach.

    results     score every shipped model: weights/results.json and the README's table
    readme      put generated tables between the README's markers
    cards       ship a run into weights/NAME and write the weights cards (huggingface_hub.ModelCard)
    benchmark   training throughput, sampler table, accuracy against training time
    blog        executed notebooks as Markdown posts
    tutorial    run the notebooks headless
    train_all   the GPU session's one command: train, score and package every model in a time budget
    cli         the maintainers' commands on top of the core CLI

The core (``condiff`` minus this subpackage) never imports from here.
"""
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parents[2]  # a clone: README.md, notebooks/, weights/
