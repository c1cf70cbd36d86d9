"""Data: WVS Wave 7 files and the authors' release -> archetypes, splits, prompts and VeRL parquet."""
