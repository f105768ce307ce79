"""What operators see of every process, written once: the correlation id that follows a call
from the edge to the provider (`ids`, `context`), JSON log lines with the same fields in the
Lambdas and the worker (`logs`), and CloudWatch metrics as embedded metric format
(`metrics`). Standard library and orjson only: the front-door Lambdas import it cold.
"""
