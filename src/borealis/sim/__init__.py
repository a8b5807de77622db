"""The deterministic simulator: the real protocol cores, a seeded RNG and a virtual clock.

Run ``python -m borealis.sim --seeds N --seed-start S [--scenario NAME]``.
"""
