"""Tools: single-purpose AI functions, one module each (see base.py)."""
