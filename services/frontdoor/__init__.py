"""What the front doors share: their settings, API Gateway's own answers, the stage prefix
and the route table.
"""
