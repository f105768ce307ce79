"""Chat: completions (OpenAI), messages (Anthropic), turns in a stored conversation, and the
context window.
"""
