"""Models: the catalogue of names a caller can use, the router that calls a route's providers,
and the provider keys.
"""
