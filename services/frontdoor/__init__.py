"""What both front doors share: their settings, the worker client, API Gateway's own answers
and the route table.
"""
