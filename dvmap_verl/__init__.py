"""dvmap-verl: DVMap (High-Consensus Demographic-Value Mapping, arXiv 2605.14420) as a VeRL plugin.

Kept import-light: verl imports ``dvmap_verl.reward`` inside every reward worker, and Hydra imports the search-path
plugin in every Hydra app.
"""

__version__ = "0.1.0"
