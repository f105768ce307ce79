"""Conversations: history kept server-side (the store) and its API."""
