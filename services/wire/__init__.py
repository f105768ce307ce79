"""Wire formats: the OpenAI and Anthropic request and response shapes, translated to and from
the canonical types.
"""
