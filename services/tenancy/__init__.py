"""Tenancy: who is calling (auth), API keys, tenants, their limits, and the admin API."""
