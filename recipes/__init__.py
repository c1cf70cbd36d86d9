"""Hydra recipe configs for verl's main_ppo (installed as ``dvmap_verl.recipes``; see README.md here)."""
