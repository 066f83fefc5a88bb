"""The tests' tiny recipe (16x16 scenes, a 47k-parameter UNet, 4 steps, a checkpoint every 2 steps).

It is not in ``condiff.recipes.RECIPES``: tests pass it to ``train`` directly. Run as a script, this
file is ``python -m condiff`` with the recipe registered, for tests that train in a subprocess:

    python tests/tiny.py train tiny --out OUT
"""
from __future__ import annotations

from condiff.recipes import RECIPES, Recipe

TINY = Recipe("tiny", "time_sum", "Tiny test model", image_size=16, block_out_channels=(8, 16), batch_size=8,
              warmup_steps=2, max_steps=4, checkpoint_every=2)

if __name__ == "__main__":
    from condiff.__main__ import main

    RECIPES[TINY.name] = TINY  # this process only: the CLI's `train` now accepts "tiny"
    main()
