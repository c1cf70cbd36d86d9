"""Training: recipe checks (doctor, dry runs), the smoke run, curves, checkpoint merging, the tiny model."""
