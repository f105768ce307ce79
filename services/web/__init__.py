"""Web plumbing shared by the worker and the front doors: ASGI serving, SSE, a lean HTTP/1.1
client, deadlines, single-flight, query parameters.
"""
